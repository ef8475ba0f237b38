"""OMI misbehaving while the app verifies uids or calls the API: the app answers within its
timeout, with a clear error, and stores nothing half-way."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from example_app import create_app
from flask_omi.testing import FakeOmi, sign_in_test_client

from ..conftest import start_login
from ..helpers import verifying_app as shared_verifying_app

VERIFY_TIMEOUT = 1.5
FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("slow", {"delay": 3.0, "times": 10}),
    ("5xx", {"status": 502, "body": "<html>bad gateway</html>", "times": 10}),
    (
        "429 with a long Retry-After",
        {"status": 429, "body": "{}", "headers": {"Retry-After": "3600"}, "times": 10},
    ),
    ("invalid JSON", {"status": 200, "body": "{not json", "times": 10}),
]


@pytest.fixture
def fake(fake_omi: FakeOmi) -> FakeOmi:
    return fake_omi


def app_verifying_within_the_timeout(fake: FakeOmi, base_url: str | None = None) -> Flask:
    return shared_verifying_app(fake, base_url=base_url, verify_timeout=VERIFY_TIMEOUT)


def assert_fails_closed_in_time(app: Flask) -> None:
    client = app.test_client()
    state = start_login(client)
    began = time.monotonic()
    response = client.get(f"/omi/callback?uid=u1&state={state}")
    elapsed = time.monotonic() - began
    assert response.status_code == 503
    assert "uid_verification_unavailable" in response.get_data(as_text=True)
    assert elapsed < VERIFY_TIMEOUT + 1.0, elapsed  # a bound on waiting, not a speed claim
    with client.session_transaction() as session:
        assert "_omi_uid" not in session
    assert client.get("/dashboard").status_code == 302


@pytest.mark.parametrize(("name", "fault"), FAULTS, ids=[f[0] for f in FAULTS])
def test_uid_verification_under_faults(fake: FakeOmi, name: str, fault: dict[str, Any]) -> None:
    app = app_verifying_within_the_timeout(fake)
    fake.inject_fault("/memories", **fault)
    assert_fails_closed_in_time(app)


def test_uid_verification_with_omi_down(fake: FakeOmi) -> None:
    with FakeOmi() as gone:
        dead = gone.url
    assert_fails_closed_in_time(app_verifying_within_the_timeout(fake, base_url=dead))


def test_verification_recovers_when_omi_does(fake: FakeOmi) -> None:
    app = app_verifying_within_the_timeout(fake)
    fake.inject_fault("/memories", status=503, body="{}", times=1)  # one blip: retried within the deadline
    client = app.test_client()
    assert client.get(f"/omi/callback?uid=u1&state={start_login(client)}").status_code == 302


@pytest.fixture
def example(fake: FakeOmi, tmp_path: Path) -> Flask:
    _, key = fake.register_app("ex", app_home_url="http://127.0.0.1:9/omi/callback")
    fake.enable_app("u1", "ex")
    fake.add_memory("u1", "stored before")
    return create_app(
        {
            "OMI_APP_ID": "ex",
            "OMI_API_KEY": key,
            "OMI_API_BASE": fake.url,
            "OMI_API_TIMEOUT": 1.0,
            "OMI_API_DEADLINE": 2.0,
            "EXAMPLE_DB": str(tmp_path / "faults.db"),
        }
    )


@pytest.mark.parametrize(("name", "fault"), FAULTS, ids=[f[0] for f in FAULTS])
def test_api_calls_under_faults(example: Flask, fake: FakeOmi, name: str, fault: dict[str, Any]) -> None:
    client = example.test_client()
    sign_in_test_client(client, "u1")
    page = client.get("/dashboard").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    fake.inject_fault("/v2/integrations/ex/", **fault)
    began = time.monotonic()
    dashboard = client.get("/dashboard")
    added = client.post(
        "/memories", data={"content": "during the fault", "csrf_token": token}, follow_redirects=True
    )
    elapsed = time.monotonic() - began
    assert dashboard.status_code == 200 and 'id="memories-problem"' in dashboard.get_data(as_text=True)
    assert "OMI refused the memory (omi_" in added.get_data(
        as_text=True
    ) or 'id="memories-problem"' in added.get_data(as_text=True)
    assert elapsed < 2 * 2.0 + 3.5, (
        elapsed
    )  # two calls, each bounded by OMI_API_DEADLINE (+ a slow write's own timeout)
    time.sleep(fault.get("delay", 0))  # let a slow request finish on the fake before looking
    contents = [m["content"] for m in fake.memories["u1"]]
    # A write that timed out may have reached OMI (it is never retried, so never duplicated); a
    # refused one stored nothing.
    assert contents.count("during the fault") <= (1 if "delay" in fault else 0)
    assert contents[0] == "stored before"
