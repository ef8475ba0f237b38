"""What OMI (or whatever answers in its place: a CDN, a WAF, a proxy) says, and what flask-omi makes
of it. ``OMI_VERIFY_UID`` signs in only on answers it positively understands; everything else
fails closed. The client's header parsing, body bound and key redaction never let a strange
answer escape as anything but an :class:`OmiApiError`.

The wordings come from OMI's backend: ``backend/routers/integration.py`` (three spellings of the
wrong-key answer, the not-enabled and missing-capability answers) and
``backend/routers/notifications.py`` ("User does not have this app installed").
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from flask import Flask, Response, stream_with_context

from flask_omi import (
    OmiApiError,
    OmiAppNotEnabled,
    OmiAuthError,
    OmiBlueprint,
    OmiClient,
    OmiPermissionError,
    OmiRateLimited,
    OmiTransportError,
)
from flask_omi.api.transport import error_for, header_int, header_seconds
from flask_omi.testing import FakeOmi, LiveServer

from ..conftest import make_app, start_login
from ..helpers import verifying_app

APP_ID = "01TESTAPP"


@pytest.fixture
def fake(fake_omi: FakeOmi) -> FakeOmi:
    return fake_omi


@pytest.fixture
def app(fake: FakeOmi) -> Flask:
    """OMI_VERIFY_UID on; u1 enabled the app."""
    return verifying_app(fake)


@pytest.fixture
def key(app: Flask) -> str:
    return str(app.config["OMI_API_KEY"])


def detail(text: str) -> str:
    return json.dumps({"detail": text})


#: Answers to the verification read that must never sign anyone in: (name, status, body).
UNCERTAIN = [
    ("wrong key, memories wording", 403, detail("Invalid integrationAPI key")),
    ("wrong key, conversations wording", 403, detail("Invalid integration API key")),
    ("wrong key, plain wording", 403, detail("Invalid API key")),
    ("CDN or WAF html page", 403, "<html><body>Access denied</body></html>"),
    ("unknown 403 detail", 403, detail("Forbidden")),
    ("403 detail that is a list", 403, json.dumps({"detail": ["App is not enabled for this user"]})),
    ("403 with no body", 403, ""),
    ("401", 401, detail("Missing or invalid Authorization header. Must be 'Bearer API_KEY'")),
    ("2xx that is not a memories page", 200, "{}"),
    ("2xx with memories not a list", 200, json.dumps({"memories": "none"})),
    ("2xx html", 200, "<html>ok</html>"),
    ("redirect", 302, ""),
    ("teapot", 418, detail("I'm a teapot")),
]


@pytest.mark.parametrize(("name", "status", "body"), UNCERTAIN, ids=[u[0] for u in UNCERTAIN])
def test_verify_uid_fails_closed_on_every_answer_it_does_not_understand(
    app: Flask, fake: FakeOmi, key: str, name: str, status: int, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject_fault("/memories", status=status, body=body, times=5)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="flask_omi"):
        response = client.get(f"/omi/callback?uid=u1&state={start_login(client)}")
    assert response.status_code == 503, name
    assert ">uid_verification_unavailable<" in response.get_data(as_text=True)
    assert "could not verify the uid" in caplog.text
    assert key not in caplog.text
    assert client.get("/dashboard").status_code == 302  # not signed in


@pytest.mark.parametrize(
    "wording", ["App is not enabled for this user", "User does not have this app installed"]
)
def test_verify_uid_rejects_only_on_omis_not_enabled_answers(app: Flask, fake: FakeOmi, wording: str) -> None:
    fake.inject_fault("/memories", status=403, body=detail(wording), times=1)
    client = app.test_client()
    response = client.get(f"/omi/callback?uid=u1&state={start_login(client)}")
    assert response.status_code == 400 and ">uid_rejected<" in response.get_data(as_text=True)


def test_verify_uid_accepts_a_page_or_omis_missing_capability_answer(app: Flask, fake: FakeOmi) -> None:
    client = app.test_client()
    assert client.get(f"/omi/callback?uid=u1&state={start_login(client)}").status_code == 302
    fake.inject_fault(
        "/memories", status=403, body=detail("App does not have the capability to read memories")
    )
    other = app.test_client()
    assert other.get(f"/omi/callback?uid=u1&state={start_login(other)}").status_code == 302


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (403, "Invalid integrationAPI key", OmiAuthError),
        (403, "Invalid integration API key", OmiAuthError),
        (403, "Invalid API key", OmiAuthError),
        (401, "anything", OmiAuthError),
        (403, "App is not enabled for this user", OmiAppNotEnabled),
        (403, "User does not have this app installed", OmiAppNotEnabled),
        (403, "App does not have the capability to create memories", OmiPermissionError),
        (403, "Forbidden", OmiApiError),
        (403, None, OmiApiError),
    ],
)
def test_client_error_classes(status: int, text: str | None, expected: type[OmiApiError]) -> None:
    error = error_for(status, text, "GET", "/v2/integrations/a/memories")
    assert type(error) is expected


def test_notification_to_a_user_without_the_app_is_not_enabled(fake: FakeOmi, key: str) -> None:
    fake.inject_fault(
        "/notification", status=403, body=detail("User does not have this app installed"), times=1
    )
    client = OmiClient(APP_ID, key, base_url=fake.url, timeout=2)
    with pytest.raises(OmiAppNotEnabled):
        client.send_notification("u1", "hello")


def test_an_echoed_api_key_is_redacted(fake: FakeOmi, key: str) -> None:
    echoed = {"detail": f"Invalid API key: {key}", "extra": [key]}
    fake.inject_fault("/memories", status=403, body=json.dumps(echoed), times=1)
    client = OmiClient(APP_ID, key, base_url=fake.url, timeout=2)
    with pytest.raises(OmiAuthError) as raised:
        client.get_memories("u1")
    assert key not in str(raised.value) and key not in repr(raised.value.detail)
    assert "[redacted]" in str(raised.value)
    fake.inject_fault("/memories", status=500, body=f"<pre>key={key}</pre>", times=3)
    with pytest.raises(OmiApiError) as raised_html:
        client.get_memories("u1")
    assert key not in str(raised_html.value)


NOW = 1_800_000_000.0
#: Header values and what they must parse to: nothing here may raise.
SECONDS_CASES: list[tuple[str | None, float | None]] = [
    (None, None),
    ("12", 12.0),
    (" 3 ", 3.0),
    ("1.5", 1.5),
    ("", None),
    ("soon", None),
    ("²", None),
    ("٣", None),
    ("-5", None),
    ("nan", None),
    ("inf", None),
    ("1e9999", None),
    ("9" * 400, None),
    (format_datetime(datetime.fromtimestamp(NOW + 90, timezone.utc), usegmt=True), 90.0),
    (format_datetime(datetime.fromtimestamp(NOW - 90, timezone.utc), usegmt=True), 0.0),
    ("Sun, 06 Nov 1994 08:49:37", None),  # no zone: not an HTTP-date
    ("Mon, 99 Foo 2026 99:99:99 GMT", None),
]


@pytest.mark.parametrize(("raw", "expected"), SECONDS_CASES)
def test_retry_after_never_raises(raw: str | None, expected: float | None) -> None:
    assert header_seconds(raw, now=NOW) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("7", 7), ("-1", -1), ("0", 0), ("", None), ("x", None), ("²", None), ("1.5", None), ("9" * 30, None)],
)
def test_rate_limit_counts_never_raise(raw: str, expected: int | None) -> None:
    assert header_int(raw) == expected


@pytest.mark.parametrize("remaining", ["lots", "²", "1.5", ""])
def test_malformed_rate_limit_headers_on_a_real_answer(fake: FakeOmi, key: str, remaining: str) -> None:
    headers = {"X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": "later"}
    fake.inject_fault("/notification", status=200, body='{"status": "Ok"}', headers=headers, times=1)
    result = OmiClient(APP_ID, key, base_url=fake.url, timeout=2).send_notification("u1", "hi")
    assert result == {"status": "Ok", "rate_limit_remaining": None}


def test_a_429_with_an_http_date_is_understood(fake: FakeOmi, key: str) -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    fake.inject_fault(
        "/memories", status=429, body=detail("slow down"), headers={"Retry-After": when}, times=5
    )
    client = OmiClient(APP_ID, key, base_url=fake.url, timeout=2, deadline=3)
    began = time.monotonic()
    with pytest.raises(OmiRateLimited) as raised:
        client.get_memories("u1")
    assert raised.value.retry_after is not None and 3500 < raised.value.retry_after <= 3600
    assert time.monotonic() - began < 3  # an hour is longer than the deadline: not waited for


@pytest.fixture
def huge_answers() -> Iterator[str]:
    """A stand-in that answers 2 MB, with a Content-Length and streamed without one."""
    app = Flask("huge")
    chunk = b"x" * 65536

    @app.get("/v2/integrations/<app_id>/memories")
    def sized(app_id: str) -> Response:
        return Response(b'{"memories": ["' + chunk * 32 + b'"]}', mimetype="application/json")

    @app.get("/v2/integrations/<app_id>/tasks")
    def streamed(app_id: str) -> Response:
        def body() -> Iterator[bytes]:
            yield b'{"tasks": ["'
            for _ in range(32):
                yield chunk
            yield b'"]}'

        return Response(stream_with_context(body()), mimetype="application/json")

    with LiveServer(app) as server:
        yield server.url


def test_a_body_over_the_limit_is_refused(huge_answers: str) -> None:
    small = OmiClient(APP_ID, "sk_k", base_url=huge_answers, timeout=5, max_response_bytes=1024 * 1024)
    for call in (small.get_memories, small.get_tasks):
        with pytest.raises(OmiTransportError, match="larger than 1048576 bytes"):
            call("u1")
    roomy = OmiClient(APP_ID, "sk_k", base_url=huge_answers, timeout=5, max_response_bytes=4 * 1024 * 1024)
    assert len(roomy.get_memories("u1")[0]) == 32 * 65536  # type: ignore[arg-type]
    assert len(roomy.get_tasks("u1")[0]) == 32 * 65536  # type: ignore[arg-type]


def test_the_limit_comes_from_config(fake: FakeOmi, key: str) -> None:
    app = make_app(OmiBlueprint(), OMI_API_KEY=key, OMI_API_BASE=fake.url, OMI_API_MAX_RESPONSE_BYTES=10)
    fake.add_memory("u1", "a memory longer than ten bytes")
    from flask_omi import omi_client

    with app.app_context(), pytest.raises(OmiTransportError):
        omi_client().get_memories("u1")


class ExplodingSession(requests.Session):
    """The network edge failing in a way no one planned for."""

    def request(self, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
        raise RuntimeError("a bug below the client")


def test_an_unexpected_failure_while_verifying_fails_closed(
    app: Flask, fake: FakeOmi, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    app.extensions["omi"].client = OmiClient(APP_ID, key, base_url=fake.url, session=ExplodingSession())
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="flask_omi"):
        response = client.get(f"/omi/callback?uid=u1&state={start_login(client)}")
    assert response.status_code == 503 and ">uid_verification_unavailable<" in response.get_data(as_text=True)
    assert "unexpected failure" in caplog.text
    assert client.get("/dashboard").status_code == 302
