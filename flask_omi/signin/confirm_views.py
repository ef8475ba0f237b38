"""The Flask side of OMI-confirmed sign-in (``OMI_CONFIRM_SIGNIN``): starting a confirmation, the
``/omi/confirm`` page, and what protected views do until a sign-in is confirmed.

``True``: a callback that passes every check starts a confirmation instead of signing in; the
sign-in counts only once the code comes back. ``"step-up"``: sign-in happens at once, and views
marked ``@omi_login_required(confirmed=True)`` ask for a code first, as sensitive pages ask for a
password again. The records and budgets live in the store (:mod:`flask_omi.signin.confirm_records`); the
session holds only the pending confirmation's id.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from flask import Response, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from flask_omi.errors import (
    CodeExpired,
    CodeTriesExhausted,
    ConfirmationMissing,
    ConfirmationRateLimited,
    ConfirmationRefused,
    ConfirmationUnavailable,
    OmiApiError,
    OmiAppNotEnabled,
    OmiCallbackError,
    OmiRateLimited,
)
from flask_omi.extension import get_extension, omi_client
from flask_omi.signals import omi_confirm_flooded, omi_login_failed
from flask_omi.signin import confirm
from flask_omi.signin.confirm_records import ConfirmLedger, PendingConfirmation
from flask_omi.signin.responses import json_error, no_frames, no_store
from flask_omi.signin.user import UID_KEY, login_omi_user
from flask_omi.validation import safe_next_path

logger = logging.getLogger("flask_omi")

FORM_TOKEN_KEY = "_omi_confirm_form"  # noqa: S105 (a session key's name, not a secret)


def ledger() -> ConfirmLedger:
    """This app's confirmation records: in ``OMI_STATE_REGISTRY``'s store, else in this process."""
    return ConfirmLedger(get_extension().confirm_store(current_app.config), _key())


def has_pending() -> bool:
    """Whether this session points to a pending confirmation (cheap: no store read)."""
    return isinstance(session.get(confirm.PENDING_CONFIRM_KEY), str)


def pending() -> PendingConfirmation | None:
    """This session's pending confirmation, read from the store (None when there is none, it expired or
    was used)."""
    record_id = session.get(confirm.PENDING_CONFIRM_KEY)
    if record_id is None:
        return None
    records = ledger()
    try:
        return records.load(record_id)
    except Exception as error:  # a store that fails: nothing is pending that could be confirmed
        logger.error("OMI sign-in confirmation: the store failed (%s)", type(error).__name__)
        raise ConfirmationUnavailable() from None


def is_confirmed() -> bool:
    """Whether the signed-in uid confirmed a code in this session."""
    uid = session.get(UID_KEY)
    return uid is not None and session.get(confirm.CONFIRMED_KEY) == uid


def confirm_omi_sign_in() -> None:
    """Mark the current sign-in confirmed, for an app that confirmed it by a second factor of its
    own (a password, a passkey): ``@omi_login_required(confirmed=True)`` views then run. Like
    Flask-Login's ``confirm_login``; raises :class:`RuntimeError` when nobody is signed in."""
    uid = session.get(UID_KEY)
    if not isinstance(uid, str):
        raise RuntimeError("confirm_omi_sign_in() needs a signed-in OMI user")
    session.pop(confirm.PENDING_CONFIRM_KEY, None)
    session[confirm.CONFIRMED_KEY] = uid


def _key() -> bytes:
    secret = current_app.secret_key
    return secret.encode() if isinstance(secret, str) else bytes(secret or b"")


def site_name() -> str:
    """The site a code is for, from ``OMI_EXTERNAL_URL`` only (required with confirmation)."""
    return urlsplit(str(current_app.config.get("OMI_EXTERNAL_URL") or "")).netloc or "this app"


def _next_hour(now: float) -> float:
    return (int(now // 3600) + 1) * 3600


def _flooded(limit: str, uid: str) -> None:
    logger.warning("OMI sign-in confirmation: the %s limit is reached", limit)
    omi_confirm_flooded.send(current_app._get_current_object(), limit=limit, uid=uid)  # type: ignore[attr-defined]


def start_confirmation(uid: str, next_path: str | None, purpose: str) -> BaseResponse:
    """Send a code to ``uid``'s phone and/or show one for OMI's chat, within the budgets; point this
    session to the pending confirmation. Nothing is written for the uid: nobody is signed in yet."""
    config = current_app.config
    channels = config["OMI_CONFIRM_CHANNELS"]
    now = get_extension().clock()
    records = ledger()
    address = request.remote_addr or "unknown"
    try:
        if not records.take_start(address, now, int(config["OMI_CONFIRM_CODES_PER_ADDRESS"])):
            _flooded("codes_per_address", uid)
            raise ConfirmationRateLimited(_next_hour(now) - now)
        notify = "notification" in channels
        if notify and not records.take_send(uid, now, int(config["OMI_CONFIRM_SENDS_PER_UID"])):
            _flooded("sends_per_uid", uid)
            notify = False
        if not notify and "chat" not in channels:
            raise ConfirmationRateLimited(_next_hour(now) - now)
        opened = records.new(uid, next_path, purpose, now, notify=notify, chat="chat" in channels)
        if notify and not _send(uid, opened.code, now):
            opened.record.notified = False  # OMI's own limit: the chat channel is still open
        _retire_previous(records)
        records.save(opened.record)
    except OmiCallbackError:
        raise
    except Exception as error:  # the store failed or is full: no code, no sign-in (fail closed)
        logger.error("OMI sign-in confirmation: the store failed (%s)", type(error).__name__)
        raise ConfirmationUnavailable() from None
    session[confirm.PENDING_CONFIRM_KEY] = opened.record.id
    session[FORM_TOKEN_KEY] = secrets.token_urlsafe(16)
    return no_store(redirect(url_for(get_extension().endpoint("confirm")), code=303))


def _send(uid: str, code: str, now: float) -> bool:
    """Send the code through OMI; False when OMI's hourly limit is reached and chat can stand in."""
    text = confirm.message(site_name(), code, confirm.describe_browser(request.user_agent.string), now)
    try:
        omi_client().send_notification(uid, text)
    except OmiAppNotEnabled:
        raise ConfirmationRefused() from None
    except OmiRateLimited as error:
        if "chat" in current_app.config["OMI_CONFIRM_CHANNELS"]:
            return False
        raise ConfirmationRateLimited(error.retry_after) from None
    except OmiApiError as error:
        logger.error("OMI sign-in confirmation: OMI could not send the code (%s)", error.error_code)
        raise ConfirmationUnavailable() from None
    except Exception as error:  # a bug below must not sign anyone in, nor become a 500
        logger.error("OMI sign-in confirmation: sending the code failed (%s)", type(error).__name__)
        raise ConfirmationUnavailable() from None
    return True


def _retire_previous(records: ConfirmLedger) -> None:
    """A new code replaces this session's previous one, on the server too."""
    previous = records.load(session.get(confirm.PENDING_CONFIRM_KEY))
    if previous is not None:
        records.retire(previous)


def _refuse(error: OmiCallbackError) -> NoReturn:
    logger.warning("OMI sign-in confirmation refused: %s", error.error_code)
    omi_login_failed.send(current_app._get_current_object(), error_code=error.error_code, error=error)  # type: ignore[attr-defined]
    raise error


def _form_token_ok() -> bool:
    expected = session.get(FORM_TOKEN_KEY)
    given = request.form.get("form_token", "")
    return isinstance(expected, str) and secrets.compare_digest(expected.encode(), given.encode())


def _page(record: PendingConfirmation | None, status: int = 200, **context: Any) -> Response:
    extension = get_extension()
    fake = extension.fake_omi_url or _loopback_api_base()
    send_again_at = None
    if record is not None and not record.notified:
        at = datetime.fromtimestamp(_next_hour(extension.clock()), tz=timezone.utc)
        send_again_at = at.strftime("%H:%M UTC")
    chat_url = None
    if fake and record is not None and record.chat_code:
        chat_url = f"{fake}/_fake/chat?" + urlencode(
            {"app_id": current_app.config["OMI_APP_ID"], "uid": record.uid}
        )
    html = render_template(
        "omi/confirm.html",
        pending=record,
        site=site_name(),
        form_token=session.get(FORM_TOKEN_KEY, ""),
        digits=confirm.CODE_DIGITS,
        send_again_at=send_again_at,
        inbox_url=f"{fake}/_fake/inbox?" + urlencode({"uid": record.uid})
        if fake and record and record.notified
        else None,
        chat_url=chat_url,
        **context,
    )
    return no_frames(no_store(Response(html, status=status, mimetype="text/html")))


def _loopback_api_base() -> str | None:
    """``OMI_API_BASE`` when it is on this machine: only the fake OMI is (``flask omi
    fake-server``), so the confirm page can link to its inbox and chat."""
    base = str(current_app.config.get("OMI_API_BASE") or "").rstrip("/")
    return base if urlsplit(base).hostname in ("127.0.0.1", "localhost", "::1") else None


def confirm_page() -> BaseResponse:
    """``GET /omi/confirm``: the code form, or, for a signed-in user asked to step up, a button that
    sends a code (a GET never sends one: another site could otherwise spam the user's phone)."""
    record = pending()
    if record is None and session.get(UID_KEY) is None:
        return _page(None, status=400, problem=ConfirmationMissing.description)
    if FORM_TOKEN_KEY not in session:
        session[FORM_TOKEN_KEY] = secrets.token_urlsafe(16)
    return _page(record, can_send=True, step_up_next=safe_next_path(request.args.get("next")))


def confirm_submit() -> BaseResponse:
    """``POST /omi/confirm``: the code, a request for a (new) code (``send=1``), or, after the chat
    code was sent in OMI's chat, ``chat=1``."""
    if not _form_token_ok():
        return _page(pending(), status=400, problem="This form has expired. Please try again.")
    record = pending()
    if request.form.get("send"):
        return _send_again(record)
    if record is None:
        _refuse(ConfirmationMissing())
    now = get_extension().clock()
    if record.expired(now):
        session.pop(confirm.PENDING_CONFIRM_KEY, None)
        _refuse(CodeExpired())
    records = ledger()
    try:
        if request.form.get("chat"):
            outcome, left = records.take_chat(record), 0
        else:
            outcome, left = records.check_code(record, request.form.get("code"), now)
    except Exception as error:  # the store failed: no comparison, no sign-in (fail closed)
        logger.error("OMI sign-in confirmation: the store failed (%s)", type(error).__name__)
        raise ConfirmationUnavailable() from None
    return _answer(record, outcome, left)


def _answer(record: PendingConfirmation, outcome: str, left: int) -> BaseResponse:
    if outcome == "confirmed":
        return _complete(record)
    if outcome == "wrong":
        logger.info("OMI sign-in confirmation: a wrong code (%d tries left)", left)
        return _page(record, status=400, problem=f"That code is not right. {left} tries left.")
    if outcome == "missing":
        problem = "OMI has not passed the code on yet. Send it in OMI's chat, then press Continue."
        return _page(record, status=400, problem=problem)
    session.pop(confirm.PENDING_CONFIRM_KEY, None)
    if outcome == "budget_spent":
        _flooded("comparisons_per_uid", record.uid)
    if outcome == "used":
        _refuse(ConfirmationMissing())
    _refuse(CodeTriesExhausted())


def _send_again(record: PendingConfirmation | None) -> BaseResponse:
    now = get_extension().clock()
    if record is not None and now - record.sent_at < confirm.RESEND_COOLDOWN:
        wait = int(confirm.RESEND_COOLDOWN - (now - record.sent_at)) + 1
        problem = f"A code was just sent. You can ask for another in {wait} s."
        return _page(record, status=429, problem=problem)
    if record is not None:
        return start_confirmation(record.uid, record.next, record.purpose)
    uid = session.get(UID_KEY)
    if not isinstance(uid, str):
        _refuse(ConfirmationMissing())
    return start_confirmation(uid, safe_next_path(request.form.get("next")), "step-up")


def _complete(record: PendingConfirmation) -> BaseResponse:
    """The code is right: sign in exactly as a callback does, and remember the confirmation."""
    session.pop(confirm.PENDING_CONFIRM_KEY, None)
    login_omi_user(record.uid)  # clears and renews the session, sends omi_logged_in
    session[confirm.CONFIRMED_KEY] = record.uid
    target = safe_next_path(record.next) or current_app.config["OMI_LOGIN_REDIRECT"]
    return redirect(target, code=302)


def confirmation_required(next_path: str | None, wants_json: bool) -> Any:
    """What a protected view answers while a confirmation is owed: the app's
    ``needs_confirmation_handler`` when it registered one, else the confirm page or 401 JSON."""
    handler = get_extension().handlers.needs_confirmation
    if handler is not None:
        return current_app.ensure_sync(handler)()
    if wants_json:
        return json_error(
            401,
            "confirmation_required",
            "Confirm this sign-in with the code sent to your OMI app.",
            confirm_url=url_for(get_extension().endpoint("confirm")),
        )
    return no_store(redirect(url_for(get_extension().endpoint("confirm"), next=next_path), code=302))
