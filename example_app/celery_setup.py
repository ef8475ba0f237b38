"""Celery for the example, in Flask's documented pattern, and the settings that must be shared
once the app runs in more than one process (every store in Redis)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    """Flask's documented Celery pattern: every task runs in an app context."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def settings(redis_url: str) -> dict[str, Any]:
    """What must be shared once there is more than one process: every store in Redis."""
    return {
        # One setting for every guard: a sign-in's state works once on any instance, OMI's retries
        # run a handler once (and the workers' run claims), a signed tool call is accepted once,
        # confirmation codes and their budgets hold across instances.
        "OMI_STORE": redis_url,
        "CELERY": {
            "broker_url": redis_url,
            "task_ignore_result": True,
            "worker_prefetch_multiplier": 1,  # a worker takes one delivery at a time
            # A message a dead worker held is handed out again after this many seconds; the
            # run claims make that safe even for a handler that is still running.
            "broker_transport_options": {
                "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "600")),
                "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1,
            },
        },
    }
