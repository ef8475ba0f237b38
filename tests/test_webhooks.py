"""Webhook receivers: each kind, each refusal, and signatures checked against vectors computed here."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import AudioChunk, ConversationCreated, OmiWebhooks, TranscriptBatch
from flask_omi.errors import InboundSignatureError
from flask_omi.inbound.signing import signature_header, verify_signature
from flask_omi.testing import FakeOmi, LiveServer, send_webhook, webhook_url

from .helpers import assert_refused

SECRET = "whsec_test_secret_0123456789"
NOW = 1_800_000_000

CONVERSATION = {
    "id": "conv-1",
    "created_at": "2026-11-02T10:00:00+00:00",
    "started_at": "2026-11-02T09:50:00Z",
    "finished_at": None,
    "structured": {"title": "Standup", "overview": "Plans", "emoji": "🚀", "future_field": 1},
    "transcript_segments": [{"text": "hi", "speaker": "SPEAKER_0", "is_user": True, "start": 0, "end": 1.5}],
    "language": "en",
    "brand_new_field": {"kept": True},
}


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.reply: str | None = None
        self.fail = False

    def __call__(self, event: Any) -> str | None:
        if self.fail:
            raise RuntimeError("handler broke with secret detail")
        self.events.append(event)
        return self.reply


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def build_app(recorder: Recorder, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    hooks = OmiWebhooks()
    hooks.on_conversation_created(recorder)
    hooks.on_transcript(recorder)
    hooks.on_audio(recorder)
    app.register_blueprint(hooks)
    app.extensions["omi"].webhooks.clock = lambda: float(NOW)
    return app


@pytest.fixture
def client(recorder: Recorder) -> FlaskClient:
    return build_app(recorder).test_client()


@pytest.fixture
def signed_client(recorder: Recorder) -> FlaskClient:
    return build_app(recorder, OMI_SIGNING_SECRET=SECRET).test_client()


def independent_signature(secret: str, t: int, uid: str, body: bytes) -> str:
    """Computed here from the documented formula, not with the library's code."""
    digest = hmac.new(
        secret.encode("utf-8"), str(t).encode() + b"." + uid.encode() + b"." + body, hashlib.sha256
    )
    return f"t={t},v1={digest.hexdigest()}"


def test_conversation_is_typed_and_keeps_unknown_fields(client: FlaskClient, recorder: Recorder) -> None:
    response = client.post("/omi/webhooks/conversation?uid=u1", json=CONVERSATION)
    assert (response.status_code, response.get_json()) == (200, {})
    event = recorder.events[0]
    assert isinstance(event, ConversationCreated)
    assert (event.uid, event.id, event.structured.title, event.structured.emoji) == (
        "u1",
        "conv-1",
        "Standup",
        "🚀",
    )
    assert event.started_at is not None and event.started_at.utcoffset() is not None
    assert event.finished_at is None and event.status is None
    assert event.transcript_segments[0].end == 1.5 and event.transcript_segments[0].is_user
    assert event.raw["brand_new_field"] == {"kept": True}
    assert event.structured.raw["future_field"] == 1


def test_minimal_conversation_and_reply_message(client: FlaskClient, recorder: Recorder) -> None:
    recorder.reply = "Saved your standup notes"
    response = client.post("/omi/webhooks/conversation?uid=u1", json={})
    assert response.get_json() == {"message": "Saved your standup notes"}
    assert recorder.events[0].structured.title == "" and recorder.events[0].transcript_segments == []


def test_transcript(client: FlaskClient, recorder: Recorder) -> None:
    body = {
        "session_id": "s-9",
        "segments": [{"text": "hello there", "speaker": "SPEAKER_1", "is_user": False}],
    }
    assert client.post("/omi/webhooks/transcript?uid=u2", json=body).get_json() == {}
    batch = recorder.events[0]
    assert isinstance(batch, TranscriptBatch)
    assert (batch.uid, batch.session_id, batch.segments[0].text, batch.segments[0].start) == (
        "u2",
        "s-9",
        "hello there",
        None,
    )


def test_audio(client: FlaskClient, recorder: Recorder) -> None:
    pcm = b"\x01\x00" * 1600
    response = client.post(
        "/omi/webhooks/audio?sample_rate=16000&uid=u3", data=pcm, content_type="application/octet-stream"
    )
    assert response.get_json() == {}
    chunk = recorder.events[0]
    assert isinstance(chunk, AudioChunk)
    assert (chunk.uid, chunk.sample_rate, chunk.samples, chunk.duration, chunk.data) == (
        "u3",
        16000,
        1600,
        0.1,
        pcm,
    )


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        (
            "/conversation?uid=u1",
            {"data": b"{nope", "content_type": "application/json"},
            400,
            "payload_not_json",
        ),
        (
            "/conversation?uid=u1",
            {"data": b"\xff\xfe", "content_type": "application/json"},
            400,
            "payload_not_json",
        ),
        ("/conversation?uid=u1", {"json": [1, 2]}, 400, "payload_invalid"),
        ("/conversation?uid=u1", {"json": {"structured": "title"}}, 400, "payload_invalid"),
        ("/conversation?uid=u1", {"json": {"created_at": "yesterday"}}, 400, "payload_invalid"),
        ("/conversation?uid=u1", {"json": {"id": 5}}, 400, "payload_invalid"),
        ("/conversation?uid=u1", {"json": {"transcript_segments": {"a": 1}}}, 400, "payload_invalid"),
        ("/transcript?uid=u1", {"json": {"session_id": "s"}}, 400, "payload_invalid"),
        ("/conversation", {"json": {"id": "c1"}}, 400, "uid_missing"),
        ("/conversation?uid=a%20b", {"json": {}}, 400, "uid_invalid"),
        (
            "/audio?sample_rate=16000&uid=u1",
            {"data": b"\x00" * 3, "content_type": "application/octet-stream"},
            400,
            "audio_odd_length",
        ),
        (
            "/audio?sample_rate=16000&uid=u1",
            {"data": b"\x00" * 4, "content_type": "text/plain"},
            400,
            "audio_content_type",
        ),
        (
            "/audio?uid=u1",
            {"data": b"\x00" * 4, "content_type": "application/octet-stream"},
            400,
            "sample_rate_invalid",
        ),
        (
            "/audio?sample_rate=0&uid=u1",
            {"data": b"\x00" * 4, "content_type": "application/octet-stream"},
            400,
            "sample_rate_invalid",
        ),
    ],
)
def test_bad_input_is_refused_before_the_handler(
    client: FlaskClient, recorder: Recorder, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    response = client.post(f"/omi/webhooks{path}", **kwargs)
    assert response.status_code == status
    assert response.get_json()["error"] == code
    assert recorder.events == []


def test_body_over_the_limit_is_413(recorder: Recorder) -> None:
    client = build_app(recorder, OMI_WEBHOOK_MAX_BYTES=1000).test_client()
    big = {"structured": {"overview": "x" * 2000}}
    response = client.post("/omi/webhooks/conversation?uid=u1", json=big)
    assert (response.status_code, response.get_json()["error"]) == (413, "payload_too_large")
    # Without a Content-Length (chunked upload) the limit still holds while reading.
    with LiveServer(build_app(recorder, OMI_WEBHOOK_MAX_BYTES=1000)) as server:
        chunked = requests.post(
            f"{server.url}/omi/webhooks/audio?sample_rate=8000&uid=u1",
            data=(b"\x00" * 100 for _ in range(20)),
            headers={"Content-Type": "application/octet-stream"},
            timeout=5,
        )
    assert chunked.status_code == 413
    assert recorder.events == []


def test_handler_that_raises_is_logged_and_500_without_details(
    client: FlaskClient, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.fail = True
    with caplog.at_level(logging.ERROR, logger="flask_omi.webhooks"):
        response = client.post("/omi/webhooks/conversation?uid=u1", json={})
    assert response.status_code == 500
    assert response.get_json()["error"] == "handler_failed"
    assert "secret detail" not in response.get_data(as_text=True)
    assert "conversation webhook handler failed" in caplog.text


def test_kind_without_handler_is_404() -> None:
    app = Flask(__name__)
    app.register_blueprint(OmiWebhooks())
    response = app.test_client().post("/omi/webhooks/transcript?uid=u1", json={"segments": []})
    assert (response.status_code, response.get_json()["error"]) == (404, "no_handler")


def test_async_handler() -> None:
    app = Flask(__name__)
    hooks = OmiWebhooks()

    @hooks.on_conversation_created
    async def handle(event: ConversationCreated) -> str:
        return f"got {event.id}"

    app.register_blueprint(hooks)
    assert app.test_client().post("/omi/webhooks/conversation?uid=u1", json={"id": "c9"}).get_json() == {
        "message": "got c9"
    }


# -- signatures ---------------------------------------------------------------------------------------


def post_signed(client: FlaskClient, uid: str, body: bytes, header: str | None) -> Any:
    headers = {"X-Omi-Signature": header} if header is not None else {}
    return client.post(
        f"/omi/webhooks/conversation?uid={uid}", data=body, headers=headers, content_type="application/json"
    )


def test_valid_signature_independent_vector(signed_client: FlaskClient, recorder: Recorder) -> None:
    body = json.dumps(CONVERSATION).encode()
    header = independent_signature(SECRET, NOW - 10, "u1", body)
    assert header == signature_header(SECRET, "u1", body, NOW - 10)  # the library agrees with the formula
    response = post_signed(signed_client, "u1", body, header)
    assert response.status_code == 200
    assert recorder.events[0].id == "conv-1"


def test_known_answer_vector() -> None:
    # Computed outside Python, with:
    # printf '1800000000.u1.{}' | openssl dgst -sha256 -hmac whsec_test_secret_0123456789
    expected = "18030f2ced1f60e7d5843a77801a7d86fb8f6aaf630e9896667c76da1df7a57e"
    assert signature_header(SECRET, "u1", b"{}", NOW) == f"t={NOW},v1={expected}"


@pytest.mark.parametrize(
    ("make_header", "code"),
    [
        (lambda body: None, "signature_missing"),
        (lambda body: "", "signature_missing"),
        (lambda body: "garbage", "signature_malformed"),
        (lambda body: f"t={NOW}", "signature_malformed"),
        (lambda body: "t=abc,v1=00", "signature_malformed"),
        (lambda body: independent_signature(SECRET, NOW - 301, "u1", body), "signature_expired"),
        (lambda body: independent_signature(SECRET, NOW + 301, "u1", body), "signature_expired"),
        (lambda body: independent_signature("whsec_other", NOW, "u1", body), "signature_mismatch"),
        (lambda body: independent_signature(SECRET, NOW, "u2", body), "signature_mismatch"),  # other uid
        (
            lambda body: independent_signature(SECRET, NOW, "u1", body + b" "),
            "signature_mismatch",
        ),  # other body
        (lambda body: f"t={NOW},v1=" + "é" * 64, "signature_mismatch"),
    ],
)
def test_bad_signatures_are_401_and_the_handler_is_not_called(
    signed_client: FlaskClient, recorder: Recorder, make_header: Any, code: str
) -> None:
    body = json.dumps(CONVERSATION).encode()
    response = post_signed(signed_client, "u1", body, make_header(body))
    assert response.status_code == 401
    assert response.get_json()["error"] == code
    assert recorder.events == []


def test_signature_at_the_tolerance_edge_and_rotated_secrets(
    signed_client: FlaskClient, recorder: Recorder
) -> None:
    body = b"{}"
    assert (
        post_signed(
            signed_client, "u1", body, independent_signature(SECRET, NOW - 300, "u1", body)
        ).status_code
        == 200
    )
    old = independent_signature("whsec_old", NOW, "u1", body).split(",")[1]
    both = independent_signature(SECRET, NOW, "u1", body) + "," + old
    assert post_signed(signed_client, "u1", body, both).status_code == 200


def test_verify_signature_uses_the_given_tolerance() -> None:
    header = independent_signature(SECRET, NOW - 50, "u1", b"x")
    verify_signature(SECRET, header, "u1", b"x", now=NOW, tolerance=60)
    with pytest.raises(InboundSignatureError, match="49 s"):
        verify_signature(SECRET, header, "u1", b"x", now=NOW, tolerance=49)


# -- the fake OMI sends webhooks over HTTP --------------------------------------------------------------


@pytest.fixture
def live(recorder: Recorder) -> Iterator[LiveServer]:
    app = build_app(recorder, OMI_SIGNING_SECRET=SECRET)
    app.extensions["omi"].webhooks.clock = __import__("time").time
    with LiveServer(app) as server:
        yield server


def test_fake_omi_sends_each_kind_signed(live: LiveServer, recorder: Recorder) -> None:
    base = f"{live.url}/omi/webhooks"
    recorder.reply = "noted"
    fake = FakeOmi()
    conversation = fake.make_conversation("Lunch with Sam about the move")
    answer = send_webhook(f"{base}/conversation", "memory_creation", "u1", conversation, secret=SECRET)
    assert answer.json() == {"message": "noted"}
    assert (
        send_webhook(
            f"{base}/transcript",
            "transcript_processed",
            "u1",
            {"session_id": "s", "segments": []},
            secret=SECRET,
        ).status_code
        == 200
    )
    assert (
        send_webhook(
            f"{base}/audio", "audio_bytes", "u1", b"\x00\x01" * 800, secret=SECRET, sample_rate=8000
        ).status_code
        == 200
    )
    assert [type(e).__name__ for e in recorder.events] == [
        "ConversationCreated",
        "TranscriptBatch",
        "AudioChunk",
    ]
    assert recorder.events[0].structured.title == "Lunch with Sam about the move"
    assert recorder.events[2].sample_rate == 8000
    unsigned = send_webhook(f"{base}/conversation", "memory_creation", "u1", conversation)
    assert_refused(unsigned, 401, "signature_missing")
    with pytest.raises(ValueError, match="trigger"):
        send_webhook(base, "sms", "u1", {})


def test_fake_omi_triggers_the_apps_configured_webhook(
    live: LiveServer, recorder: Recorder, fake_omi: FakeOmi
) -> None:
    fake_omi.register_app(
        "hooked",
        app_home_url=f"{live.url}/omi/callback",
        webhook_url=f"{live.url}/omi/webhooks/conversation",
        triggers_on="memory_creation",
        signing_secret=SECRET,
    )
    assert fake_omi.trigger("hooked", "u7", fake_omi.make_conversation("hello")).statuses == [200]
    assert recorder.events[0].uid == "u7"
    fake_omi.register_app("plain", app_home_url="http://x/cb")
    with pytest.raises(ValueError, match="no webhook_url"):
        fake_omi.trigger("plain", "u7", {})


def test_webhook_url_building() -> None:
    assert webhook_url("https://a.example/hook", "u1") == "https://a.example/hook?uid=u1"
    assert webhook_url("https://a.example/hook?k=1", "u1") == "https://a.example/hook?k=1&uid=u1"
    assert (
        webhook_url("https://a.example/audio", "u1", 16000)
        == "https://a.example/audio?sample_rate=16000&uid=u1"
    )


def test_a_segment_of_the_wrong_shape_is_a_400_when_the_handler_reads_it() -> None:
    """Segments are typed when first read (a conversation's as a live transcript's): a malformed
    one is answered 400, which OMI does not retry, as it was when segments were typed up front."""
    app = Flask(__name__)
    hooks = OmiWebhooks()
    read: list[Any] = []

    @hooks.on_conversation_created
    def conversation(event: Any) -> None:
        read.extend(segment.start for segment in event.transcript_segments)

    app.register_blueprint(hooks)
    body = {"id": "c1", "transcript_segments": [{"text": "hi", "start": "soon"}]}
    answer = app.test_client().post("/omi/webhooks/conversation?uid=u1", json=body)
    assert answer.status_code == 400 and answer.get_json()["error"] == "payload_invalid"
    assert "'start' must be a number" in answer.get_json()["error_description"] and read == []
