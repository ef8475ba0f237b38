"""The app the multi-instance and load tests run under gunicorn (configured by environment)."""

from __future__ import annotations

import os

from flask import Flask

from flask_omi import OmiBlueprint, current_omi_user, omi_login_required


def create() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ["TEST_SECRET_KEY"],
        OMI_APP_ID="load-app",
        OMI_API_BASE=os.environ.get("TEST_OMI_BASE", "http://127.0.0.1:9"),
    )
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url:
        import redis
        from flask_session import Session

        app.config.update(
            SESSION_TYPE="redis", SESSION_REDIS=redis.from_url(redis_url), SESSION_PERMANENT=False
        )
        Session(app)
    app.register_blueprint(OmiBlueprint())

    @app.get("/whoami")
    @omi_login_required
    def whoami() -> str:
        return str(current_omi_user.uid)

    @app.get("/health")
    def health() -> str:
        return f"ok {os.getpid()}"

    return app
