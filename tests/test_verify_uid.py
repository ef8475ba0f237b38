"""OMI_VERIFY_UID and omi_client() inside a Flask app, with the fake OMI on loopback."""

from __future__ import annotations

import logging
import threading

import pytest
from flask import Flask

from flask_omi import OmiBlueprint, OmiConfigError, omi_client
from flask_omi.testing import FakeOmi

from .conftest import make_app, start_login
from .helpers import assert_refused
from .helpers import verifying_app as shared_verifying_app


@pytest.fixture
def app_with_one_enabled_user(fake_omi: FakeOmi) -> Flask:
    return shared_verifying_app(fake_omi, enabled=("enabled_user",), api_timeout=0.5)


def test_enabled_uid_signs_in_and_others_are_rejected(app_with_one_enabled_user: Flask) -> None:
    client = app_with_one_enabled_user.test_client()
    refused = client.get(f"/omi/callback?uid=stranger&state={start_login(client)}")
    assert refused.status_code == 400 and ">uid_rejected<" in refused.get_data(as_text=True)
    ok = client.get(f"/omi/callback?uid=enabled_user&state={start_login(client)}")
    assert ok.status_code == 302
    assert client.get("/dashboard").get_data(as_text=True) == "hello enabled_user"


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503, "body": '{"detail": "down"}', "times": 10},
        {"status": 200, "body": "not json", "times": 10},
        {"status": 429, "body": "{}", "headers": {"Retry-After": "3600"}, "times": 2},
        {"status": 403, "body": '{"detail": "Invalid API key"}', "times": 2},
        {"delay": 1.0, "times": 10},
    ],
)
def test_omi_unreachable_fails_closed(
    app_with_one_enabled_user: Flask,
    fake_omi: object,
    fault: dict[str, object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_omi.inject_fault("/memories", **fault)  # type: ignore[attr-defined]
    client = app_with_one_enabled_user.test_client()
    with caplog.at_level(logging.ERROR, logger="flask_omi"):
        response = client.get(f"/omi/callback?uid=enabled_user&state={start_login(client)}")
    assert response.status_code == 503
    assert ">uid_verification_unavailable<" in response.get_data(as_text=True)
    assert "could not verify the uid" in caplog.text
    assert client.get("/dashboard").status_code == 302
    json_answer = client.get(
        f"/omi/callback?uid=enabled_user&state={start_login(client)}", headers={"Accept": "application/json"}
    )
    assert json_answer.status_code == 503
    assert json_answer.get_json()["error"] == "uid_verification_unavailable"


def test_omi_down_fails_closed() -> None:
    app = make_app(
        OmiBlueprint(),
        OMI_API_KEY="sk_x",
        OMI_API_BASE="http://127.0.0.1:9",
        OMI_VERIFY_UID=True,
        OMI_VERIFY_TIMEOUT=1,
    )
    client = app.test_client()
    assert_refused(
        client.get(f"/omi/callback?uid=u1&state={start_login(client)}"), 503, "uid_verification_unavailable"
    )


def test_verify_needs_an_api_key() -> None:
    with pytest.raises(OmiConfigError, match="OMI_API_KEY"):
        make_app(OmiBlueprint(), OMI_VERIFY_UID=True)


def test_omi_client_is_built_once_per_app_from_config(app_with_one_enabled_user: Flask) -> None:
    seen = []

    def grab() -> None:
        with app_with_one_enabled_user.app_context():
            seen.append(omi_client())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(seen) == 8 and len({id(c) for c in seen}) == 1
    with app_with_one_enabled_user.app_context():
        client = omi_client()
        assert client.app_id == "01TESTAPP"
        assert client.is_app_enabled("enabled_user")


def test_omi_client_needs_a_key() -> None:
    with make_app(OmiBlueprint()).app_context(), pytest.raises(OmiConfigError, match="OMI_API_KEY"):
        omi_client()
