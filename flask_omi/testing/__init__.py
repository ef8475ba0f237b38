"""Test helpers for apps that use flask-omi: a fake OMI and a way to sign test clients in.

The pytest plugin (:mod:`flask_omi.testing.pytest_plugin`) is registered automatically and offers
the ``fake_omi`` and ``omi_sign_in`` fixtures.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import request_started, session, url_for
from flask.testing import FlaskClient

from flask_omi.extension import get_extension
from flask_omi.signin.confirm import CONFIRMED_KEY
from flask_omi.signin.user import login_omi_user, logout_omi_user
from flask_omi.testing.connect import LiveApp, connect_app, register_app_in_fake
from flask_omi.testing.fake.fake_omi import FakeOmi, FakeOmiRefused
from flask_omi.testing.fake.store import ALL_ACTIONS, FakeApp, FakeOmiStore, Fault
from flask_omi.testing.server import LiveServer
from flask_omi.testing.webhook_sender import Delivery, deliver_webhook, send_webhook, webhook_url
from flask_omi.validation import is_valid_uid


def sign_in_test_client(client: FlaskClient, uid: str, *, confirmed: bool = False) -> None:
    """Sign a Flask test client in as ``uid`` as a successful callback does, without OMI.

    Everything a real sign-in does happens: the session is cleared, a server-side session gets a new
    id, and ``omi_logged_in`` is sent, so an app bridged to Flask-Login is signed in there too. Only
    the round trip through OMI and the uid checks (verifiers, ``OMI_VERIFY_UID``) are skipped.
    ``confirmed=True`` signs in as if the code sent to the user's OMI app had been typed
    (``OMI_CONFIRM_SIGNIN``), so views marked ``omi_login_required(confirmed=True)`` run too.
    """
    if not is_valid_uid(uid):
        raise ValueError(f"not a valid OMI uid: {uid!r}")

    def sign_in() -> None:
        login_omi_user(uid)
        if confirmed:
            session[CONFIRMED_KEY] = uid

    _in_client_session(client, sign_in)


def sign_out_test_client(client: FlaskClient) -> None:
    """Sign a Flask test client out as ``POST /omi/logout`` does (session cleared, signal sent)."""
    _in_client_session(client, logout_omi_user)


def _in_client_session(client: FlaskClient, action: Callable[[], object]) -> None:
    """Run ``action`` inside one real request of ``client``, so that everything a request does
    around it happens too: the client's cookies are read, after-request hooks run (Flask-Login's
    remember-me cookie), and the session is saved back into the client's cookies.

    The request is an ``OPTIONS`` of the callback route: Flask answers it itself, so no view runs
    and no pending sign-in is created. ``action`` runs when Flask announces the request.
    """
    app = client.application
    with app.test_request_context():
        path = url_for(get_extension(app).endpoint("callback"))
    ran: list[bool] = []

    def run_once(sender: object, **extra: object) -> None:
        if not ran:
            ran.append(True)
            action()

    with request_started.connected_to(run_once, app):
        client.options(path)
    if not ran:  # pragma: no cover - Flask always sends request_started
        raise RuntimeError("the test request did not run")


__all__ = [
    "ALL_ACTIONS",
    "Delivery",
    "FakeApp",
    "FakeOmi",
    "FakeOmiRefused",
    "FakeOmiStore",
    "Fault",
    "LiveApp",
    "LiveServer",
    "connect_app",
    "deliver_webhook",
    "register_app_in_fake",
    "send_webhook",
    "sign_in_test_client",
    "sign_out_test_client",
    "webhook_url",
]
