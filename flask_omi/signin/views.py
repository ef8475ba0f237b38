"""The blueprint's routes: start sign-in, the App Home callback, sign-out, setup-completed."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, jsonify, redirect, render_template, request, session
from werkzeug.wrappers import Response as BaseResponse

from flask_omi.errors import (
    OmiApiError,
    OmiCallbackError,
    StateCheckUnavailable,
    StateMismatch,
    StateReused,
    UidInvalid,
    UidMissing,
    UidRejected,
    UidVerificationUnavailable,
)
from flask_omi.extension import get_extension, omi_client
from flask_omi.signals import omi_login_failed, omi_logout_requested
from flask_omi.signin.confirm_views import start_confirmation
from flask_omi.signin.responses import json_error, login_url, no_frames, no_store
from flask_omi.signin.state import PendingSignIns
from flask_omi.signin.user import UID_KEY, login_omi_user, logout_omi_user
from flask_omi.stores import StoreFull, hashed_key
from flask_omi.validation import is_valid_uid, safe_next_path

logger = logging.getLogger("flask_omi")


def _pending() -> PendingSignIns:
    config = current_app.config
    return PendingSignIns(
        session,
        max_pending=int(config["OMI_MAX_PENDING_SIGNINS"]),
        max_age=float(config["OMI_STATE_MAX_AGE"]),
        now=get_extension().clock(),
    )


def authorize_url(state: str) -> str:
    """OMI's consent page for this app; ``state`` is URL-safe by construction."""
    config = current_app.config
    base = str(config["OMI_API_BASE"]).rstrip("/")
    return f"{base}/v1/oauth/authorize?" + urlencode({"app_id": config["OMI_APP_ID"], "state": state})


def login() -> BaseResponse:
    """Remember where to return, then send the browser to OMI with a fresh state."""
    state = _pending().begin(safe_next_path(request.args.get("next")))
    return redirect(authorize_url(state), code=302)


def _one_param_or_refuse(name: str) -> str | None:
    """A query parameter that must appear at most once; a repeated one counts as tampering."""
    values = request.args.getlist(name)
    if len(values) > 1:
        raise StateMismatch() if name == "state" else UidInvalid()
    return values[0] if values else None


def callback() -> BaseResponse:
    """The App Home URL. Signs in only with a state this browser issued, then leaves the URL."""
    if "state" not in request.args:
        return _without_state()
    try:
        state = _one_param_or_refuse("state")
        next_path = _pending().complete(state)
        uid = _one_param_or_refuse("uid")
        if not uid:
            raise UidMissing()
        if not is_valid_uid(uid):
            raise UidInvalid()
        # Claimed only for a well-formed callback with a state this browser was issued, and before
        # any slow verification, so that concurrent copies of one callback race for the claim.
        _claim_once(state)
        if current_app.config["OMI_VERIFY_UID"]:
            _verify_with_omi(uid)
        for verifier in get_extension().handlers.uid_verifiers:
            if not _ask_verifier(verifier, uid):
                raise UidRejected()
        if current_app.config["OMI_CONFIRM_SIGNIN"] is True:
            # The uid is only a claim: the sign-in counts once the code sent to its phone is back.
            return start_confirmation(uid, next_path, "sign-in")
    except OmiCallbackError as error:
        # The code only: the state is a secret and an invalid uid is attacker-chosen text.
        logger.warning("OMI sign-in refused: %s", error.error_code)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        omi_login_failed.send(app, error_code=error.error_code, error=error)
        raise
    login_omi_user(uid)
    target = safe_next_path(next_path) or current_app.config["OMI_LOGIN_REDIRECT"]
    return redirect(target, code=302)


def _claim_once(state: str | None) -> None:
    """With ``OMI_STATE_REGISTRY``, the first callback to claim a state wins; every other one,
    concurrent or replayed with an old cookie, on any instance, is refused as reused."""
    config = current_app.config
    extension = get_extension()
    registry = extension.state_store(config)
    if registry is None or state is None:
        return
    extension.state_notice.check(request.environ.get("wsgi.multiprocess"), logger)
    # The session already refuses the state once it is older than OMI_STATE_MAX_AGE; the claim
    # outlives that by a minute, for clocks that differ between instances.
    ttl = int(float(config["OMI_STATE_MAX_AGE"])) + 60
    try:
        first = registry.claim(hashed_key(state), ttl) == "new"
    except StoreFull:
        # An in-process registry that is full must not lock every user out of sign-in: this
        # sign-in keeps the session's own single-use check (see SECURITY.md), and the log says why.
        logger.error("OMI sign-in: OMI_STATE_REGISTRY is full; use a Redis registry (claim skipped)")
        return
    except Exception as error:
        logger.error("OMI sign-in refused: the used-state registry failed (%s)", type(error).__name__)
        raise StateCheckUnavailable() from None
    if not first:
        raise StateReused()


def _ask_verifier(verifier: Any, uid: str) -> bool:
    """An app's verifier that fails refuses the sign-in (fail closed) rather than answering 500."""
    try:
        return bool(current_app.ensure_sync(verifier)(uid))
    except OmiCallbackError:
        raise
    except Exception:
        logger.exception("OMI sign-in: a uid verifier failed; refusing the sign-in")
        raise UidVerificationUnavailable() from None


def _verify_with_omi(uid: str) -> None:
    """Refuse a uid that has not enabled this app; fail closed when OMI cannot tell."""
    deadline = float(current_app.config["OMI_VERIFY_TIMEOUT"])
    try:
        enabled = omi_client().is_app_enabled(uid, deadline=deadline)
    except OmiApiError as error:
        logger.error("OMI sign-in: could not verify the uid with OMI (%s)", error.error_code)
        raise UidVerificationUnavailable() from None
    except Exception:  # a bug here must not become a sign-in (or a 500): fail closed
        logger.exception("OMI sign-in: could not verify the uid with OMI (unexpected failure)")
        raise UidVerificationUnavailable() from None
    if not enabled:
        raise UidRejected()


def _without_state() -> BaseResponse:
    """A visit with no state: the OMI mobile app opening App Home, or a hand-typed link.

    It never signs anyone in. Someone already signed in as that uid goes on to the app; anyone else
    sees a page offering to sign in. A page rather than an automatic redirect, because the OMI app
    opens this URL in a WebView where an unasked-for jump to a sign-in form is confusing and some
    identity providers refuse to run.
    """
    uid = request.args.get("uid")
    if uid and session.get(UID_KEY) == uid:
        return redirect(current_app.config["OMI_LOGIN_REDIRECT"], code=302)
    html = render_template("omi/continue.html", login_url=login_url())
    return no_frames(Response(html, mimetype="text/html"))


def logout() -> BaseResponse:
    """``POST /omi/logout``: sign out of OMI (and, through the signal, of what integrations signed in),
    then go to ``OMI_LOGOUT_REDIRECT``. GET only when allowed: a link or an image could otherwise
    sign people out."""
    if request.method == "GET" and not current_app.config["OMI_LOGOUT_ALLOW_GET"]:
        response = json_error(405, "method_not_allowed", "Sign out with POST (or set OMI_LOGOUT_ALLOW_GET).")
        response.headers["Allow"] = "POST"
        return response
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Sent whether or not an OMI uid is in the session: a sign-in restored by another extension
    # (Flask-Login's remember-me) is signed out by its bridge, even when OMI's part is long gone.
    omi_logout_requested.send(app)
    logout_omi_user()
    return redirect(current_app.config["OMI_LOGOUT_REDIRECT"], code=302)


def setup_completed() -> Any:
    """OMI asks this (``?uid=``) before enabling the app for a user; it wants a JSON object."""
    uid = request.args.get("uid")
    if not uid:
        return json_error(400, UidMissing.error_code, "The uid query parameter is required.")
    if not is_valid_uid(uid):
        return json_error(400, UidInvalid.error_code, "The uid is not a valid OMI uid.")
    checker = get_extension().handlers.setup_checker
    if checker is None:
        return no_store(jsonify(is_setup_completed=True))
    try:
        done = bool(current_app.ensure_sync(checker)(uid))
    except Exception:
        logger.exception("OMI setup-completed checker failed for uid %s", uid)
        return json_error(500, "setup_check_failed", "The setup check failed; please try again.")
    return no_store(jsonify(is_setup_completed=done))
