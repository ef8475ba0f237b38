"""flask-omi inside a realistic app: an app factory, Flask-Login, Flask-WTF, several apps at once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, render_template_string, session
from flask.testing import FlaskClient
from flask_login import LoginManager, UserMixin, current_user, login_required, logout_user
from flask_wtf.csrf import CSRFProtect

from flask_omi import (
    OmiBlueprint,
    OmiConfigError,
    OmiWebhooks,
    current_omi_user,
    omi_logged_in,
    omi_login_required,
    omi_uid,
)
from flask_omi.contrib.flask_login import FlaskLoginBridge
from flask_omi.testing import sign_in_test_client, sign_out_test_client

from .conftest import make_app, start_login
from .helpers import assert_refused

SECRET = "3c1d7f0b9e2a48d6a5f1c0e9b7d3a2f4"


class User(UserMixin):
    def __init__(self, uid: str) -> None:
        self.id = uid


BANNED = {"banned"}


def load_user(uid: str) -> User | None:
    return None if uid in BANNED else User(uid)


def create_app(**config: Any) -> Flask:
    """An app factory as a user writes one: fresh blueprints per app, handlers before registering."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, OMI_APP_ID="01TESTAPP", **config)
    LoginManager(app)  # the bridge's load_user is Flask-Login's loader too: one loader
    omi = OmiBlueprint()
    app.register_blueprint(omi)
    FlaskLoginBridge(load_user=load_user, remember=True).init_app(app)

    @app.get("/both")
    def both() -> dict[str, Any]:
        # With the bridge, one loader serves both: current_omi_user is the app's User (which has no
        # uid attribute); the signed-in uid is omi_uid(), whatever the loader returns.
        if omi_uid():
            assert current_omi_user.get_id() == current_user.get_id() == omi_uid()
        return {
            "omi": omi_uid(),
            "flask_login": current_user.get_id() if current_user.is_authenticated else None,
            "planted": session.get("planted"),
        }

    @app.get("/members")
    @login_required
    def members() -> str:
        return f"member {current_user.get_id()}"

    @app.post("/app-logout")
    def app_logout() -> str:
        logout_user()  # the app's own sign-out, through Flask-Login
        return "out"

    return app


def both(client: FlaskClient) -> dict[str, Any]:
    return client.get("/both").get_json()  # type: ignore[no-any-return]


# -- omi_sign_in behaves as a real sign-in --------------------------------------------------------
def test_omi_sign_in_sends_the_signal_and_clears_the_session() -> None:
    app = create_app()
    seen: list[str] = []
    omi_logged_in.connect(lambda sender, uid, **_: seen.append(uid), app, weak=False)
    client = app.test_client()
    with client.session_transaction() as planted:
        planted["planted"] = "by an attacker"
    sign_in_test_client(client, "u1")
    assert seen == ["u1"]
    assert both(client) == {"omi": "u1", "flask_login": "u1", "planted": None}
    assert client.get("/members").get_data(as_text=True) == "member u1"
    sign_out_test_client(client)
    assert both(client) == {"omi": None, "flask_login": None, "planted": None}


def test_the_pytest_fixtures_sign_in_and_out(omi_sign_in: Any, omi_sign_out: Any) -> None:
    client = create_app().test_client()
    omi_sign_in(client, "u2")
    assert both(client)["flask_login"] == "u2"
    omi_sign_out(client)
    assert both(client)["flask_login"] is None


# -- the Flask-Login bridge, both directions ------------------------------------------------------
def test_real_sign_in_then_omi_sign_out_signs_out_of_both() -> None:
    client = create_app().test_client()
    assert client.get(f"/omi/callback?uid=u1&state={start_login(client)}").status_code == 302
    assert both(client) == {"omi": "u1", "flask_login": "u1", "planted": None}
    assert client.get_cookie("remember_token") is not None
    client.post("/omi/logout")
    assert both(client)["omi"] is None and both(client)["flask_login"] is None
    assert client.get_cookie("remember_token") is None
    assert_refused(client.get("/members"), 401, "Unauthorized")


def test_the_apps_own_logout_signs_out_of_omi_too() -> None:
    client = create_app().test_client()
    assert client.get(f"/omi/callback?uid=u1&state={start_login(client)}").status_code == 302
    assert client.post("/app-logout").get_data(as_text=True) == "out"
    assert both(client) == {"omi": None, "flask_login": None, "planted": None}
    assert client.get_cookie("remember_token") is None  # not signed back in by the remember cookie
    assert_refused(client.get("/members"), 401, "Unauthorized")


def test_with_the_bridge_omis_sign_out_signs_a_flask_login_only_user_out_too() -> None:
    """The bridge makes the two one sign-in: POST /omi/logout signs out of Flask-Login whatever
    signed the user in (a remember-me restore leaves no OMI uid to go by), remember-me included."""
    app = create_app()

    @app.post("/password-login")
    def password_login() -> str:
        from flask_login import login_user

        login_user(User("pw-user"), remember=True)  # signed in without OMI
        session["planted"] = "cart"
        return "in"

    client = app.test_client()
    client.post("/password-login")
    assert client.get_cookie("remember_token") is not None
    client.post("/omi/logout")
    assert client.get_cookie("remember_token") is None
    assert both(client)["flask_login"] is None and both(client)["omi"] is None
    client.post("/app-logout")
    assert client.get_cookie("remember_token") is None and both(client)["flask_login"] is None


def test_a_sign_out_with_nobody_signed_in_changes_nothing() -> None:
    app = create_app()

    @app.post("/plant")
    def plant() -> str:
        session["planted"] = "cart"
        return "planted"

    client = app.test_client()
    client.post("/plant")
    client.post("/omi/logout")
    assert both(client) == {"omi": None, "flask_login": None, "planted": "cart"}


def test_a_user_flask_login_refuses_is_signed_in_to_neither() -> None:
    client = create_app().test_client()
    client.get(f"/omi/callback?uid=banned&state={start_login(client)}")
    assert both(client)["omi"] is None and both(client)["flask_login"] is None


# -- handlers registered after the blueprint ------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "decorator"),
    [
        (OmiBlueprint, "user_loader"),
        (OmiBlueprint, "uid_verifier"),
        (OmiBlueprint, "setup_checker"),
        (OmiBlueprint, "unauthorized_handler"),
        (OmiWebhooks, "on_conversation_created"),
        (OmiWebhooks, "on_transcript"),
        (OmiWebhooks, "on_audio"),
    ],
)
def test_a_handler_registered_after_the_blueprint_is_refused(make: type, decorator: str) -> None:
    blueprint = make()
    make_app(blueprint)
    with pytest.raises(OmiConfigError, match=rf"{make.__name__}\.{decorator} was called after .* per app"):
        getattr(blueprint, decorator)(lambda *args: None)


def test_an_app_factory_with_fresh_webhooks_keeps_each_apps_handler() -> None:
    def factory(label: str, seen: list[str]) -> Flask:
        app = Flask(label)
        hooks = OmiWebhooks()
        hooks.on_conversation_created(lambda event: seen.append(label))
        app.register_blueprint(hooks)
        return app

    seen: list[str] = []
    first, second = factory("first", seen), factory("second", seen)
    first.test_client().post("/omi/webhooks/conversation?uid=u1", json={"id": "c1"})
    second.test_client().post("/omi/webhooks/conversation?uid=u1", json={"id": "c2"})
    assert seen == ["first", "second"]


# -- Flask-WTF ------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["csrf first", "webhooks first"])
def test_csrf_protect_leaves_omis_webhooks_alone(order: str) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, OMI_APP_ID="01TESTAPP")
    seen: list[str] = []
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: seen.append(event.id))
    if order == "csrf first":
        CSRFProtect(app)
        app.register_blueprint(hooks, name="renamed_hooks", url_prefix="/hooks")
    else:
        app.register_blueprint(hooks, name="renamed_hooks", url_prefix="/hooks")
        CSRFProtect(app)

    @app.post("/form")
    def form() -> str:
        return "accepted"

    client = app.test_client()
    assert client.post("/hooks/conversation?uid=u1", json={"id": "c1"}).status_code == 200
    assert seen == ["c1"]
    assert client.post("/form").status_code == 400  # the app's own forms stay protected


def test_the_sign_out_form_carries_the_csrf_token() -> None:
    app = create_app()
    CSRFProtect(app)

    @app.get("/page")
    def page() -> str:
        return render_template_string(
            '<form method="post" action="{{ url_for(\'omi.logout\') }}">'
            '<input type="hidden" name="csrf_token" value="{{ csrf_token() }}"></form>'
        )

    client = app.test_client()
    sign_in_test_client(client, "u1")
    assert client.post("/omi/logout").status_code == 400  # without the token
    html = client.get("/page").get_data(as_text=True)
    token = html.split('value="', 1)[1].split('"', 1)[0]
    assert client.post("/omi/logout", data={"csrf_token": token}).status_code == 302
    assert both(client)["omi"] is None


# -- module-level objects, registered in a factory -----------------------------------------------------
def test_module_level_blueprints_serve_every_app_a_factory_makes() -> None:
    """The README's pattern: blueprints and handlers at import, registered in each app the factory
    makes, as with Flask-Login's LoginManager."""
    from flask_omi import OmiTools, OmiWebhooks, omi_uid

    omi = OmiBlueprint()
    hooks = OmiWebhooks()
    tools = OmiTools()
    seen: list[str] = []
    omi.user_loader(lambda uid: SimpleNamespace(uid=uid))  # a plain object: no is_authenticated
    hooks.on_conversation_created(lambda event: seen.append(event.uid) or None)

    @tools.tool
    def whoami(uid: str) -> str:
        """Say who is asking."""
        return uid

    def factory(app_id: str) -> Flask:
        app = Flask(__name__)
        app.config.update(SECRET_KEY=SECRET, OMI_APP_ID=app_id)
        for blueprint in (omi, hooks, tools):
            app.register_blueprint(blueprint)

        @app.get("/me")
        @omi_login_required
        def me() -> str:
            return f"{app_id}:{omi_uid()}"

        return app

    first, second = factory("01FIRST"), factory("01SECOND")
    for app, uid in ((first, "a1"), (second, "b2")):
        client = app.test_client()
        assert client.get(f"/omi/callback?uid={uid}&state={start_login_for(client, app)}").status_code == 302
        assert client.get("/me").get_data(as_text=True) == f"{app.config['OMI_APP_ID']}:{uid}"
        assert client.post(f"/omi/webhooks/conversation?uid={uid}", json={"id": "c"}).status_code == 200
        assert client.post("/omi/tools/whoami", json={"uid": uid}).get_json() == {"result": uid}
    assert seen == ["a1", "b2"]
    with pytest.raises(OmiConfigError, match="after this OmiBlueprint was registered"):
        omi.uid_verifier(lambda uid: True)


def start_login_for(client: FlaskClient, app: Flask) -> str:
    from urllib.parse import parse_qs, urlsplit

    location = client.get("/omi/login").headers["Location"]
    return parse_qs(urlsplit(location).query)["state"][0]


def test_requires_sign_in_means_signed_in_here_once_with_the_bridge() -> None:
    """The documented bridge loaded with get_or_create: a tool's requires_sign_in accepted a uid
    that had never signed in, and created a user row for it. Loading no longer creates."""
    from flask_omi import OmiTools
    from flask_omi.contrib.flask_login import FlaskLoginBridge

    rows: dict[str, User] = {}
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, OMI_APP_ID="01TESTAPP")
    LoginManager(app)
    app.register_blueprint(OmiBlueprint())
    FlaskLoginBridge(load_user=rows.get, create_user=lambda uid: rows.setdefault(uid, User(uid))).init_app(
        app
    )
    tools = OmiTools()

    @tools.tool(requires_sign_in=True)
    def notes(user: Any) -> str:
        """The signed-in user's notes."""
        return f"notes of {user.get_id()}"

    app.register_blueprint(tools)
    client = app.test_client()
    stranger = client.post("/omi/tools/notes", json={"uid": "stranger"})
    assert (
        stranger.status_code == 400 and "Sign in to this app with OMI first" in stranger.get_json()["error"]
    )
    assert rows == {}  # no row for a uid that never signed in
    state = start_login(client)
    assert client.get(f"/omi/callback?uid=alice&state={state}").status_code == 302
    assert set(rows) == {"alice"}
    assert client.post("/omi/tools/notes", json={"uid": "alice"}).get_json() == {"result": "notes of alice"}
