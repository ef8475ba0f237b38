"""omi_login_required and current_omi_user as an app sees them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from flask_omi import (
    ANONYMOUS,
    OmiBlueprint,
    OmiConfigError,
    OmiUser,
    UidInvalid,
    current_omi_user,
    login_omi_user,
    logout_omi_user,
    omi_login_required,
)

from .conftest import make_app
from .helpers import assert_refused, sign_in


def test_browser_is_sent_to_login_with_next(client: FlaskClient) -> None:
    response = client.get("/dashboard?tab=a%20b&x=1", headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/omi/login?next=/dashboard?tab%3Da%2520b%26x%3D1"
    login = client.get(response.headers["Location"])
    state = login.headers["Location"].rsplit("state=", 1)[1]
    assert client.get(f"/omi/callback?uid=u1&state={state}").headers["Location"] == "/dashboard?tab=a%20b&x=1"


def test_curl_style_accept_any_gets_the_redirect(client: FlaskClient) -> None:
    assert client.get("/dashboard", headers={"Accept": "*/*"}).status_code == 302


@pytest.mark.parametrize(
    "headers",
    [
        {"Accept": "application/json"},
        {"X-Requested-With": "XMLHttpRequest"},
        {"Accept": "application/json, text/html;q=0.5"},
    ],
)
def test_api_clients_get_401_json(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get("/dashboard", headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {
        "error": "omi_login_required",
        "error_description": "Sign in with OMI to use this resource.",
        "login_url": "/omi/login?next=/dashboard",
    }


def test_json_body_without_html_accept_gets_401(app: Flask, client: FlaskClient) -> None:
    @app.post("/api/items")
    @omi_login_required
    def create_item() -> str:
        return "created"

    assert_refused(client.post("/api/items", json={"a": 1}, headers={"Accept": ""}), 401, "login_required")
    sign_in(client)
    assert client.post("/api/items", json={"a": 1}).get_data(as_text=True) == "created"


def test_async_view(app: Flask, client: FlaskClient) -> None:
    @app.get("/async")
    @omi_login_required
    async def async_view() -> str:
        return f"async {current_omi_user.uid}"

    assert client.get("/async").status_code == 302
    sign_in(client, "u7")
    assert client.get("/async").get_data(as_text=True) == "async u7"


def test_unauthorized_handler_overrides(bp: OmiBlueprint) -> None:
    @bp.unauthorized_handler
    def custom() -> tuple[str, int]:
        return "nope", 403

    client = make_app(bp).test_client()
    for headers in ({"Accept": "text/html"}, {"Accept": "application/json"}):
        response = client.get("/dashboard", headers=headers)
        assert (response.status_code, response.get_data(as_text=True)) == (403, "nope")


def test_unsafe_current_path_is_not_used_as_next(client: FlaskClient) -> None:
    response = client.get("/dashboard?" + "x" * 500)
    assert response.headers["Location"] == "/omi/login"


@dataclass
class AppUser:
    uid: str
    name: str
    is_authenticated: bool = True


def test_user_loader_result_is_current_user_loaded_once_per_request(bp: OmiBlueprint) -> None:
    calls: list[str] = []

    @bp.user_loader
    def load(uid: str) -> AppUser | None:
        calls.append(uid)
        return AppUser(uid, "Ada") if uid != "deleted" else None

    app = make_app(bp)

    @app.get("/me")
    @omi_login_required
    def me() -> str:
        return f"{current_omi_user.name}/{current_omi_user.uid}/{current_omi_user.name}"

    client = app.test_client()
    sign_in(client, "u1")
    calls.clear()
    assert client.get("/me").get_data(as_text=True) == "Ada/u1/Ada"
    assert calls == ["u1"]

    sign_in(client, "deleted")
    assert client.get("/me").status_code == 302  # a loader answering None means signed out


def test_default_user_and_anonymous(app: Flask, client: FlaskClient) -> None:
    @app.get("/who")
    def who() -> object:
        user = current_omi_user._get_current_object()
        return jsonify(cls=type(user).__name__, uid=user.uid, auth=user.is_authenticated)

    assert client.get("/who").get_json() == {"cls": "AnonymousOmiUser", "uid": None, "auth": False}
    sign_in(client, "u2")
    assert client.get("/who").get_json() == {"cls": "OmiUser", "uid": "u2", "auth": True}


def test_current_user_outside_a_request_is_a_clear_error(app: Flask) -> None:
    from flask_omi import omi_uid

    with pytest.raises(RuntimeError, match="current_omi_user is used outside a request"):
        current_omi_user.is_authenticated  # noqa: B018
    with app.app_context(), pytest.raises(RuntimeError, match="pass the uid along"):
        current_omi_user.upper()
    with pytest.raises(RuntimeError, match=r"omi_uid\(\) is called outside a request"):
        omi_uid()
    with app.app_context(), pytest.raises(RuntimeError, match="pass the uid along"):
        omi_uid()
    with app.test_request_context():
        assert current_omi_user._get_current_object() is ANONYMOUS and omi_uid() is None


def test_omi_uid_is_a_plain_str_whatever_the_loader_returns(bp: OmiBlueprint) -> None:
    """current_omi_uid was a LocalProxy: isinstance(..., str) said True, yet SQLite refused it
    as a query parameter ("type 'LocalProxy' is not supported"). omi_uid() is a str."""
    import sqlite3

    from flask_omi import omi_uid

    class Account:  # an app's own user class, with no uid attribute
        def __init__(self, key: str) -> None:
            self.key = key
            self.is_authenticated = True

    bp.user_loader(lambda uid: Account(f"account-of-{uid}"))
    app = make_app(bp)

    @app.get("/mine")
    @omi_login_required
    def mine() -> dict[str, Any]:
        uid = omi_uid()
        assert type(uid) is str
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE entry (uid TEXT)")
        db.execute("INSERT INTO entry VALUES (?)", (uid,))
        found = db.execute("SELECT uid FROM entry WHERE uid = ?", (uid,)).fetchone()[0]
        return {"uid": found, "account": current_omi_user.key}

    client = app.test_client()
    sign_in(client, "u7")
    assert client.get("/mine").get_json() == {"uid": "u7", "account": "account-of-u7"}


def test_login_and_logout_helpers(app: Flask) -> None:
    with app.test_request_context():
        login_omi_user("helper_uid")
        assert current_omi_user == OmiUser("helper_uid")
        assert logout_omi_user() is True
        assert current_omi_user.is_authenticated is False
        assert logout_omi_user() is False
        with pytest.raises(UidInvalid):
            login_omi_user("bad uid")


def test_helpers_need_the_blueprint_registered() -> None:
    app = Flask(__name__)
    app.secret_key = "x" * 32
    with app.test_request_context(), pytest.raises(OmiConfigError, match="register_blueprint"):
        login_omi_user("u1")


def test_pytest_plugin_signs_a_test_client_in(client: FlaskClient, omi_sign_in: Any) -> None:
    omi_sign_in(client, "plugin_user")
    assert client.get("/dashboard").get_data(as_text=True) == "hello plugin_user"
    with pytest.raises(ValueError, match="not a valid OMI uid"):
        omi_sign_in(client, "bad uid")
