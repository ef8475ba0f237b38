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
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, jsonify, request
from flask.sansio.blueprints import BlueprintSetupState

from .config import apply_defaults
from .errors import OmiWebhookError, WebhookPayloadError
from .signing import SIGNATURE_HEADER, verify_signature
from .validation import is_valid_uid
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
MAX_SAMPLE_RATE = 192_000


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
    if not is_valid_uid(uid):
        raise WebhookPayloadError("uid_invalid", "The uid is not a valid OMI uid.")
    return uid, body


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookPayloadError("payload_not_json", "The body must be JSON.") from None


def _audio_chunk(uid: str, body: bytes) -> AudioChunk:
    if request.mimetype not in AUDIO_CONTENT_TYPES:
        raise WebhookPayloadError("audio_content_type", "Audio must be sent as application/octet-stream.")
    raw_rate = request.args.get("sample_rate", "")
    if not raw_rate.isdigit() or not 0 < int(raw_rate) <= MAX_SAMPLE_RATE:
        raise WebhookPayloadError("sample_rate_invalid", "sample_rate must be a positive whole number of Hz.")
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
