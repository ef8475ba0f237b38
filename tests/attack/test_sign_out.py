"""Sign-out: the whole session goes (``OMI_LOGOUT_CLEAR_SESSION``, on by default), a server-side
session gets a new id, and an app bridged to Flask-Login (the README's two-signal recipe) is
signed out of both. A cookie session copied before sign-out keeps working until it expires: that
limit is shown here, as SECURITY.md states it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, session
from flask.testing import FlaskClient
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from flask_omi import OmiBlueprint, current_omi_user, omi_logged_in, omi_logged_out

from ..conftest import make_app
from ..helpers import sign_in as shared_sign_in


class User(UserMixin):
    def __init__(self, uid: str) -> None:
        self.id = uid


def bridged_app(**config: Any) -> Flask:
    """The README's Flask-Login recipe, both halves."""
    app = make_app(OmiBlueprint(), **config)
    login_manager = LoginManager(app)
    login_manager.user_loader(User)

    @omi_logged_in.connect_via(app)
    def bridge_in(sender: Flask, uid: str, **extra: Any) -> None:
        login_user(User(uid), remember=True)

    @omi_logged_out.connect_via(app)
    def bridge_out(sender: Flask, uid: str, **extra: Any) -> None:
        logout_user()

    @app.get("/both")
    def both() -> dict[str, Any]:
        return {
            "omi": current_omi_user.uid,
            "flask_login": current_user.get_id() if current_user.is_authenticated else None,
            "cart": session.get("cart"),
        }

    @app.post("/cart")
    def add_to_cart() -> str:
        session["cart"] = ["book"]
        return "ok"

    # Keep the receivers alive as long as the app (blinker holds them weakly).
    app.extensions["test_bridge"] = (bridge_in, bridge_out)
    return app


def sign_in_with_a_cart(client: FlaskClient, uid: str = "u1") -> None:
    """Sign in, then put a book in the cart: something of the app's own in the session."""
    shared_sign_in(client, uid)
    client.post("/cart")


def test_after_sign_out_neither_is_signed_in_and_the_session_is_empty() -> None:
    client = bridged_app().test_client()
    sign_in_with_a_cart(client)
    assert client.get("/both").get_json() == {"omi": "u1", "flask_login": "u1", "cart": ["book"]}
    assert client.get_cookie("remember_token") is not None
    assert client.post("/omi/logout").status_code == 302
    assert client.get("/both").get_json() == {"omi": None, "flask_login": None, "cart": None}
    assert client.get_cookie("remember_token") is None  # Flask-Login's remember cookie went too
    with client.session_transaction() as stored:
        assert not any(key in stored for key in ("_omi_uid", "_user_id", "cart", "_omi_pending"))


def test_clearing_can_be_turned_off() -> None:
    client = bridged_app(OMI_LOGOUT_CLEAR_SESSION=False).test_client()
    sign_in_with_a_cart(client)
    client.post("/omi/logout")
    assert client.get("/both").get_json() == {"omi": None, "flask_login": None, "cart": ["book"]}


def test_a_cookie_session_copied_before_sign_out_still_works() -> None:
    """The documented limit of cookie sessions: sign-out cannot reach a copy of the cookie."""
    app = bridged_app()
    client = app.test_client()
    sign_in_with_a_cart(client)
    copied = client.get_cookie("session")
    assert copied is not None
    client.post("/omi/logout")
    thief = app.test_client()
    thief.set_cookie("session", copied.value)
    assert thief.get("/both").get_json()["omi"] == "u1"


def test_with_server_side_sessions_sign_out_gives_a_new_id_and_the_old_one_is_dead(redis_url: str) -> None:
    import redis
    from flask_session import Session

    app = bridged_app(SESSION_TYPE="redis", SESSION_REDIS=redis.from_url(redis_url), SESSION_PERMANENT=False)
    Session(app)
    client = app.test_client()
    sign_in_with_a_cart(client)
    before = client.get_cookie("session")
    assert before is not None
    client.post("/omi/logout")
    after = client.get_cookie("session")
    assert after is None or after.value != before.value
    assert client.get("/both").get_json() == {"omi": None, "flask_login": None, "cart": None}
    thief = app.test_client()
    thief.set_cookie("session", before.value)
    assert thief.get("/both").get_json() == {"omi": None, "flask_login": None, "cart": None}
