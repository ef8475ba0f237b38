"""The app of the inline-versus-background benchmark (benchmarks/background.py), under gunicorn.

``BENCH_MODE`` is ``inline`` or ``background``; ``BENCH_HANDLER_SECONDS`` is how long the
conversation handler works; ``BENCH_REDIS_URL`` is the shared store and Celery's broker.
"""

from __future__ import annotations

import os
import time

from flask import Flask
from redis import Redis

from example_app.celery_setup import celery_init_app
from flask_omi import ConversationCreated, OmiWebhooks, TranscriptBatch

SECRET = "whsec_benchmark_secret"  # noqa: S105 (a benchmark's own)


def create() -> Flask:
    url = os.environ["BENCH_REDIS_URL"]
    background = os.environ.get("BENCH_MODE") == "background"
    work = float(os.environ.get("BENCH_HANDLER_SECONDS", "2"))
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET, OMI_WEBHOOK_STORE=Redis.from_url(url, socket_timeout=5))
    if background:
        app.config["CELERY"] = {"broker_url": url, "task_ignore_result": True}
        celery_init_app(app)
    hooks = OmiWebhooks()

    @hooks.on_conversation_created(background=background)
    def conversation(event: ConversationCreated) -> None:
        time.sleep(work)  # a language model, another service

    @hooks.on_transcript(background=background)
    def transcript(batch: TranscriptBatch) -> None:
        time.sleep(work)

    app.register_blueprint(hooks)
    app.add_url_rule("/health", "health", lambda: "ok")
    return app
