"""The example app deployed past one machine: gunicorn behind a reverse proxy, Redis, Celery.

``Procfile`` (beside this package) runs it; the test suite runs the Procfile's own commands::

    web: gunicorn example_app.production:app
    worker: celery --app example_app.production:celery worker

Everything is read from the environment: ``REDIS_URL`` (sessions' state registry, de-duplication,
tool-call replay refusal, and Celery's broker), ``SECRET_KEY`` (the same on every instance),
``OMI_APP_ID``, ``OMI_API_KEY``, ``OMI_SIGNING_SECRET``, ``OMI_EXTERNAL_URL`` and ``EXAMPLE_DB``.
"""

from __future__ import annotations

import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import create_app
from .celery_setup import celery_init_app, settings


def create_production_app() -> Flask:
    config = settings(os.environ["REDIS_URL"])
    if os.environ.get("EXAMPLE_DB"):
        config["EXAMPLE_DB"] = os.environ["EXAMPLE_DB"]
    flask_app = create_app(config, before=celery_init_app)
    # One proxy in front sets X-Forwarded-For, -Proto and -Host: URLs and cookies use them.
    flask_app.wsgi_app = ProxyFix(flask_app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    return flask_app


app = create_production_app()
celery = app.extensions["celery"]
