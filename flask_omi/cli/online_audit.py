"""``flask omi check --online``: what only the running Redis and broker can tell.

The settings audit reads configuration; this connects to every Redis the app's stores name and to
Celery's broker, and reads what their own configuration says: reachable at all; ``appendonly``
(Redis without persistence loses, on a restart, the deliveries it had queued, which OMI was
already answered 200 for and will not send again); ``maxmemory-policy`` (anything but
``noeviction`` lets Redis drop a claim, or a queued delivery, to make room).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from flask_omi.cli.deployment_audit import Finding
from flask_omi.config import STORE_SETTINGS, store_for
from flask_omi.keystore import RedisStore


def online_findings(app: Flask) -> tuple[list[str], list[Finding]]:
    """What was read (one line per server), and what must change."""
    servers: dict[str, tuple[Any, bool]] = {}  # where -> (client, holds Celery's queue)
    for key in STORE_SETTINGS:
        store = store_for(app.config, key)
        if isinstance(store, RedisStore):
            servers.setdefault(_where(store.client), (store.client, False))
    celery = app.extensions.get("celery")
    broker = str(getattr(getattr(celery, "conf", None), "broker_url", "") or "")
    if broker.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(broker, socket_timeout=2, socket_connect_timeout=2)
        servers[_where(client)] = (client, True)
    read: list[str] = []
    found: list[Finding] = []
    for where, (client, queue) in servers.items():
        line, problems = _inspect(where, client, queue)
        read.append(line)
        found.extend(problems)
    if not servers:
        read.append("online: no Redis is configured (OMI_STORE, or a store setting, or Celery's broker)")
    return read, found


def _where(client: Any) -> str:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _inspect(where: str, client: Any, queue: bool) -> tuple[str, list[Finding]]:
    role = "the stores and Celery's queue" if queue else "the stores"
    try:
        client.ping()
    except Exception as error:
        return f"online: {where} ({role}): unreachable", [
            Finding(True, f"{where} cannot be reached ({type(error).__name__}): {role} live there.")
        ]
    try:
        appendonly = _config(client, "appendonly")
        policy = _config(client, "maxmemory-policy")
    except Exception as error:  # managed Redis often refuses CONFIG
        return f"online: {where} ({role}): reachable; CONFIG refused", [
            Finding(
                False,
                f"{where} would not say its configuration ({type(error).__name__}): make sure it "
                "persists (appendonly yes) and never evicts (maxmemory-policy noeviction).",
            )
        ]
    found: list[Finding] = []
    if appendonly != "yes":
        found.append(
            Finding(
                queue,
                f"{where} runs without appendonly: a restart loses "
                + (
                    "the deliveries queued for the workers, which OMI was answered 200 for and will "
                    "not send again (5 of 5 lost in a test)."
                    if queue
                    else "every claim, so OMI's retries of deliveries already handled run again."
                )
                + " Set appendonly yes.",
            )
        )
    if policy != "noeviction":
        found.append(
            Finding(
                True,
                f"{where} has maxmemory-policy {policy}: when full it drops keys, a claim or a queued "
                "delivery among them, without an error. Set maxmemory-policy noeviction.",
            )
        )
    line = f"online: {where} ({role}): reachable, appendonly {appendonly}, maxmemory-policy {policy}"
    return line, found


def _config(client: Any, name: str) -> str:
    value = client.config_get(name).get(name)
    return value.decode() if isinstance(value, bytes) else str(value)
