"""``omi_webhooks``: receive what OMI sends (conversations, live transcripts, audio).

Each request is checked in this order, and the handler runs only if all pass: body size (413),
signature when ``OMI_WEBHOOK_SECRET`` is set (401), uid (400), payload shape (400). A handler
returns a message or None; the answer is ``{"message": ...}`` or ``{}``, as OMI expects.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from flask.sansio.blueprints import BlueprintSetupState

from .config import apply_defaults
from .errors import OmiWebhookError, WebhookPayloadError
from .signing import SIGNATURE_HEADER, verify_signature
from .validation import is_ascii_digits, is_valid_uid
from .webhook_payloads import AudioChunk, ConversationCreated, TranscriptBatch

logger = logging.getLogger("flask_omi.webhooks")

Handler = Callable[[Any], Any]
H = TypeVar("H", bound=Handler)
#: OMI's trigger names (``triggers_on``) and the endpoint of this blueprint that receives each.
TRIGGER_ENDPOINTS = {
    "memory_creation": "conversation",
    "transcript_processed": "transcript",
    "audio_bytes": "audio",
}
AUDIO_CONTENT_TYPES = {"application/octet-stream", "audio/l16", "audio/pcm"}
#: ``sample_rate`` is not covered by the signature, so only the common PCM rates are taken (OMI's
#: devices send 8 kHz or 16 kHz); anything else is refused rather than passed on to a handler.
SAMPLE_RATES = frozenset({8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000})
#: OMI's payloads nest a few levels; a deeper body is refused before a handler (or Python's own
#: recursion limit) meets it.
MAX_JSON_DEPTH = 32


@dataclass
class WebhookState:
    """What ``app.extensions["omi_webhooks"]`` holds."""

    endpoint_prefix: str
    #: Seconds since the epoch, for signature timestamps. Replace it in tests to move time.
    clock: Callable[[], float] = time.time


@dataclass
class WebhookHandlers:
    conversation: Handler | None = None
    transcript: Handler | None = None
    audio: Handler | None = None


class OmiWebhooks(Blueprint):
    """Webhook routes under ``/omi/webhooks``: ``/conversation``, ``/transcript``, ``/audio``."""

    def __init__(self, name: str = "omi_webhooks", url_prefix: str | None = "/omi/webhooks") -> None:
        super().__init__(name, "flask_omi", url_prefix=url_prefix)
        self.handlers = WebhookHandlers()
        self.add_url_rule("/conversation", "conversation", self._conversation, methods=["POST"])
        self.add_url_rule("/transcript", "transcript", self._transcript, methods=["POST"])
        self.add_url_rule("/audio", "audio", self._audio, methods=["POST"])
        self.register_error_handler(OmiWebhookError, _render_error)
        self.record_once(_set_up_app)

    # -- registration -------------------------------------------------------------------------------
    def on_conversation_created(self, handler: H) -> H:
        """``handler(ConversationCreated) -> str | None`` for ``memory_creation`` webhooks."""
        self.handlers.conversation = handler
        return handler

    def on_transcript(self, handler: H) -> H:
        """``handler(TranscriptBatch) -> str | None`` for ``transcript_processed`` webhooks."""
        self.handlers.transcript = handler
        return handler

    def on_audio(self, handler: H) -> H:
        """``handler(AudioChunk) -> str | None`` for ``audio_bytes`` webhooks."""
        self.handlers.audio = handler
        return handler

    # -- routes -------------------------------------------------------------------------------------
    def _conversation(self) -> Response:
        uid, body = _checked_request()
        return _dispatch(
            self.handlers.conversation,
            "conversation",
            lambda: ConversationCreated.from_json(uid, _json(body)),
        )

    def _transcript(self) -> Response:
        uid, body = _checked_request()
        return _dispatch(
            self.handlers.transcript, "transcript", lambda: TranscriptBatch.from_json(uid, _json(body))
        )

    def _audio(self) -> Response:
        uid, body = _checked_request()
        return _dispatch(self.handlers.audio, "audio", lambda: _audio_chunk(uid, body))


def _set_up_app(state: BlueprintSetupState) -> None:
    apply_defaults(state.app)
    prefix = f"{state.name_prefix}.{state.name}".lstrip(".")
    state.app.extensions["omi_webhooks"] = WebhookState(endpoint_prefix=prefix)


def _render_error(error: OmiWebhookError) -> Response:
    level = logging.WARNING if error.status in (401, 413) else logging.INFO
    logger.log(level, "OMI webhook refused: %s", error.error_code)
    response = jsonify(error=error.error_code, error_description=error.description)
    response.status_code = error.status
    return response


def _checked_request() -> tuple[str, bytes]:
    """Size, then signature, then uid: nothing reaches a handler unless all pass."""
    config = current_app.config
    limit = int(config["OMI_WEBHOOK_MAX_BYTES"])
    if request.content_length is not None and request.content_length > limit:
        raise WebhookPayloadError("payload_too_large", f"The body is over {limit} bytes.", 413)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise WebhookPayloadError("payload_too_large", f"The body is over {limit} bytes.", 413)
    uid = request.args.get("uid", "")
    secret = config["OMI_WEBHOOK_SECRET"]
    if secret:
        verify_signature(
            secret,
            request.headers.get(SIGNATURE_HEADER),
            uid,
            body,
            now=current_app.extensions["omi_webhooks"].clock(),
            tolerance=float(config["OMI_WEBHOOK_TOLERANCE"]),
        )
    if not uid:
        raise WebhookPayloadError("uid_missing", "The uid query parameter is required.")
    # The signed message is "{t}.{uid}." + body: a "." inside the uid would let a body signed for
    # uid "a.b" verify for uid "a" with body "b." + body. OMI's uids (Firebase's) never hold one.
    if not is_valid_uid(uid) or "." in uid:
        raise WebhookPayloadError("uid_invalid", "The uid is not a valid OMI uid.")
    return uid, body


def _json(body: bytes) -> Any:
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


def _audio_chunk(uid: str, body: bytes) -> AudioChunk:
    if request.mimetype not in AUDIO_CONTENT_TYPES:
        raise WebhookPayloadError("audio_content_type", "Audio must be sent as application/octet-stream.")
    raw_rate = request.args.get("sample_rate", "")
    if not is_ascii_digits(raw_rate, 6) or int(raw_rate) not in SAMPLE_RATES:
        rates = ", ".join(str(rate) for rate in sorted(SAMPLE_RATES))
        raise WebhookPayloadError("sample_rate_invalid", f"sample_rate must be one of {rates} (Hz).")
    if len(body) % 2:
        raise WebhookPayloadError("audio_odd_length", "PCM16 audio must have an even number of bytes.")
    return AudioChunk(uid=uid, sample_rate=int(raw_rate), data=body)


def _dispatch(handler: Handler | None, kind: str, parse: Callable[[], Any]) -> Response:
    if handler is None:
        raise WebhookPayloadError("no_handler", f"This app does not handle {kind} webhooks.", 404)
    event = parse()
    try:
        message = current_app.ensure_sync(handler)(event)
    except Exception:
        logger.exception("OMI %s webhook handler failed", kind)
        response = jsonify(error="handler_failed", error_description="The app failed to handle this webhook.")
        response.status_code = 500
        return response
    if message is None:
        return jsonify({})
    return jsonify(message=str(message))


#: The default instance most apps register.
omi_webhooks = OmiWebhooks()
