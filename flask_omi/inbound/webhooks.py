"""``omi_webhooks``: receive what OMI sends (conversations, live transcripts, audio).

Each request is checked in this order, and the handler runs only if all pass: body size (413),
signature when ``OMI_SIGNING_SECRET`` is set (401), uid (400), payload shape (400). A handler
returns a message or None; the answer is ``{"message": ...}`` or ``{}``, as OMI expects.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, cast, overload

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from flask.sansio.blueprints import BlueprintSetupState

from flask_omi._registration import HandlersBeforeRegistration, claim_extension_slot, record_of
from flask_omi.cli import add_cli
from flask_omi.config import set_up, signing_secrets, store_for
from flask_omi.errors import InboundPayloadError, OmiInboundError
from flask_omi.inbound.background import message_for, register_task, sign_message, task_id, task_name
from flask_omi.inbound.csrf import exempt_from_csrf
from flask_omi.inbound.deliveries import Admission, admit, admit_locally, in_process_replay_store, settle
from flask_omi.inbound.payloads import ConversationCreated, Notify, TranscriptBatch
from flask_omi.inbound.protocol import DELIVERY_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from flask_omi.inbound.request import (
    audio_chunk,
    delivery_header,
    header,
    json_body,
    read_body,
    single_query_param,
)
from flask_omi.inbound.signing import verify_signature
from flask_omi.stores import KeyStore, MemoryStore, PerProcessNotice, is_per_process
from flask_omi.validation import is_valid_uid

logger = logging.getLogger("flask_omi.webhooks")

Handler = Callable[[Any], Any]
H = TypeVar("H", bound=Handler)


@dataclass
class WebhookState:
    """The webhooks part of the app's record (``app.extensions["omi"].webhooks``)."""

    endpoint_prefix: str
    #: Where handled deliveries are remembered (``OMI_WEBHOOK_STORE``), or None.
    ledger: KeyStore | None = None
    #: Where used signatures are remembered: the ledger itself, or beside an in-process ledger,
    #: a store of its own.
    replays: KeyStore | None = None
    #: Seconds since the epoch, for signature timestamps. Replace it in tests to move time.
    clock: Callable[[], float] = time.time
    #: Said once when the store is per process and the server runs several processes.
    notice: PerProcessNotice | None = None
    #: Used signatures of live deliveries while the shared store is out of reach (this process).
    fallback_replays: MemoryStore = field(default_factory=in_process_replay_store)
    #: The kinds that have a handler (``conversation``, ``transcript``, ``audio``): only their
    #: URLs are given to OMI, which disables an app whose webhooks keep failing (404 no_handler).
    handled: frozenset[str] = frozenset()
    #: Whether a handler runs on Celery; its task is ``celery.tasks[background.task_name(prefix)]``
    #: (looked up there, so that nothing here holds the task, whose function holds the app).
    background: bool = False


@dataclass
class WebhookHandlers:
    """The handlers one ``OmiWebhooks`` blueprint has, by kind, and which of them run in the background
    or are coroutines."""

    conversation: Handler | None = None
    transcript: Handler | None = None
    audio: Handler | None = None
    #: The kinds whose handler runs on a Celery worker (``background=True``).
    background: set[str] = field(default_factory=set)
    #: The kinds whose handler is a coroutine function: asked once, at registration.
    coroutines: set[str] = field(default_factory=set)


class OmiWebhooks(HandlersBeforeRegistration, Blueprint):
    """Webhook routes under ``/omi/webhooks``: ``/conversation``, ``/transcript``, ``/audio``."""

    #: A transcript handler's answer asking OMI for a proactive notification.
    Notify = Notify

    def __init__(self, name: str = "omi_webhooks", url_prefix: str | None = "/omi/webhooks") -> None:
        super().__init__(name, "flask_omi", url_prefix=url_prefix)
        self.handlers = WebhookHandlers()
        for kind, parse in PARSERS.items():
            self.add_url_rule(f"/{kind}", kind, self._view(kind, parse), methods=["POST"])
        self.register_error_handler(OmiInboundError, _render_error)
        self.register_error_handler(ReenableProbe, _answer_probe)
        self.record_once(_set_up_app)

    # -- registration -------------------------------------------------------------------------------
    @overload
    def on_conversation_created(self, handler: H, *, background: bool = False) -> H: ...
    @overload
    def on_conversation_created(self, *, background: bool = False) -> Callable[[H], H]: ...
    def on_conversation_created(self, handler: H | None = None, *, background: bool = False) -> Any:
        """``handler(ConversationCreated) -> str | None`` for ``memory_creation`` webhooks. With
        ``background=True`` it runs on a Celery worker and must return None (see the deployment
        guide)."""
        return self._register("conversation", "on_conversation_created", handler, background)

    @overload
    def on_transcript(self, handler: H, *, background: bool = False) -> H: ...
    @overload
    def on_transcript(self, *, background: bool = False) -> Callable[[H], H]: ...
    def on_transcript(self, handler: H | None = None, *, background: bool = False) -> Any:
        """``handler(TranscriptBatch) -> str | Notify | None`` for ``transcript_processed``
        webhooks: a string becomes a push notification, :class:`Notify` a proactive one. A
        background handler answers nothing: it sends notifications itself."""
        return self._register("transcript", "on_transcript", handler, background)

    @overload
    def on_audio(self, handler: H, *, background: bool = False) -> H: ...
    @overload
    def on_audio(self, *, background: bool = False) -> Callable[[H], H]: ...
    def on_audio(self, handler: H | None = None, *, background: bool = False) -> Any:
        """``handler(AudioChunk) -> str | None`` for ``audio_bytes`` webhooks."""
        return self._register("audio", "on_audio", handler, background)

    def _register(self, kind: str, decorator: str, handler: H | None, background: bool) -> Any:
        self._check_handlers_open(decorator)

        def register(handler: H) -> H:
            setattr(self.handlers, kind, handler)
            (self.handlers.background.add if background else self.handlers.background.discard)(kind)
            is_async = inspect.iscoroutinefunction(handler)
            (self.handlers.coroutines.add if is_async else self.handlers.coroutines.discard)(kind)
            return handler

        return register if handler is None else register(handler)

    # -- routes -------------------------------------------------------------------------------------
    def _view(self, kind: str, parse: Parse) -> Callable[[], Response]:
        # A plain function, not a functools.partial: Flask asks every view, on every request,
        # whether it is a coroutine function, which is slower to answer for a partial.
        def view() -> Response:
            return self._receive(kind, parse)

        return view

    def _receive(self, kind: str, parse: Parse) -> Response:
        """Check, then run the ``kind`` handler. The request and app proxies are resolved once here
        and handed down: every delivery passes a dozen checks (see benchmarks/)."""
        app, req = _current()
        uid, body, signature = checked_request(app, req, app.extensions["omi"].webhooks)
        return _dispatch(
            app,
            req,
            getattr(self.handlers, kind),
            Delivery(kind, uid, body, signature),
            lambda ids: parse(req, uid, body, ids),
            kind in self.handlers.background,
            kind in self.handlers.coroutines,
        )


#: How each receiver types a checked body: (request, uid, body, delivery ids) -> event.
Parse = Callable[[Request, str, bytes, dict[str, Any]], Any]
PARSERS: dict[str, Parse] = {
    "conversation": lambda req, uid, body, ids: ConversationCreated.from_json(uid, json_body(body), **ids),
    "transcript": lambda req, uid, body, ids: TranscriptBatch.from_json(uid, json_body(body), **ids),
    "audio": lambda req, uid, body, ids: audio_chunk(req, uid, body, **ids),
}


def _current() -> tuple[Flask, Request]:
    return current_app._get_current_object(), request._get_current_object()  # type: ignore[attr-defined]


def _set_up_app(state: BlueprintSetupState) -> None:
    if isinstance(state.blueprint, HandlersBeforeRegistration):
        state.blueprint._close_handlers()
    claim_extension_slot(state.app, "webhooks", "OmiWebhooks")
    set_up(state.app)
    exempt_from_csrf(state.app, state.blueprint)
    prefix = f"{state.name_prefix}.{state.name}".lstrip(".")
    ledger = store_for(state.app.config, "OMI_WEBHOOK_STORE")
    notice = PerProcessNotice(
        "OMI_WEBHOOK_STORE",
        "OMI's retries and replays can run a handler once per process",
        is_per_process(ledger),
    )
    replays = in_process_replay_store() if state.app.config["OMI_WEBHOOK_STORE"] is True else ledger
    webhook_state = WebhookState(prefix, ledger, replays, notice=notice)
    handlers = getattr(state.blueprint, "handlers", None)
    if isinstance(handlers, WebhookHandlers):
        webhook_state.handled = frozenset(kind for kind in PARSERS if getattr(handlers, kind) is not None)
    if isinstance(handlers, WebhookHandlers) and handlers.background:
        register_task(cast(Flask, state.app), handlers, prefix)
        webhook_state.background = True
    record_of(state.app).webhooks = webhook_state
    add_cli(state.app)


class ReenableProbe(Exception):
    """The request is OMI's check that an auto-disabled app's webhook answers again."""


def _is_reenable_probe(body: bytes) -> bool:
    """Before OMI re-enables an app it disabled after 72 h of failures, it POSTs ``{}`` to the
    webhook URL as configured: no uid, no signature (``validate_app_endpoints_for_reenable`` in
    ``backend/utils/apps.py``, 0060291d), and needs a 2xx. Only exactly that is recognised."""
    return body.strip() == b"{}"


def _answer_probe(_: ReenableProbe) -> Response:
    logger.info("OMI webhook: answered OMI's re-enable check (no handler runs)")
    return current_app.response_class(_EMPTY_ANSWER, mimetype="application/json")


def checked_request(app: Flask, req: Request, state: WebhookState) -> tuple[str, bytes, str | None]:
    """Size, then signature, then uid: nothing reaches a handler unless all pass. Returns the uid,
    the body and the verified signature's canonical identity (None when signatures are not
    checked)."""
    config = app.config
    body = read_body(req, int(config["OMI_WEBHOOK_MAX_BYTES"]))
    uid = single_query_param(req, "uid")
    signature = header(req, SIGNATURE_HEADER)
    if not uid and signature is None and _is_reenable_probe(body):
        raise ReenableProbe()
    secrets = signing_secrets(config)
    verified = None
    if secrets:
        verified = verify_signature(
            secrets,
            signature,
            uid,
            body,
            now=state.clock(),
            tolerance=float(config["OMI_SIGNATURE_TOLERANCE"]),
        )
    if not uid:
        raise InboundPayloadError("uid_missing", "The uid query parameter is required.")
    # The signed message is "{t}.{uid}." + body: a "." inside the uid would let a body signed for
    # uid "a.b" verify for uid "a" with body "b." + body. OMI's uids (Firebase's) never hold one.
    if not is_valid_uid(uid) or "." in uid:
        raise InboundPayloadError("uid_invalid", "The uid is not a valid OMI uid.")
    return uid, body, verified


def _render_error(error: OmiInboundError) -> Response:
    level = logging.WARNING if error.status in (401, 413) else logging.INFO
    logger.log(level, "OMI webhook refused: %s", error.error_code)
    response = jsonify(error=error.error_code, error_description=error.description)
    response.status_code = error.status
    return response


class Delivery(NamedTuple):
    """One checked request from OMI, before its body is typed."""

    kind: str
    uid: str
    body: bytes
    #: The verified signature's canonical identity (``"{t}:{hex}"``), or None when not checked.
    signature: str | None


def _dispatch(
    app: Flask,
    req: Request,
    handler: Handler | None,
    delivery: Delivery,
    parse: Callable[[dict[str, Any]], Any],
    background: bool = False,
    is_async: bool = False,
) -> Response:
    """A checked delivery: admitted once (:func:`_admit`), then run here or queued, then recorded
    (done, or released when it failed, so that OMI's retry runs it again)."""
    kind = delivery.kind
    if handler is None:
        raise InboundPayloadError("no_handler", f"This app does not handle {kind} webhooks.", 404)
    idempotency_key = delivery_header(req, IDEMPOTENCY_HEADER)
    event = parse({"delivery_id": delivery_header(req, DELIVERY_HEADER), "idempotency_key": idempotency_key})
    if background:  # segments are typed when read (payloads.Segments): a queued delivery is checked whole
        for segments in (getattr(event, "segments", None), getattr(event, "transcript_segments", None)):
            if segments is not None:
                segments.check()
    state: WebhookState = app.extensions["omi"].webhooks
    if state.ledger is None or (idempotency_key is None and delivery.signature is None):
        if background:
            return _enqueue(app, state, delivery, event, None)
        return _run(app, handler, kind, event, is_async)
    admitted = _admit(app, req, state, delivery, idempotency_key)
    if isinstance(admitted, Response):
        return admitted
    admission, ledger, replays = admitted
    if background:
        dedup_key = next((key for key in admission.claimed if not key.startswith("signature:")), None)
        response = _enqueue(app, state, delivery, event, dedup_key)
    else:
        response = _run(app, handler, kind, event, is_async)
    try:
        ttl = int(app.config["OMI_WEBHOOK_DEDUP_TTL"])
        settle(ledger, replays, admission, failed=response.status_code >= 500, ttl=ttl)
    except Exception as error:
        logger.error("OMI %s webhook: could not record the delivery (%r)", kind, error)
    return response


def _admit(
    app: Flask, req: Request, state: WebhookState, delivery: Delivery, idempotency_key: str | None
) -> tuple[Admission, KeyStore, KeyStore] | Response:
    """Claim the delivery in the store, or the answer to give instead: 200 already handled, 425
    being handled (OMI retries), 409 a replayed signature, 503 the store failed (OMI retries). A
    live delivery, which OMI never sends again, gets replay refusal in this process instead."""
    kind, ledger = delivery.kind, cast(KeyStore, state.ledger)
    # Not `state.replays or ledger`: an empty MemoryStore is falsy (it has a length).
    replays = ledger if state.replays is None else state.replays
    if state.notice is not None:
        state.notice.check(req.environ.get("wsgi.multiprocess"), logger)
    tolerance = float(app.config["OMI_SIGNATURE_TOLERANCE"])
    try:
        admission = admit(
            ledger,
            replays,
            kind=kind,
            uid=delivery.uid,
            body=delivery.body,
            idempotency_key=idempotency_key,
            signature=delivery.signature,
            tolerance=tolerance,
        )
    except Exception as error:
        if idempotency_key is not None or delivery.signature is None:
            logger.error("OMI %s webhook: the de-duplication store failed (%r); OMI will retry", kind, error)
            return _answer(503, error="dedup_unavailable", error_description="Please retry this delivery.")
        logger.error(
            "OMI %s webhook: the store failed (%r); replays refused in this process only", kind, error
        )
        admission = admit_locally(state.fallback_replays, delivery.signature, tolerance)
        ledger = replays = state.fallback_replays
    if admission.verdict == "done":
        logger.info("OMI %s webhook: delivery already handled, not run again", kind)
        return jsonify({})
    if admission.verdict == "running":
        # 425 is one of the answers OMI retries: if the running attempt fails, the event survives.
        return _answer(425, error="delivery_in_progress", error_description="This delivery is being handled.")
    if admission.verdict == "replayed":
        logger.warning("OMI %s webhook refused: replayed (a signature already used)", kind)
        return _answer(409, error="replayed", error_description="This delivery was already received.")
    return admission, ledger, replays


def _enqueue(
    app: Flask, state: WebhookState, delivery: Delivery, event: Any, dedup_key: str | None
) -> Response:
    """Hand a checked delivery to a Celery worker; a broker that cannot take it is a 503, which
    OMI retries (and the delivery's claims are released, so that the retry enqueues it)."""
    kind = delivery.kind
    try:
        app.extensions["celery"].tasks[task_name(state.endpoint_prefix)].apply_async(
            args=(sign_message(app, message_for(kind, delivery.uid, delivery.body, event)),),
            task_id=task_id(kind, dedup_key),
        )
    except Exception as error:
        logger.error("OMI %s webhook: could not queue the delivery (%r); OMI will retry", kind, error)
        return _answer(503, error="queue_unavailable", error_description="Please retry this delivery.")
    return app.response_class(_EMPTY_ANSWER, mimetype="application/json")


def _run(app: Flask, handler: Handler, kind: str, event: Any, is_async: bool = False) -> Response:
    """Run the handler; a crash is a 500 without details, which OMI retries."""
    try:
        message = app.ensure_sync(handler)(event) if is_async else handler(event)
    except InboundPayloadError as error:  # a segment of the wrong shape, found when it was read
        return _render_error(error)
    except Exception:
        logger.exception("OMI %s webhook handler failed", kind)
        return _answer(
            500, error="handler_failed", error_description="The app failed to handle this webhook."
        )
    if isinstance(message, Notify):
        if kind != "transcript":
            logger.error(
                "OMI %s webhook handler returned Notify, which OMI reads only from transcripts", kind
            )
            return _answer(
                500, error="handler_failed", error_description="The app failed to handle this webhook."
            )
        return _json(app, message.as_answer())
    if message is None:
        return app.response_class(_EMPTY_ANSWER, mimetype="application/json")
    return _json(app, {"message": str(message)})


#: The answer to most deliveries, built once: OMI reads ``{}`` as "nothing to say".
_EMPTY_ANSWER = b"{}\n"


def _json(app: Flask, body: dict[str, Any]) -> Response:
    return app.response_class(json.dumps(body, ensure_ascii=False) + "\n", mimetype="application/json")


def _answer(status: int, **body: str) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


#: The default instance most apps register.
omi_webhooks = OmiWebhooks()
