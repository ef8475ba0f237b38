"""Turning a webhook request into a checked event: size, signature, uid, then the body.

Everything here refuses with a :class:`~flask_omi.errors.WebhookPayloadError` (400/413) or a
:class:`~flask_omi.errors.WebhookSignatureError` (401) before any handler runs. These are answers
OMI does not retry: bad input is dropped, never a 500.
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask, Request

from .errors import WebhookPayloadError
from .signing import SIGNATURE_HEADER, verify_signature
from .validation import is_ascii_digits, is_valid_uid
from .webhook_payloads import AudioChunk

AUDIO_CONTENT_TYPES = {"application/octet-stream", "audio/l16", "audio/pcm"}
#: ``sample_rate`` is not covered by the signature, so only the common PCM rates are taken (OMI's
#: devices send 8 kHz or 16 kHz); anything else is refused rather than passed on to a handler.
SAMPLE_RATES = frozenset({8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000})
#: OMI's payloads nest a few levels; a deeper body is refused before a handler (or Python's own
#: recursion limit) meets it.
MAX_JSON_DEPTH = 32


def read_body(req: Request, limit: int, what: str = "body") -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (chunked uploads too)."""
    raw_length = req.environ.get("CONTENT_LENGTH")  # Werkzeug's content_length re-parses it
    length = int(raw_length) if raw_length and is_ascii_digits(raw_length, 18) else None
    if length is not None and length > limit:
        raise WebhookPayloadError("payload_too_large", f"The {what} is over {limit} bytes.", 413)
    if length is not None and not req.environ.get("wsgi.input_terminated"):
        return req.get_data()  # Werkzeug reads exactly Content-Length bytes
    body = req.stream.read(limit + 1)
    if len(body) > limit:
        raise WebhookPayloadError("payload_too_large", f"The {what} is over {limit} bytes.", 413)
    return body


def header(req: Request, name: str) -> str | None:
    """A request header read straight from the WSGI environ: OMI's requests read three, on every
    delivery, and Werkzeug's header view costs several calls per lookup."""
    value: str | None = req.environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value


def query_value(req: Request, name: str) -> str:
    """One query parameter ("" when absent), read from the raw query string: OMI's webhook URLs
    carry one or two parameters, and a full ``request.args`` costs more than the rest of the checks.
    Given twice, it is refused: OMI never repeats one."""
    found = [
        value
        for key, value in parse_qsl(req.query_string.decode("latin-1"), keep_blank_values=True)
        if key == name
    ]
    if len(found) > 1:
        raise WebhookPayloadError(f"{name}_invalid", f"The {name} query parameter is given more than once.")
    return found[0] if found else ""


def checked_request(app: Flask, req: Request) -> tuple[str, bytes]:
    """Size, then signature, then uid: nothing reaches a handler unless all pass."""
    config = app.config
    body = read_body(req, int(config["OMI_WEBHOOK_MAX_BYTES"]))
    uid = query_value(req, "uid")
    secret = config["OMI_WEBHOOK_SECRET"]
    if secret:
        verify_signature(
            secret,
            header(req, SIGNATURE_HEADER),
            uid,
            body,
            now=app.extensions["omi_webhooks"].clock(),
            tolerance=float(config["OMI_WEBHOOK_TOLERANCE"]),
        )
    if not uid:
        raise WebhookPayloadError("uid_missing", "The uid query parameter is required.")
    # The signed message is "{t}.{uid}." + body: a "." inside the uid would let a body signed for
    # uid "a.b" verify for uid "a" with body "b." + body. OMI's uids (Firebase's) never hold one.
    if not is_valid_uid(uid) or "." in uid:
        raise WebhookPayloadError("uid_invalid", "The uid is not a valid OMI uid.")
    return uid, body


def json_body(body: bytes) -> Any:
    if _nesting_exceeds(body, MAX_JSON_DEPTH):
        raise WebhookPayloadError("payload_too_deep", f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookPayloadError("payload_not_json", "The body must be JSON.") from None


def _nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets outside JSON strings nest deeper than ``limit``, found without parsing.

    Escapes are dropped (``\\\\`` first, then ``\\"``), so every ``"`` left opens or closes a
    string and the text outside strings is every other piece between them. Its brackets are summed
    as +1/-1 steps. Every step runs in C, so the check costs less than ``json.loads``.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    return len(brackets) > limit and max(accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > limit


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = [0] * 256
for _open, _close in (b"[]", b"{}"):
    _BRACKET_STEP[_open], _BRACKET_STEP[_close] = 1, -1


def audio_chunk(req: Request, uid: str, body: bytes, **ids: str | None) -> AudioChunk:
    if req.mimetype not in AUDIO_CONTENT_TYPES:
        raise WebhookPayloadError("audio_content_type", "Audio must be sent as application/octet-stream.")
    raw_rate = query_value(req, "sample_rate")
    if not is_ascii_digits(raw_rate, 6) or int(raw_rate) not in SAMPLE_RATES:
        rates = ", ".join(str(rate) for rate in sorted(SAMPLE_RATES))
        raise WebhookPayloadError("sample_rate_invalid", f"sample_rate must be one of {rates} (Hz).")
    if len(body) % 2:
        raise WebhookPayloadError("audio_odd_length", "PCM16 audio must have an even number of bytes.")
    return AudioChunk(uid=uid, sample_rate=int(raw_rate), data=body, **ids)


#: Delivery ids and idempotency keys are OMI's UUIDs or short opaque keys; they end up in log lines
#: and store keys, so anything else is refused.
MAX_DELIVERY_HEADER = 200


def delivery_header(req: Request, name: str) -> str | None:
    """``X-Omi-Delivery`` or ``X-Omi-Idempotency-Key``: None when absent, 400 when unusable."""
    value = header(req, name)
    if value is None or value == "":
        return None
    if len(value) > MAX_DELIVERY_HEADER or not value.isascii() or not value.isprintable():
        raise WebhookPayloadError(
            "delivery_header_invalid", f"{name} must be printable ASCII, at most 200 characters."
        )
    return value
