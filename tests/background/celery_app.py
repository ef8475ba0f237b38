"""The app the background-handler tests run, in gunicorn and in Celery worker processes alike.

Configured by environment: ``TEST_REDIS_URL`` (store and broker), ``TEST_TIME_LIMIT`` (the
task's time limit), ``TEST_VISIBILITY_TIMEOUT`` (when the broker hands out a dead worker's
message again). The handlers count what they do in Redis hashes, keyed by conversation id:
``starts`` (a run began), ``runs`` (a run completed), ``fails`` (a run raised on purpose); and
``ran_on``, the ``--hostname`` of the worker whose run completed.
"""

from __future__ import annotations

import os
import time

from flask import Flask
from redis import Redis

from example_app.celery_setup import celery_init_app
from flask_omi import ConversationCreated, OmiWebhooks, TranscriptBatch, omi_client

from .processes import SECRET


def create() -> Flask:
    url = os.environ["TEST_REDIS_URL"]
    counts = Redis.from_url(url, socket_timeout=5)
    app = Flask(__name__)
    app.config.update(
        OMI_SIGNING_SECRET=SECRET,
        OMI_WEBHOOK_STORE=Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2),
        OMI_WEBHOOK_TASK_TIME_LIMIT=int(os.environ.get("TEST_TIME_LIMIT", "30")),
        OMI_WEBHOOK_TASK_RETRIES=2,
        CELERY={
            "broker_url": url,
            "task_ignore_result": True,
            "worker_prefetch_multiplier": 1,
            "broker_connection_timeout": 2,
            "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
            "broker_transport_options": {
                "visibility_timeout": int(os.environ.get("TEST_VISIBILITY_TIMEOUT", "600")),
                "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1,
                "socket_timeout": 5,
            },
        },
    )
    if os.environ.get("TEST_OMI_BASE"):  # the fake OMI the handlers notify users through
        app.config.update(
            OMI_APP_ID=os.environ["TEST_OMI_APP_ID"],
            OMI_API_KEY=os.environ["TEST_OMI_API_KEY"],
            OMI_API_BASE=os.environ["TEST_OMI_BASE"],
        )
    celery_init_app(app)
    hooks = OmiWebhooks()

    @hooks.on_conversation_created(background=True)
    def conversation(event: ConversationCreated) -> None:
        key = event.id or "?"
        counts.hincrby("starts", key, 1)
        time.sleep(float(event.raw.get("work_seconds", 0)))
        if counts.hincrby("fails", key, 1) <= int(event.raw.get("fail_times", 0)):
            raise RuntimeError("failing on purpose")
        # "runs" last: once a test sees the run counted, the handler touches Redis no more.
        counts.hset("ran_on", key, _worker_name())
        counts.hincrby("runs", key, 1)
        # Work after the run is counted: the test loses Redis, then lets the handler return.
        release = event.raw.get("return_when_file_exists")
        for _ in range(600 if release else 0):  # bounded: 60 s
            if os.path.exists(release):
                break
            time.sleep(0.1)
        if event.raw.get("notify"):  # a background handler notifies the user itself
            omi_client().send_notification(event.uid, f"Your summary of {event.structured.title} is ready")

    @hooks.on_transcript(background=True)
    def transcript(batch: TranscriptBatch) -> str:
        counts.hincrby("runs", f"transcript:{batch.session_id}", 1)
        return "a background handler cannot answer OMI"  # refused: BackgroundAnswerError

    app.register_blueprint(hooks)
    app.add_url_rule("/health", "health", lambda: "ok")
    return app


def _worker_name() -> str:
    """The Celery worker this run is on (``--hostname``), for "both workers took part"."""
    from celery import current_task

    return str(getattr(current_task.request, "hostname", None) or "?")


flask_app = create()
celery = flask_app.extensions["celery"]
