"""Webhook handlers that run on Celery workers instead of inside the web request.

OMI waits 30 s for an answer and a handler that calls a language model takes seconds: run inside
the request, it holds a web worker for all of it. With ``background=True`` the receiver does what
it always does (size, signature, uid, payload, de-duplication), then puts the checked delivery on
Celery's queue and answers ``{}`` at once; a worker types it again and runs the handler in an app
context.

What makes "one run per delivery" hold when OMI retries and Celery redelivers:

- the receiver's de-duplication (``OMI_WEBHOOK_STORE``) enqueues one task per delivery, and the
  task's id comes from the delivery's de-duplication key;
- the task is acknowledged late (``acks_late``, ``reject_on_worker_lost``), so a worker killed in
  the middle loses nothing: the broker hands the message out again;
- every run first claims ``run:{task id}`` in the same store, leased for the task's time limit
  plus :data:`LEASE_MARGIN` seconds. A message handed out again while its run is alive waits
  (retried later); one whose run finished is dropped; one whose worker died runs once its lease
  expires. A run never outlives its lease, because the task's hard time limit is the lease's.

A handler that raises is retried with exponential backoff (2, 4, 8, ... seconds, at most
``OMI_WEBHOOK_TASK_RETRIES`` times); the last failure is logged as an error. A background handler
cannot answer OMI, whose request is long over: returning anything (a message, :class:`Notify`) is
refused with :class:`BackgroundAnswerError`, logged, and not retried. Such a handler notifies the
user itself, with ``omi_client().send_notification(...)``.

Celery is imported only by apps that declare a background handler.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, has_app_context

from flask_omi.config import signing_secrets
from flask_omi.errors import OmiConfigError
from flask_omi.inbound.payloads import AudioChunk, ConversationCreated, TranscriptBatch
from flask_omi.inbound.request import json_body
from flask_omi.stores import KeyStore

if TYPE_CHECKING:
    from flask_omi.inbound.webhooks import WebhookHandlers

logger = logging.getLogger("flask_omi.webhooks")

#: Seconds a run's claim outlives the task's time limit, so that a worker's clock, Celery's
#: bookkeeping, the store's expiry and the retried write of "done" (a Redis blip after the handler
#: returned) never let two runs overlap. The lease is longer than the time limit by this much.
LEASE_MARGIN = 30
#: Celery pools that stop a task at its hard time limit. Threads, solo, gevent and eventlet cannot:
#: a run there outlives its claim, and the broker's redelivery completes it twice.
TIME_LIMITED_POOLS = ("prefork", "processes")
#: The first retry's delay in seconds; each later one doubles it.
RETRY_DELAY = 2
#: The longest delay between two retries, in seconds.
MAX_RETRY_DELAY = 300


class BackgroundAnswerError(TypeError):
    """A background handler returned an answer for OMI, which nobody is waiting for any more."""


def task_name(endpoint_prefix: str) -> str:
    """The Celery task that runs the background handlers of one registered ``OmiWebhooks``."""
    return f"flask_omi.webhooks.{endpoint_prefix}"


def register_task(app: Flask, handlers: WebhookHandlers, endpoint_prefix: str) -> None:
    """Declare this app's background task on the Celery app of Flask's pattern
    (``app.extensions["celery"]``); every process that makes the app (web and worker) does so."""
    celery = app.extensions.get("celery")
    if celery is None or not callable(getattr(celery, "task", None)):
        raise OmiConfigError(
            "A webhook handler has background=True but this app has no Celery app: create it first "
            "(Flask's pattern, celery_init_app(app), sets app.extensions['celery']), then register "
            "the OmiWebhooks blueprint. See the deployment guide."
        )
    name = task_name(endpoint_prefix)
    if name in celery.tasks:
        raise OmiConfigError(
            f"This Celery app already has a task {name!r}, for another app's webhooks: give each Flask "
            "app a Celery app of its own (Flask's pattern does), or its OmiWebhooks another name."
        )
    time_limit = int(app.config["OMI_WEBHOOK_TASK_TIME_LIMIT"])
    _refuse_unlimited_pools(celery)
    key = _message_key(app)

    @celery.task(  # type: ignore[untyped-decorator]
        name=name,
        shared=False,  # this Celery app's only: a shared task would run another app's handlers
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        max_retries=None,  # counted by this module (failures), not by Celery's redeliveries
        time_limit=time_limit,
        soft_time_limit=max(1, time_limit - 1),
    )
    def run_webhook(task: Any, message: dict[str, Any], failures: int = 0, ran: bool = False) -> None:
        if not _is_ours(key, message, app):
            return
        if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
            run(app, handlers, task, message, failures, ran)
        else:
            with app.app_context():
                run(app, handlers, task, message, failures, ran)


def task_id(kind: str, dedup_key: str | None) -> str:
    """The task's id: from the delivery's de-duplication key when it has one (so that the same
    delivery is the same task, wherever it was received), else new."""
    if dedup_key is None:
        return f"omi-{kind}-{uuid.uuid4().hex}"
    return f"omi-{kind}-{hashlib.sha256(dedup_key.encode()).hexdigest()[:40]}"


def _refuse_unlimited_pools(celery: Any) -> None:
    """A worker of this Celery app whose pool cannot stop a task at its time limit does not start:
    it would let a run outlive its claim (``SystemExit`` passes through Celery's signal dispatch,
    which swallows ordinary exceptions)."""
    from celery import signals  # type: ignore[import-untyped]
    from celery.concurrency import ALIASES, get_implementation  # type: ignore[import-untyped]
    from celery.concurrency.prefork import TaskPool  # type: ignore[import-untyped]

    def check_pool(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not celery:
            return
        pool = get_implementation(getattr(sender, "pool_cls", None) or "prefork")
        if not (isinstance(pool, type) and issubclass(pool, TaskPool)):
            path = f"{getattr(pool, '__module__', '')}:{getattr(pool, '__qualname__', pool)}"
            name = next((alias for alias, target in ALIASES.items() if target == path), path)
            logger.critical(
                "flask-omi: this worker's pool (%s) cannot stop a background webhook handler at its "
                "time limit, so a run could outlive its claim and complete twice. Use the prefork "
                "pool (Celery's default).",
                name,
            )
            raise SystemExit(f"flask-omi refuses Celery's {name} pool: use prefork")

    signals.worker_init.connect(check_pool, weak=False, dispatch_uid=f"flask_omi.pool.{id(celery)}")


#: The largest queued message a worker takes: a webhook body at its bound, base64-encoded, with
#: room for the rest. Anything larger did not come from this receiver.
def max_message_chars(app: Flask) -> int:
    """The largest queued message a worker takes: a webhook body at its bound, base64-encoded, with
    room for the rest."""
    return int(app.config["OMI_WEBHOOK_MAX_BYTES"]) * 4 // 3 + 4096


def _message_key(app: Flask) -> bytes:
    """What queued messages are signed with: the app's signing secret (the newest, while it
    rotates), else its SECRET_KEY. Anyone who can write to the broker can queue a task; only
    the app can sign one."""
    secrets = signing_secrets(app.config)
    secret = secrets[0] if secrets else app.secret_key
    if not secret:
        raise OmiConfigError(
            "A webhook handler has background=True: queued deliveries are signed so that workers run "
            "only what this app queued. Set OMI_SIGNING_SECRET (or SECRET_KEY)."
        )
    material = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hmac.new(material, b"flask-omi background message", hashlib.sha256).digest()


def _mac(key: bytes, message: dict[str, Any]) -> str:
    unsigned = {name: value for name, value in message.items() if name != "mac"}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def sign_message(app: Flask, message: dict[str, Any]) -> dict[str, Any]:
    """``message`` with its ``mac``: a worker runs only what this app queued."""
    return {**message, "mac": _mac(_message_key(app), message)}


def _is_ours(key: bytes, message: Any, app: Flask) -> bool:
    """A message this app queued: within the size bound and signed; anything else is logged and
    dropped (never retried), whatever uid it names."""
    if not isinstance(message, dict) or not isinstance(message.get("mac"), str):
        logger.error("OMI webhook (background): refused a queued message that is not signed")
        return False
    size = sum(len(str(value)) for value in message.values())
    if size > max_message_chars(app):
        logger.error("OMI webhook (background): refused a queued message of %d characters", size)
        return False
    if not hmac.compare_digest(_mac(key, message), message["mac"]):
        logger.error("OMI webhook (background): refused a queued message whose signature is wrong")
        return False
    return True


def message_for(kind: str, uid: str, body: bytes, event: Any) -> dict[str, Any]:
    """What goes on the queue: the checked body (JSON text, or base64 audio), never an object
    (Celery's JSON serializer carries no classes); signed with :func:`sign_message`."""
    message: dict[str, Any] = {
        "kind": kind,
        "uid": uid,
        "delivery_id": event.delivery_id,
        "idempotency_key": event.idempotency_key,
    }
    if isinstance(event, AudioChunk):
        message.update(sample_rate=event.sample_rate, audio=base64.b64encode(event.data).decode("ascii"))
    else:
        message["body"] = body.decode("utf-8")
    return message


def event_from(message: dict[str, Any]) -> Any:
    """The typed event a message was made from (it was checked when it was received)."""
    kind, uid = message["kind"], message["uid"]
    ids = {"delivery_id": message.get("delivery_id"), "idempotency_key": message.get("idempotency_key")}
    if kind == "audio":
        data = base64.b64decode(message["audio"])
        return AudioChunk(uid=uid, sample_rate=int(message["sample_rate"]), data=data, **ids)
    payload = json_body(message["body"].encode("utf-8"))
    if kind == "conversation":
        return ConversationCreated.from_json(uid, payload, **ids)
    return TranscriptBatch.from_json(uid, payload, **ids)


def run(
    app: Flask,
    handlers: WebhookHandlers,
    task: Any,
    message: dict[str, Any],
    failures: int,
    ran: bool = False,
) -> None:
    """One attempt of a background delivery, guarded by its run claim. ``ran``: the handler
    completed in an earlier attempt, whose "done" could not be written; only write it."""
    kind = message["kind"]
    store: KeyStore | None = app.extensions["omi"].webhooks.ledger
    lease = int(app.config["OMI_WEBHOOK_TASK_TIME_LIMIT"]) + LEASE_MARGIN
    run_key = f"run:{task.request.id}"
    if ran:
        _finish(app, task, store, run_key, message, failures, begun=time.monotonic(), lease=lease)
        return
    begun = time.monotonic()
    if store is not None:
        seen = store.claim(run_key, lease)
        if seen == "done":
            logger.info("OMI %s webhook (background): already run, not run again", kind)
            return
        if seen == "running":  # handed out again while its run is alive (or its worker just died)
            raise task.retry(args=(message,), kwargs={"failures": failures}, countdown=max(1, lease // 4))
    handler = getattr(handlers, kind)
    try:
        event = event_from(message)
        answer = app.ensure_sync(handler)(event) if kind in handlers.coroutines else handler(event)
    except Exception as error:
        if store is not None:
            store.abandon(run_key)
        retries = int(app.config["OMI_WEBHOOK_TASK_RETRIES"])
        if failures >= retries:
            logger.error(
                "OMI %s webhook (background): the handler failed %d times; giving up on delivery %s",
                kind,
                failures + 1,
                message.get("delivery_id"),
                exc_info=True,
            )
            return
        delay = min(MAX_RETRY_DELAY, RETRY_DELAY * 2**failures)
        logger.warning(
            "OMI %s webhook (background): the handler failed (%s); retry %d of %d in %d s",
            kind,
            type(error).__name__,
            failures + 1,
            retries,
            delay,
        )
        raise task.retry(args=(message,), kwargs={"failures": failures + 1}, countdown=delay) from error
    _finish(app, task, store, run_key, message, failures, begun=begun, lease=lease)
    if answer is not None:  # after finish: the handler ran, and running it again would not help
        raise BackgroundAnswerError(
            f"The OMI {kind} webhook handler returned {type(answer).__name__}, but a background "
            "handler cannot answer OMI (its request was answered when the delivery was queued), so "
            "the answer was dropped. Notify the user from the handler instead: "
            "omi_client().send_notification(uid, ...)."
        )


def _finish(
    app: Flask,
    task: Any,
    store: KeyStore | None,
    run_key: str,
    message: dict[str, Any],
    failures: int,
    *,
    begun: float,
    lease: int,
) -> None:
    """Write "done" for a completed run. A store that cannot be reached is asked again while the
    run's lease lasts (the same write, so safe to repeat); past that, a later attempt of the task
    only writes it (``ran=True``), never runs the handler again."""
    if store is None:
        return
    ttl = int(app.config["OMI_WEBHOOK_DEDUP_TTL"])
    deadline = begun + lease - 1
    wait, first_failure = 0.2, True
    while True:  # bounded by the lease
        try:
            store.finish(run_key, ttl)
            return
        except Exception as error:
            left = deadline - time.monotonic()
            if first_failure:  # said once, then tried again quietly
                first_failure = False
                logger.warning(
                    "OMI %s webhook (background): 'done' not recorded yet (%s); trying again for %d s",
                    message["kind"],
                    type(error).__name__,
                    max(0, int(left)),
                )
            if left <= 0:
                logger.error(
                    "OMI %s webhook (background): the handler ran, but 'done' could not be recorded "
                    "(%s); a later attempt records it without running the handler again",
                    message["kind"],
                    type(error).__name__,
                )
                kwargs = {"failures": failures, "ran": True}
                raise task.retry(args=(message,), kwargs=kwargs, countdown=RETRY_DELAY) from error
            time.sleep(min(wait, left))
            wait = min(wait * 2, 5.0)
