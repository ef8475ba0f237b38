"""The fake OMI's sign-in pages: ``/v1/oauth/authorize`` and ``/v1/oauth/token``.

They reproduce what OMI really does (``backend/routers/oauth.py`` 62f4b462,
``backend/templates/oauth_authenticate.html`` 0def44eb), quirks included: the authorize page renders
``state`` into a JavaScript string with HTML escaping (a missing state becomes the text ``None``),
and its script builds the final URL as ``redirect_url + "?uid=" + uid + "&state=" + state``
without encoding. OMI's own CSRF step is there too: the page sets the ``omi_oauth_csrf`` cookie and
embeds the same token, and the token step refuses a form whose token is not the cookie's, so in one
browser only the most recently opened page can finish.
The only difference is sign-in itself: instead of Firebase, the page asks which uid to be, and the
"ID token" it posts is ``fake-id-token:<uid>``.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

import requests
from flask import Blueprint, current_app, jsonify, render_template, request
from werkzeug.wrappers import Response

from flask_omi.testing.fake.store import FakeOmiStore

ID_TOKEN_PREFIX = "fake-id-token:"  # noqa: S105 (a marker, not a secret)
#: OMI's double-submit CSRF cookie, and its answer when the page's token is not the cookie's.
CSRF_COOKIE = "omi_oauth_csrf"
STALE_PAGE = "This authorization request is invalid or expired. Please restart the connection from the app."
#: OMI's HTTP client for the setup check (``utils/http_client.py`` ``get_auth_client``) waits 10 s.
SETUP_CHECK_TIMEOUT = 10.0

oauth = Blueprint("fake_oauth", __name__, template_folder="templates")


def _store() -> FakeOmiStore:
    store: FakeOmiStore = current_app.extensions["fake_omi"]
    return store


def _detail(status: int, detail: Any) -> Response:
    response = jsonify(detail=detail)
    response.status_code = status
    return response


@oauth.get("/v1/oauth/authorize")
def authorize() -> Any:
    """``GET /v1/oauth/authorize``: OMI's consent page, with its CSRF cookie, for this app."""
    app_id = request.args.get("app_id")
    if app_id is None:
        return _detail(422, [{"loc": ["query", "app_id"], "msg": "Field required", "type": "missing"}])
    app = _store().apps.get(app_id)
    if app is None:
        return _detail(404, "App not found")
    if not app.app_home_url:
        return _detail(400, "App home URL not configured for this app.")
    # Jinja's autoescape puts the state into the script HTML-escaped, and None as "None": as OMI does.
    csrf_token = secrets.token_urlsafe(32)
    response = current_app.make_response(
        render_template(
            "fake_omi/authorize.html",
            app=app,
            app_id=app_id,
            state=request.args.get("state"),
            csrf_token=csrf_token,
            id_token_prefix=ID_TOKEN_PREFIX,
        )
    )
    response.set_cookie(
        CSRF_COOKIE, csrf_token, max_age=600, httponly=True, secure=True, samesite="Strict", path="/"
    )
    return response


@oauth.post("/v1/oauth/token")
def token() -> Any:
    """``POST /v1/oauth/token``: OMI's checks in OMI's order, the setup-completed call, then the answer
    the page redirects with."""
    form = request.form
    id_token, app_id, csrf_token = form.get("firebase_id_token"), form.get("app_id"), form.get("csrf_token")
    missing = [name for name in ("firebase_id_token", "app_id", "csrf_token") if form.get(name) is None]
    if missing:
        problems = [{"loc": ["body", name], "msg": "Field required", "type": "missing"} for name in missing]
        return _detail(422, problems)
    assert id_token is not None and app_id is not None and csrf_token is not None
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not hmac.compare_digest(csrf_token.encode(), cookie.encode()):
        return _detail(403, STALE_PAGE)
    if not id_token.startswith(ID_TOKEN_PREFIX) or len(id_token) == len(ID_TOKEN_PREFIX):
        return _detail(401, "Invalid Firebase ID token: not a fake OMI token")
    uid = id_token[len(ID_TOKEN_PREFIX) :]
    store = _store()
    app = store.apps.get(app_id)
    if app is None:
        return _detail(404, "App not found")
    if not app.app_home_url:
        return _detail(400, "App not configured for OAuth or app home URL not set")
    if not store.is_enabled(uid, app_id):
        refusal = _enable_refusal(store, app_id, uid)
        if refusal is not None:
            return refusal
        with store.lock:
            failing = store.enable_failures > 0
            store.enable_failures -= int(failing)
        if failing:
            return _detail(
                500, "Could not automatically enable the app. Please try again or enable it manually."
            )
        store.enable_app(uid, app_id)
    return jsonify(uid=uid, redirect_url=app.app_home_url, state=form.get("state"))


def _enable_refusal(store: FakeOmiStore, app_id: str, uid: str) -> Response | None:
    """OMI's checks before it enables an app for a user, in its order (``backend/routers/oauth.py``)."""
    app = store.apps[app_id]
    if app.private and app.owner_uid != uid and uid not in app.testers:
        return _detail(403, "This app is private and you are not authorized to enable it.")
    if app.setup_completed_url:
        # Always "?uid=", even when the URL already has a query: OMI concatenates.
        url = app.setup_completed_url + f"?uid={uid}"
        try:
            answer = requests.get(url, timeout=SETUP_CHECK_TIMEOUT, allow_redirects=False)
            if not 200 <= answer.status_code < 300:  # raise_for_status: redirects are errors too
                raise requests.HTTPError(f"status {answer.status_code}")
        except requests.RequestException:
            return _detail(
                503, "Failed to verify app setup completion. Please try again later or contact support."
            )
        try:
            body = answer.json()
        except ValueError:
            return _detail(
                503,
                "Could not verify app setup due to an invalid response from the app. "
                "Please contact app developer or support.",
            )
        # Anything but an object with a truthy is_setup_completed is "not completed"
        # (_setup_completed_from_payload, oauth.py 62f4b462; older OMI answered 500 for a non-object).
        if not isinstance(body, dict) or not body.get("is_setup_completed", False):
            return _detail(400, "App setup is not completed. Please complete app setup before authorizing.")
    if app.paid and uid not in app.buyers:
        return _detail(403, "This is a paid app. Please purchase the app before authorizing.")
    return None
