"""Reading a request from OMI, for both receivers (webhooks and chat tools): the body within a
bound, headers and query values from the WSGI environ, JSON behind a nesting guard.

Everything here refuses with a :class:`~flask_omi.errors.InboundPayloadError` (400/413) before any
of the app's code runs: answers OMI does not retry, so bad input is dropped, never a 500. It reads
only the request it is given, never an app's settings or state.
"""

from __future__ import annotations

import json
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from flask import Request

from flask_omi.errors import InboundPayloadError
from flask_omi.inbound.payloads import AudioChunk
from flask_omi.validation import is_ascii_digits

#: OMI's payloads nest a few levels; a deeper body is refused before a handler (or Python's own
#: recursion limit) meets it.
MAX_JSON_DEPTH = 32


def read_body(req: Request, limit: int, what: str = "body") -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes (chunked uploads too)."""
    raw_length = req.environ.get("CONTENT_LENGTH")  # Werkzeug's content_length re-parses it
    length = int(raw_length) if raw_length and is_ascii_digits(raw_length, 18) else None
    if length is not None and length > limit:
        raise InboundPayloadError("payload_too_large", f"The {what} is over {limit} bytes.", 413)
    if length is not None and not req.environ.get("wsgi.input_terminated"):
        return req.get_data()  # Werkzeug reads exactly Content-Length bytes
    body = req.stream.read(limit + 1)
    if len(body) > limit:
        raise InboundPayloadError("payload_too_large", f"The {what} is over {limit} bytes.", 413)
    return body


def header(req: Request, name: str) -> str | None:
    """A request header read straight from the WSGI environ: OMI's requests read three, on every
    delivery, and Werkzeug's header view costs several calls per lookup."""
    value: str | None = req.environ.get("HTTP_" + name.upper().replace("-", "_"))
    return value


def query_is_utf8(raw: bytes) -> bool:
    """Whether every name and value of a raw query string percent-decodes to UTF-8."""
    if b"%" not in raw and raw.isascii():
        return True  # nothing encoded: plain ASCII (a POST call's empty query, most GET ones)
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def single_query_param(req: Request, name: str) -> str:
    """One query parameter ("" when absent), read from the raw query string: OMI's webhook URLs
    carry one or two parameters, and a full ``request.args`` costs more than the rest of the checks.
    Given twice, it is refused: OMI never repeats one."""
    query = req.query_string
    prefix = name.encode() + b"="
    if (
        query.startswith(prefix)
        and query.isascii()
        and b"&" not in query
        and b"%" not in query
        and b"+" not in query
        and b";" not in query
    ):
        return query[len(prefix) :].decode("ascii")  # OMI's usual "uid=..." and nothing to decode
    found = [
        value
        for key, value in parse_qsl(req.query_string.decode("latin-1"), keep_blank_values=True)
        if key == name
    ]
    if len(found) > 1:
        raise InboundPayloadError(f"{name}_invalid", f"The {name} query parameter is given more than once.")
    return found[0] if found else ""


def json_body(body: bytes) -> Any:
    """The body as JSON, or a 400 ``payload_invalid``: never a 500, however deep or malformed."""
    if _nesting_exceeds(body, MAX_JSON_DEPTH):
        raise InboundPayloadError("payload_too_deep", f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InboundPayloadError("payload_not_json", "The body must be JSON.") from None


def _nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets outside JSON strings nest deeper than ``limit``, found without parsing.

    Escapes are dropped (``\\\\`` first, then ``\\"``), so every ``"`` left opens or closes a
    string. Only quotes and brackets are kept, each bracket as ``(`` or ``)``. Two quotes side by
    side either close a string and open the next or hold an empty string; dropping them leaves
    every other quote's role as it was, so when no quote is left, no bracket was inside a string
    (the usual case) and what remains is the brackets' skeleton. Each ``replace("()", "")`` then
    removes exactly the innermost level. Every step runs in C over the body once or over the much
    shorter skeleton; a body whose skeleton is not so simple is measured exactly, as before.
    """
    if len(body) < 16384 and body.count(b"[") + body.count(b"{") <= limit:
        return False  # most bodies: too few brackets to nest that deep (counting is fast when short)
    if b"\\" in body:  # searching for escapes costs more than finding there are none
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(_AS_PARENS, _NOT_MARKS)
    if marks.count(b"(") <= limit:
        return False
    marks = marks.replace(b'""', b"")
    skeleton = b"".join(marks.split(b'"')[::2]) if b'"' in marks else marks
    level = skeleton
    for _ in range(limit):  # bounded: one pass per level allowed
        if not level:
            return False
        level = level.replace(b"()", b"")
    if not level:
        return False
    # Deeper than the limit, or brackets that do not pair up (json.loads will say so): exactly.
    return max(accumulate(map(_PAREN_STEP.__getitem__, skeleton))) > limit


_NOT_MARKS = bytes(b for b in range(256) if b not in b'"[]{}')
_AS_PARENS = bytes.maketrans(b"[]{}", b"()()")
_PAREN_STEP = [0] * 256
_PAREN_STEP[ord("(")], _PAREN_STEP[ord(")")] = 1, -1


#: Delivery ids and idempotency keys are OMI's UUIDs or short opaque keys; they end up in log lines
#: and store keys, so anything else is refused.
MAX_DELIVERY_HEADER = 200


def delivery_header(req: Request, name: str) -> str | None:
    """``X-Omi-Delivery`` or ``X-Omi-Idempotency-Key``: None when absent, 400 when unusable."""
    value = header(req, name)
    if value is None or value == "":
        return None
    if len(value) > MAX_DELIVERY_HEADER or not value.isascii() or not value.isprintable():
        raise InboundPayloadError(
            "delivery_header_invalid", f"{name} must be printable ASCII, at most 200 characters."
        )
    return value


AUDIO_CONTENT_TYPES = {"application/octet-stream", "audio/l16", "audio/pcm"}
#: ``sample_rate`` is not covered by the signature, so only the common PCM rates are taken (OMI's
#: devices send 8 kHz or 16 kHz); anything else is refused rather than passed on to a handler.
SAMPLE_RATES = frozenset({8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000})


def audio_chunk(req: Request, uid: str, body: bytes, **ids: str | None) -> AudioChunk:
    """An audio delivery: PCM16 in an allowed content type, at an allowed (unsigned) sample rate."""
    if req.mimetype not in AUDIO_CONTENT_TYPES:
        raise InboundPayloadError("audio_content_type", "Audio must be sent as application/octet-stream.")
    raw_rate = single_query_param(req, "sample_rate")
    if not is_ascii_digits(raw_rate, 6) or int(raw_rate) not in SAMPLE_RATES:
        rates = ", ".join(str(rate) for rate in sorted(SAMPLE_RATES))
        raise InboundPayloadError("sample_rate_invalid", f"sample_rate must be one of {rates} (Hz).")
    if len(body) % 2:
        raise InboundPayloadError("audio_odd_length", "PCM16 audio must have an even number of bytes.")
    return AudioChunk(uid=uid, sample_rate=int(raw_rate), data=body, **ids)
