"""Hostile webhook input: every refusal is the documented 400/401, never a 500, and the handler
never runs. Also what the signature covers: OMI's ``v1`` signs ``"{t}.{uid}." + body``
(``backend/utils/webhook_signing.py``), so a ``.`` in the uid and the unsigned ``sample_rate`` are
refused or bounded here."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import OmiWebhooks
from flask_omi.inbound.signing import signature_header

SECRET = "whsec_attack_suite_secret"
NOW = 1_800_000_000


def build(**config: Any) -> tuple[Flask, list[Any]]:
    seen: list[Any] = []
    app = Flask(__name__)
    # Room for the deepest bodies below, so that it is the depth check that refuses them.
    app.config.update({"OMI_WEBHOOK_MAX_BYTES": 16 * 1024 * 1024, **config})
    hooks = OmiWebhooks()
    hooks.on_conversation_created(seen.append)
    hooks.on_transcript(seen.append)
    hooks.on_audio(seen.append)
    app.register_blueprint(hooks)
    app.extensions["omi"].webhooks.clock = lambda: float(NOW)
    return app, seen


@pytest.fixture(params=["unsigned", "signed"])
def target(request: pytest.FixtureRequest) -> tuple[FlaskClient, list[Any], bool]:
    signed = request.param == "signed"
    app, seen = build(**({"OMI_SIGNING_SECRET": SECRET} if signed else {}))
    return app.test_client(), seen, signed


def post(
    client: FlaskClient,
    kind: str,
    uid: str,
    body: bytes,
    *,
    signed: bool,
    query: str = "",
    content_type: str = "application/json",
) -> Any:
    headers = {"X-Omi-Signature": signature_header(SECRET, uid, body, NOW)} if signed else {}
    return client.post(
        f"/omi/webhooks/{kind}?{query}uid={uid}", data=body, headers=headers, content_type=content_type
    )


#: Superscript two, Arabic-Indic and full-width digits: str.isdigit() accepts them all.
NON_ASCII_DIGITS = [
    "\u00b2",
    "\u0661\u0668" + "\u0660" * 8,
    "\uff11\uff18" + "\uff10" * 8,
    "1800000000\u00b2",
]


@pytest.mark.parametrize("timestamp", NON_ASCII_DIGITS)
def test_non_ascii_signature_timestamps_are_401(timestamp: str) -> None:
    app, seen = build(OMI_SIGNING_SECRET=SECRET)
    header = f"t={timestamp},v1={'0' * 64}"
    response = app.test_client().post(
        "/omi/webhooks/conversation?uid=u1",
        data=b"{}",
        headers={"X-Omi-Signature": header.encode().decode("latin-1")},
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "signature_malformed"
    assert seen == []


@pytest.mark.parametrize(
    "rate", ["²", "١٦٠٠٠", "16000.0", "+16000", " 16000", "0", "1", "99999", "192000", "1" * 50, ""]
)
def test_sample_rate_comes_only_from_the_allow_list(
    target: tuple[FlaskClient, list[Any], bool], rate: str
) -> None:
    client, seen, signed = target
    response = post(
        client, "audio", "u1", b"\x00\x01" * 4, signed=signed,
        query=f"sample_rate={rate}&", content_type="application/octet-stream",
    )  # fmt: skip
    assert response.status_code == 400
    assert response.get_json()["error"] == "sample_rate_invalid"
    assert seen == []


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_common_sample_rates_pass(target: tuple[FlaskClient, list[Any], bool], rate: int) -> None:
    client, seen, signed = target
    response = post(
        client, "audio", "u1", b"\x00\x01" * 4, signed=signed,
        query=f"sample_rate={rate}&", content_type="application/octet-stream",
    )  # fmt: skip
    assert response.status_code == 200 and seen[0].sample_rate == rate


DEPTHS = [33, 1_000, 100_000, 2_000_000]


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ["conversation", "transcript"])
@pytest.mark.parametrize("shape", ["list", "object"])
def test_deeply_nested_json_is_400(
    target: tuple[FlaskClient, list[Any], bool],
    depth: int,
    kind: str,
    shape: str,
    record_property: pytest.RecordProperty,
) -> None:
    client, seen, signed = target
    body = b"[" * depth + b"]" * depth if shape == "list" else b'{"a":' * depth + b"1" + b"}" * depth
    response = post(client, kind, "u1", body, signed=signed)
    assert response.status_code == 400
    assert response.get_json()["error"] == "payload_too_deep"
    assert seen == []


def test_nesting_inside_strings_does_not_count(target: tuple[FlaskClient, list[Any], bool]) -> None:
    client, seen, signed = target
    text = '[[[{{{"\\\\' * 50 + '\\"]]]'
    body = json.dumps({"id": "c1", "structured": {"title": text}, "transcript_segments": []}).encode()
    response = post(client, "conversation", "u1", body, signed=signed)
    assert response.status_code == 200, response.get_json()
    assert seen[0].structured.title == text


def test_depth_at_the_bound_passes(target: tuple[FlaskClient, list[Any], bool]) -> None:
    client, _, signed = target
    nested: Any = 1
    for _ in range(30):  # with the body's own object and structured: 32 levels
        nested = {"n": nested}
    body = json.dumps({"id": "c1", "structured": {"title": "t", "deep": nested}}).encode()
    assert post(client, "conversation", "u1", body, signed=signed).status_code == 200


def v1(uid: str, body: bytes, t: int = NOW) -> str:
    """OMI's v1, computed here from its documented formula."""
    digest = hmac.new(SECRET.encode(), f"{t}.{uid}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def test_a_dot_in_the_uid_cannot_shift_signed_bytes_between_uid_and_body() -> None:
    """OMI signs uid ``alice`` with an audio body that happens to start with ``bob.``. The same
    signature covers uid ``alice.bob`` with the rest of the body, so that one is refused. (The other
    direction needs OMI to have signed a uid with a dot, which it never has.)"""
    app, seen = build(OMI_SIGNING_SECRET=SECRET)
    client = app.test_client()
    data = b"\x01\x02" * 8
    body = b"bob." + data
    header = v1("alice", body)
    assert hmac.compare_digest(header, v1("alice.bob", data))  # the ambiguity is real

    def send(uid: str, payload: bytes) -> Any:
        return client.post(
            f"/omi/webhooks/audio?sample_rate=16000&uid={uid}",
            data=payload,
            headers={"X-Omi-Signature": header},
            content_type="application/octet-stream",
        )

    shifted = send("alice.bob", data)
    assert shifted.status_code == 400 and shifted.get_json()["error"] == "uid_invalid"
    assert seen == []
    assert send("alice", body).status_code == 200
    assert [(event.uid, event.data) for event in seen] == [("alice", body)]


@pytest.mark.parametrize("kind", ["conversation", "transcript", "audio"])
@pytest.mark.parametrize("uid", ["a.b", ".", "..", "u1."])
def test_webhook_uids_with_a_dot_are_refused(
    target: tuple[FlaskClient, list[Any], bool], kind: str, uid: str
) -> None:
    client, seen, signed = target
    content_type = "application/octet-stream" if kind == "audio" else "application/json"
    query = "sample_rate=16000&" if kind == "audio" else ""
    response = post(client, kind, uid, b"{}", signed=signed, query=query, content_type=content_type)
    assert response.status_code == 400 and response.get_json()["error"] == "uid_invalid"
    assert seen == []
