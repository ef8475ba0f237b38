"""The app the multi-instance and load tests run under gunicorn (configured by environment).

``TEST_SECRET_KEY``; ``TEST_OMI_BASE`` (the fake OMI); ``TEST_REDIS_URL`` with ``TEST_SESSIONS``
(``redis``: Flask-Session, else cookies) and ``TEST_STATE_REGISTRY`` (``redis`` or ``memory``);
``TEST_CONFIRM`` with ``TEST_OMI_API_KEY`` (confirmed sign-in); ``TEST_VERIFY_DELAY``,
``TEST_WEBHOOKS`` with ``TEST_WEBHOOK_STORE`` (``redis``: ``OMI_WEBHOOK_STORE``; ``omi_store``:
``OMI_STORE``; ``default``: neither), ``TEST_TOOLS``.
"""

from __future__ import annotations

import os
import time

from flask import Flask

from flask_omi import (
    ConversationCreated,
    OmiBlueprint,
    OmiWebhooks,
    current_omi_user,
    omi_login_required,
)


def create() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ["TEST_SECRET_KEY"],
        OMI_APP_ID="load-app",
        OMI_API_BASE=os.environ.get("TEST_OMI_BASE", "http://127.0.0.1:9"),
    )
    redis_url = os.environ.get("TEST_REDIS_URL")
    if redis_url and os.environ.get("TEST_SESSIONS", "redis") == "redis":
        import redis
        from flask_session import Session

        app.config.update(
            SESSION_TYPE="redis", SESSION_REDIS=redis.from_url(redis_url), SESSION_PERMANENT=False
        )
        Session(app)
    registry = os.environ.get("TEST_STATE_REGISTRY")
    if registry == "redis" and redis_url:
        import redis

        app.config["OMI_STATE_REGISTRY"] = redis.from_url(redis_url)
    elif registry == "memory":
        app.config["OMI_STATE_REGISTRY"] = True  # this process only
    if os.environ.get("TEST_CONFIRM"):  # confirmed sign-in, codes sent through the fake OMI
        app.config.update(
            OMI_CONFIRM_SIGNIN=True,
            OMI_API_KEY=os.environ["TEST_OMI_API_KEY"],
            OMI_EXTERNAL_URL="https://notes.example.com",
        )
    bp = OmiBlueprint()
    delay = float(os.environ.get("TEST_VERIFY_DELAY", "0"))
    if delay:

        @bp.uid_verifier
        def slow_verifier(uid: str) -> bool:
            time.sleep(delay)  # a slow check (OMI, a database) widens the race window
            return True

    app.register_blueprint(bp)
    if redis_url and os.environ.get("TEST_WEBHOOKS"):
        _add_counting_webhooks(app, redis_url)
    if redis_url and os.environ.get("TEST_TOOLS"):
        _add_counting_tool(app, redis_url, os.environ["TEST_TOOLS"])

    @app.get("/whoami")
    @omi_login_required
    def whoami() -> str:
        return str(current_omi_user.uid)

    @app.get("/health")
    def health() -> str:
        return f"ok {os.getpid()}"

    return app


def _add_counting_webhooks(app: Flask, redis_url: str) -> None:
    """A conversation handler that counts its runs in Redis, so tests can count across processes."""
    import redis

    store = redis.from_url(redis_url)
    shared = os.environ.get("TEST_WEBHOOK_STORE", "redis")
    if shared == "redis":
        app.config["OMI_WEBHOOK_STORE"] = store
    elif shared == "omi_store":  # the one setting for every guard
        app.config["OMI_STORE"] = redis_url
    hooks = OmiWebhooks()

    @hooks.on_conversation_created
    def count(event: ConversationCreated) -> None:
        time.sleep(float(os.environ.get("TEST_HANDLER_DELAY", "0")))
        store.incr(f"handled:{event.idempotency_key}")

    app.register_blueprint(hooks)


def _add_counting_tool(app: Flask, redis_url: str, replay_store: str) -> None:
    """A signed chat tool that counts its runs in Redis; its replay store is per process
    (``memory``) or shared (``redis``)."""
    import redis

    from flask_omi import OmiTools

    store = redis.from_url(redis_url)
    app.config["OMI_SIGNING_SECRET"] = os.environ["TEST_SIGNING_SECRET"]
    app.config["OMI_TOOLS_REPLAY_STORE"] = store if replay_store == "redis" else True
    tools = OmiTools()

    @tools.tool
    def count(uid: str) -> str:
        """Count a run."""
        return str(store.incr("tool-runs"))

    app.register_blueprint(tools)
