"""Every way a callback can be refused: its stable code, a 400, no sign-in, a signal, no 500."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import OmiBlueprint, StateMismatch, omi_login_failed
from flask_omi.errors import SIGN_IN_ERRORS

from .conftest import Clock, make_app, start_login


@pytest.fixture
def failures(app: Flask) -> list[str]:
    codes: list[str] = []

    def record(sender: Flask, error_code: str, **extra: Any) -> None:
        codes.append(error_code)

    omi_login_failed.connect(record, app)
    yield codes  # type: ignore[misc]
    omi_login_failed.disconnect(record, app)


def assert_callback_refused(client: FlaskClient, url: str, code: str, **headers: str) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    if headers.get("Accept") == "application/json":
        assert response.get_json()["error"] == code
    else:
        assert response.mimetype == "text/html"
        assert f'<code id="omi-error-code">{code}</code>' in response.get_data(as_text=True)
    with client.session_transaction() as s:
        assert "_omi_uid" not in s
    assert client.get("/dashboard").status_code == 302


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("uid=u1&state=", "state_missing"),
        ("uid=u1&state=None", "state_missing"),
        ("uid=u1&state=" + "A" * 43, "state_mismatch"),
        ("uid=u1&state=short", "state_mismatch"),
        ("uid=u1&state=" + "A" * 5000, "state_mismatch"),
        ("uid=u1&state=%C3%A9" + "A" * 41, "state_mismatch"),
        ("uid=u1&state=a&amp;b=c", "state_mismatch"),
    ],
)
def test_bad_state(client: FlaskClient, failures: list[str], query: str, code: str, accept: str) -> None:
    start_login(client)
    assert_callback_refused(client, f"/omi/callback?{query}", code, Accept=accept)
    assert failures == [code]


def test_state_from_another_browser(app: Flask, failures: list[str]) -> None:
    attacker, victim = app.test_client(), app.test_client()
    state = start_login(attacker)
    start_login(victim)
    assert_callback_refused(victim, f"/omi/callback?uid=attacker&state={state}", "state_mismatch")
    assert failures == ["state_mismatch"]


def test_replayed_state(client: FlaskClient, failures: list[str]) -> None:
    state = start_login(client)
    assert client.get(f"/omi/callback?uid=u1&state={state}").status_code == 302
    client.post("/omi/logout")
    assert_callback_refused(client, f"/omi/callback?uid=u1&state={state}", "state_reused")
    assert failures == ["state_reused"]


def test_state_is_consumed_even_when_the_uid_is_bad(client: FlaskClient, failures: list[str]) -> None:
    state = start_login(client)
    assert_callback_refused(client, f"/omi/callback?uid=&state={state}", "uid_missing")
    assert_callback_refused(client, f"/omi/callback?uid=u1&state={state}", "state_reused")
    assert failures == ["uid_missing", "state_reused"]


def test_expired(client: FlaskClient, clock: Clock, failures: list[str]) -> None:
    state = start_login(client)
    clock.now += 600
    later = start_login(client)
    clock.now += 1
    assert_callback_refused(client, f"/omi/callback?uid=u1&state={state}", "state_expired")
    assert client.get(f"/omi/callback?uid=u1&state={later}").status_code == 302
    assert failures == ["state_expired"]


def test_repeated_parameters_are_tampering(client: FlaskClient, failures: list[str]) -> None:
    state = start_login(client)
    assert_callback_refused(client, f"/omi/callback?uid=u1&state={state}&state={state}", "state_mismatch")
    assert_callback_refused(client, f"/omi/callback?uid=u1&uid=u2&state={start_login(client)}", "uid_invalid")


@pytest.mark.parametrize(
    ("uid_query", "code"),
    [
        ("", "uid_missing"),
        ("uid=", "uid_missing"),
        ("uid=" + "a" * 129, "uid_invalid"),
        ("uid=a%0d%0aSet-Cookie:%20x=1", "uid_invalid"),
        ("uid=%3Cscript%3Ealert(1)%3C/script%3E", "uid_invalid"),
        ("uid=1%27%20OR%20%271%27=%271", "uid_invalid"),
        ("uid=%C3%BCser", "uid_invalid"),
        ("uid=a%00b", "uid_invalid"),
        ("uid=a%20b", "uid_invalid"),
    ],
)
def test_bad_uid(client: FlaskClient, failures: list[str], uid_query: str, code: str) -> None:
    state = start_login(client)
    response = client.get(f"/omi/callback?{uid_query}&state={state}")
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f">{code}<" in body
    assert "<script>" not in body and "alert" not in body and "OR '1'" not in body
    # Only the session cookie is set (the state was consumed); nothing from the uid reaches a header.
    assert [c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie")] == ["session"]
    assert all("x=1" not in value and "\n" not in value for _, value in response.headers)
    assert failures == [code]


def test_uid_max_length_is_accepted(client: FlaskClient) -> None:
    uid = "a" * 128
    assert client.get(f"/omi/callback?uid={uid}&state={start_login(client)}").status_code == 302


def test_uid_verifier_rejects(bp: OmiBlueprint) -> None:
    seen: list[str] = []

    @bp.uid_verifier
    def only_known(uid: str) -> bool:
        seen.append(uid)
        return uid == "known"

    app = make_app(bp)
    client = app.test_client()
    assert_callback_refused(client, f"/omi/callback?uid=stranger&state={start_login(client)}", "uid_rejected")
    assert client.get(f"/omi/callback?uid=known&state={start_login(client)}").status_code == 302
    assert seen == ["stranger", "known"]


def test_async_uid_verifier(bp: OmiBlueprint) -> None:
    @bp.uid_verifier
    async def deny(uid: str) -> bool:
        return False

    client = make_app(bp).test_client()
    assert_callback_refused(client, f"/omi/callback?uid=u1&state={start_login(client)}", "uid_rejected")


def test_refusals_are_logged_without_the_state(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> None:
    state = start_login(client)
    with caplog.at_level(logging.DEBUG, logger="flask_omi"):
        client.get(f"/omi/callback?uid=%0d%0aevil&state={state}")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    text = caplog.text
    assert "uid_invalid" in text and state not in text and "evil" not in text


def test_error_template_is_overridable(tmp_path: Any, bp: OmiBlueprint) -> None:
    (tmp_path / "omi").mkdir()
    (tmp_path / "omi" / "error.html").write_text("custom {{ error.error_code }}")
    app = make_app(bp)
    app.template_folder = str(tmp_path)
    client = app.test_client()
    response = client.get("/omi/callback?uid=u1&state=None")
    assert response.get_data(as_text=True) == "custom state_missing"


def test_every_sign_in_error_has_a_unique_stable_code() -> None:
    codes = [cls.error_code for cls in SIGN_IN_ERRORS]
    assert len(set(codes)) == len(codes)
    assert StateMismatch().code == 400  # werkzeug's HTTP status stays intact
    assert {
        "state_missing",
        "state_mismatch",
        "state_expired",
        "state_reused",
        "uid_missing",
        "uid_invalid",
        "uid_rejected",
    } <= set(codes)


def test_a_verifier_that_fails_refuses_sign_in(bp: OmiBlueprint, caplog: pytest.LogCaptureFixture) -> None:
    @bp.uid_verifier
    def broken(uid: str) -> bool:
        raise RuntimeError("verifier database down")

    client = make_app(bp).test_client()
    with caplog.at_level(logging.ERROR, logger="flask_omi"):
        response = client.get(f"/omi/callback?uid=u1&state={start_login(client)}")
    assert response.status_code == 503
    assert '<code id="omi-error-code">uid_verification_unavailable</code>' in response.get_data(as_text=True)
    assert "a uid verifier failed" in caplog.text
    assert client.get("/dashboard").status_code == 302
