"""The Flask side of OMI-confirmed sign-in (``OMI_CONFIRM_SIGNIN``): sending the code, the
``/omi/confirm`` page, and what protected views do until a sign-in is confirmed.

``True``: a callback that passes every check sends a code instead of signing in; the sign-in counts
only once the code is typed here. ``"step-up"``: sign-in happens at once, and views marked
``@omi_login_required(confirmed=True)`` ask for a code first, as sensitive pages ask for a password
again. The logic of the code itself lives in :mod:`flask_omi.confirm`.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, NoReturn
from urllib.parse import urlsplit

from flask import Response, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from . import confirm
from .config import external_url
from .errors import (
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
from .extension import get_extension, omi_client
from .responses import json_error, no_frames, no_store
from .signals import omi_login_failed
from .stores import MemoryStore
from .user import UID_KEY, login_omi_user
from .validation import safe_next_path

logger = logging.getLogger("flask_omi")

FORM_TOKEN_KEY = "_omi_confirm_form"  # noqa: S105 (a session key's name, not a secret)
#: Wrong guesses per uid are counted here when OMI_STATE_REGISTRY names no shared store; full, it
#: refuses, and a refused count ends the confirmation (fail closed).
_local_guesses = MemoryStore(100_000, when_full="refuse")


def pending() -> confirm.PendingConfirmation | None:
    return confirm.PendingConfirmation.from_session_value(session.get(confirm.PENDING_CONFIRM_KEY))


def is_confirmed() -> bool:
    """Whether the signed-in uid confirmed a code in this session."""
    uid = session.get(UID_KEY)
    return uid is not None and session.get(confirm.CONFIRMED_KEY) == uid


def _key() -> bytes:
    secret = current_app.secret_key
    return secret.encode() if isinstance(secret, str) else bytes(secret or b"")


def _site() -> str:
    base = external_url(current_app.config, "/") or request.host_url
    return urlsplit(base).netloc or "this app"


def send_code(uid: str, next_path: str | None, purpose: str) -> BaseResponse:
    """Send a fresh code to ``uid``'s phone, remember it (hashed) in this session, show the form.

    Nothing is written for the uid here: until the code comes back, nobody is signed in."""
    now = get_extension().clock()
    record, code = confirm.pending_for(_key(), uid, next_path, now, purpose)
    text = confirm.message(_site(), code, confirm.describe_browser(request.user_agent.string), now)
    try:
        omi_client().send_notification(uid, text)
    except OmiAppNotEnabled:
        raise ConfirmationRefused() from None
    except OmiRateLimited as error:
        raise ConfirmationRateLimited(error.retry_after) from None
    except OmiApiError as error:
        logger.error("OMI sign-in confirmation: OMI could not send the code (%s)", error.error_code)
        raise ConfirmationUnavailable() from None
    except Exception as error:  # a bug below must not sign anyone in, nor become a 500
        logger.error("OMI sign-in confirmation: sending the code failed (%s)", type(error).__name__)
        raise ConfirmationUnavailable() from None
    session[confirm.PENDING_CONFIRM_KEY] = record.as_session_value()
    session[FORM_TOKEN_KEY] = secrets.token_urlsafe(16)
    return no_store(redirect(url_for(get_extension().endpoint("confirm")), code=303))


def _refuse(error: OmiCallbackError) -> NoReturn:
    logger.warning("OMI sign-in confirmation refused: %s", error.error_code)
    omi_login_failed.send(current_app._get_current_object(), error_code=error.error_code, error=error)  # type: ignore[attr-defined]
    raise error


def _form_token_ok() -> bool:
    expected = session.get(FORM_TOKEN_KEY)
    given = request.form.get("form_token", "")
    return isinstance(expected, str) and secrets.compare_digest(expected.encode(), given.encode())


def _page(status: int = 200, **context: Any) -> Response:
    record = pending()
    inbox = get_extension().fake_inbox
    html = render_template(
        "omi/confirm.html",
        pending=record,
        form_token=session.get(FORM_TOKEN_KEY, ""),
        digits=confirm.CODE_DIGITS,
        inbox_url=f"{inbox}?uid={record.uid}" if inbox and record else None,
        **context,
    )
    return no_frames(no_store(Response(html, status=status, mimetype="text/html")))


def confirm_page() -> BaseResponse:
    """``GET /omi/confirm``: the code form, or, for a signed-in user asked to step up, a button that
    sends a code (a GET never sends one: another site could otherwise spam the user's phone)."""
    if pending() is None and session.get(UID_KEY) is None:
        return _page(status=400, problem=ConfirmationMissing.description)
    if FORM_TOKEN_KEY not in session:
        session[FORM_TOKEN_KEY] = secrets.token_urlsafe(16)
    return _page(can_send=True, step_up_next=safe_next_path(request.args.get("next")))


def confirm_submit() -> BaseResponse:
    """``POST /omi/confirm``: the code, or (``send=1``) a request for a (new) code."""
    if not _form_token_ok():
        return _page(status=400, problem="This form has expired. Please try again.")
    record = pending()
    if request.form.get("send"):
        return _send_again(record)
    if record is None:
        _refuse(ConfirmationMissing())
    now = get_extension().clock()
    if record.expired(now):
        session.pop(confirm.PENDING_CONFIRM_KEY, None)
        _refuse(CodeExpired())
    if not confirm.matches(_key(), record, request.form.get("code", "")):
        return _wrong_code(record, now)
    return _complete(record)


def _send_again(record: confirm.PendingConfirmation | None) -> BaseResponse:
    now = get_extension().clock()
    if record is not None and now - record.sent_at < confirm.RESEND_COOLDOWN:
        wait = int(confirm.RESEND_COOLDOWN - (now - record.sent_at)) + 1
        return _page(status=429, problem=f"A code was just sent. You can ask for another in {wait} s.")
    if record is not None:
        return send_code(record.uid, record.next, record.purpose)
    uid = session.get(UID_KEY)
    if not isinstance(uid, str):
        _refuse(ConfirmationMissing())
    return send_code(uid, safe_next_path(request.form.get("next")), "step-up")


def _wrong_code(record: confirm.PendingConfirmation, now: float) -> BaseResponse:
    store = get_extension().state_store(current_app.config) or _local_guesses
    try:
        within_budget = confirm.count_wrong_guess(store, record.uid, now)
    except Exception as error:  # a store that fails: no more guesses, fail closed
        logger.error("OMI sign-in confirmation: the guess counter failed (%s)", type(error).__name__)
        within_budget = False
    record.tries += 1
    if record.tries >= confirm.MAX_TRIES or not within_budget:
        session.pop(confirm.PENDING_CONFIRM_KEY, None)
        _refuse(CodeTriesExhausted())
    session[confirm.PENDING_CONFIRM_KEY] = record.as_session_value()
    left = confirm.MAX_TRIES - record.tries
    logger.info("OMI sign-in confirmation: a wrong code (%d tries left)", left)
    return _page(status=400, problem=f"That code is not right. {left} tries left.")


def _complete(record: confirm.PendingConfirmation) -> BaseResponse:
    """The code is right: sign in exactly as a callback does, and remember the confirmation."""
    session.pop(confirm.PENDING_CONFIRM_KEY, None)
    login_omi_user(record.uid)  # clears and renews the session, sends omi_logged_in
    session[confirm.CONFIRMED_KEY] = record.uid
    target = safe_next_path(record.next) or current_app.config["OMI_LOGIN_REDIRECT"]
    return redirect(target, code=302)


def confirmation_required(next_path: str | None, wants_json: bool) -> Any:
    """What a protected view answers while a confirmation is owed."""
    if wants_json:
        return json_error(
            401,
            "confirmation_required",
            "Confirm this sign-in with the code sent to your OMI app.",
            confirm_url=url_for(get_extension().endpoint("confirm")),
        )
    return no_store(redirect(url_for(get_extension().endpoint("confirm"), next=next_path), code=302))
