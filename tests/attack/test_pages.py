"""Smaller promises, each as a test: a signed-out preflight never runs a protected view, the
sign-in pages cannot be framed, and the example's set-up form writes only for the signed-in user,
with its CSRF token."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from example_app import create_app
from flask_omi import omi_login_required

from ..conftest import make_app
from ..helpers import assert_refused, sign_in


def test_a_signed_out_options_request_gets_flasks_default_answer() -> None:
    app = make_app()
    ran: list[str] = []

    @app.route("/api/cors", methods=["GET", "POST", "OPTIONS"])
    @omi_login_required
    def cors() -> str:
        ran.append(request.method)
        return "the view ran"

    client = app.test_client()
    preflight = client.options("/api/cors")
    assert preflight.status_code == 200 and preflight.get_data(as_text=True) == ""
    assert {"GET", "POST", "OPTIONS"} <= set(preflight.headers["Allow"].split(", "))
    assert ran == []
    sign_in(client)
    assert client.options("/api/cors").get_data(as_text=True) == "the view ran"
    assert ran == ["OPTIONS"]


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("continue page (no state)", "/omi/callback?uid=u1"),
        ("error page", "/omi/callback?uid=u1&state=" + "A" * 43),
        ("error page, bad uid", "/omi/callback?uid=%3Cx%3E&state=" + "A" * 43),
    ],
)
def test_sign_in_pages_cannot_be_framed(name: str, url: str) -> None:
    response = make_app().test_client().get(url)
    assert response.mimetype == "text/html", name
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_an_apps_own_frame_policy_is_kept() -> None:
    app = make_app()

    @app.after_request
    def policy(response: object) -> object:
        response.headers["Content-Security-Policy"] = "default-src 'self'"  # type: ignore[attr-defined]
        return response

    response = app.test_client().get("/omi/callback?uid=u1")
    assert response.headers["Content-Security-Policy"] == "default-src 'self'"
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.fixture
def example(tmp_path: Path) -> Flask:
    return create_app({"OMI_APP_ID": "01TESTAPP", "EXAMPLE_DB": str(tmp_path / "ex.db")})


def token_from(client: FlaskClient) -> str:
    page = client.get("/setup").get_data(as_text=True)
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def test_example_setup_needs_the_signed_in_user(example: Flask) -> None:
    store = example.extensions["example_setups"]
    anonymous = example.test_client()
    forged = anonymous.post("/setup", data={"uid": "victim", "display_name": "Pwned"})
    assert forged.status_code == 302 and "/omi/login" in forged.headers["Location"]
    assert anonymous.get("/setup?uid=victim").status_code == 302
    assert store.display_name("victim") is None


def test_example_setup_needs_its_csrf_token(example: Flask) -> None:
    store = example.extensions["example_setups"]
    client = example.test_client()
    sign_in(client, "u1")
    for data in ({"display_name": "Pwned"}, {"display_name": "Pwned", "csrf_token": "guess"}):
        assert client.post("/setup", data=data).status_code == 400
    assert store.display_name("u1") is None
    saved = client.post("/setup", data={"display_name": "Me", "csrf_token": token_from(client)})
    assert saved.status_code == 302 and store.display_name("u1") == "Me"


def test_example_setup_writes_only_for_the_signed_in_uid(example: Flask) -> None:
    store = example.extensions["example_setups"]
    client = example.test_client()
    sign_in(client, "u1")
    assert_refused(client.get("/setup?uid=someone_else"), 403, "Forbidden")
    token = token_from(client)
    client.post("/setup?uid=u1", data={"display_name": "Me", "csrf_token": token, "uid": "victim"})
    assert store.display_name("u1") == "Me" and store.display_name("victim") is None
