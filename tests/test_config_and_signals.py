"""Registration-time checks, config defaults, and the signals apps connect to."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, session

from flask_omi import OmiBlueprint, OmiConfigError, omi_logged_in, omi_logged_out, omi_login_failed
from flask_omi.config import DEFAULTS

from .conftest import make_app, start_login
from .helpers import assert_refused


def test_missing_app_id_fails_at_registration() -> None:
    app = Flask(__name__)
    app.secret_key = "s" * 32
    with pytest.raises(OmiConfigError, match="OMI_APP_ID"):
        app.register_blueprint(OmiBlueprint())


def test_missing_secret_key_fails_at_registration() -> None:
    app = Flask(__name__)
    app.config["OMI_APP_ID"] = "a"
    with pytest.raises(OmiConfigError, match="SECRET_KEY"):
        app.register_blueprint(OmiBlueprint())


@pytest.mark.parametrize("key", ["OMI_STATE_MAX_AGE", "OMI_MAX_PENDING_SIGNINS"])
@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_bad_numbers_fail_at_registration(key: str, value: object) -> None:
    with pytest.raises(OmiConfigError, match=key):
        make_app(OmiBlueprint(), **{key: value})


def test_defaults_are_set_without_overriding_the_apps_values() -> None:
    app = make_app(OmiBlueprint(), OMI_LOGIN_REDIRECT="/home")
    assert app.config["OMI_LOGIN_REDIRECT"] == "/home"
    for key, value in DEFAULTS.items():
        assert key.startswith("OMI_")
        if key not in ("OMI_LOGIN_REDIRECT", "OMI_APP_ID"):
            assert app.config[key] == value
    assert "omi" in app.extensions


def test_signals_carry_uid_and_reason(app: Flask) -> None:
    events: list[tuple[str, Any]] = []
    omi_logged_in.connect(lambda s, uid: events.append(("in", uid)), app, weak=False)
    omi_logged_out.connect(lambda s, uid: events.append(("out", uid)), app, weak=False)
    omi_login_failed.connect(
        lambda s, error_code, error: events.append(("failed", error_code)), app, weak=False
    )
    client = app.test_client()
    client.get(f"/omi/callback?uid=u1&state={start_login(client)}")
    client.post("/omi/logout")
    client.get("/omi/callback?uid=u1&state=None")
    assert events == [("in", "u1"), ("out", "u1"), ("failed", "state_missing")]


def test_flask_login_app_signs_its_own_user_in_from_omi_logged_in() -> None:
    """The README's recipe for apps that already use Flask-Login."""
    from flask_login import LoginManager, UserMixin, current_user, login_required, login_user

    class User(UserMixin):
        def __init__(self, uid: str) -> None:
            self.id = uid

    app = make_app(OmiBlueprint())
    login_manager = LoginManager(app)
    login_manager.user_loader(User)

    @omi_logged_in.connect_via(app)
    def sign_in_with_flask_login(sender: Flask, uid: str, **extra: Any) -> None:
        login_user(User(uid))

    @app.get("/account")
    @login_required
    def account() -> str:
        return f"flask-login user {current_user.id}, session has omi uid {session['_omi_uid']}"

    client = app.test_client()
    assert_refused(client.get("/account"), 401, "Unauthorized")
    client.get(f"/omi/callback?uid=u42&state={start_login(client)}")
    assert client.get("/account").get_data(as_text=True) == "flask-login user u42, session has omi uid u42"
