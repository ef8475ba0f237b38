"""The part of ``flask omi check`` about running in production: what OMI sends must be signed and
remembered in a store every worker shares, limits must be sane, and nothing weakens sign-out.

Each finding is *fatal* (must be fixed before going live: the command exits 1) or advice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from flask_omi._registration import record_of
from flask_omi.config import DEFAULTS, signing_secrets, store_for
from flask_omi.inbound.background import LEASE_MARGIN, TIME_LIMITED_POOLS
from flask_omi.stores import is_per_process

#: Bounds past which a setting is a mistake rather than a choice.
MAX_TOLERANCE = 900  # OMI signs at sending; 300 s covers clock skew and OMI's retries
MAX_BODY_BYTES = 64 * 1024 * 1024
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
MAX_TASK_TIME_LIMIT = 3600
MAX_TASK_RETRIES = 20
#: Celery's Redis transport hands an unacknowledged task out again after this many seconds.
REDIS_VISIBILITY_TIMEOUT = 3600


@dataclass(frozen=True)
class Finding:
    """One finding of the audit: fatal ones fail ``flask omi check`` (exit 1), the rest are advice."""

    fatal: bool
    message: str


def inbound_findings(app: Flask, local: bool) -> list[Finding]:
    """The production part of the audit: what OMI sends (signatures, shared stores), limits, background
    workers, sign-out and the remember-me cookie."""
    config = app.config
    found = [*_api_base(config), *_limits(config)]
    if config.get("OMI_LOGOUT_ALLOW_GET"):
        found.append(
            Finding(
                False,
                "OMI_LOGOUT_ALLOW_GET is on: any page can sign your users out with an <img> or a link "
                "(logout CSRF). Sign out with a POST form.",
            )
        )
    found.extend(_receiver("webhooks", "webhooks", "OMI_WEBHOOK_STORE", app))
    found.extend(_receiver("tools", "tool calls", "OMI_TOOLS_REPLAY_STORE", app))
    found.extend(_background(app))
    found.extend(_remember_cookie(app, local))
    return found


def _background(app: Flask) -> list[Finding]:
    """Background handlers run in Celery's worker processes, never the web process: their run
    claims must be in a store those processes share, whatever OMI_SINGLE_PROCESS says; and Celery
    must be able to stop a run at its time limit, and not hand it out again before then."""
    state = record_of(app).webhooks
    if state is None or not state.background:
        return []
    found: list[Finding] = []
    if is_per_process(state.ledger):
        found.append(
            Finding(
                True,
                "A webhook handler has background=True but OMI_WEBHOOK_STORE is kept in each process: "
                "the web process and the Celery workers cannot see each other's claims, so OMI's "
                "retries and Celery's redeliveries run the handler again. Set OMI_STORE (or "
                "OMI_WEBHOOK_STORE) to the app's Redis.",
            )
        )
    conf = getattr(app.extensions.get("celery"), "conf", None)
    if conf is None:
        return found
    pool = str(conf.get("worker_pool") or "prefork")
    if pool not in TIME_LIMITED_POOLS:
        found.append(
            Finding(
                True,
                f"Celery's worker_pool is {pool!r}, which cannot stop a task at its time limit: a run "
                "outlives its claim and the broker's redelivery completes it twice. Use the default "
                "prefork pool (background workers refuse to start with another).",
            )
        )
    limit = int(app.config.get("OMI_WEBHOOK_TASK_TIME_LIMIT", DEFAULTS["OMI_WEBHOOK_TASK_TIME_LIMIT"]))
    options = conf.get("broker_transport_options") or {}
    visibility = options.get("visibility_timeout", REDIS_VISIBILITY_TIMEOUT)
    if isinstance(visibility, (int, float)) and visibility < limit + LEASE_MARGIN:
        found.append(
            Finding(
                True,
                f"Celery's visibility_timeout ({visibility} s) is shorter than a run may take "
                f"(OMI_WEBHOOK_TASK_TIME_LIMIT {limit} s + {LEASE_MARGIN} s): the broker hands a "
                "running task to another worker. Set broker_transport_options['visibility_timeout'] "
                "above it.",
            )
        )
    return found


def _api_base(config: Any) -> list[Finding]:
    parts = urlsplit(str(config.get("OMI_API_BASE") or ""))
    if parts.scheme == "http" and (parts.hostname or "") not in LOCAL_HOSTS:
        return [
            Finding(
                True,
                f"OMI_API_BASE is plain http ({parts.hostname}): the app's secret key and your users' "
                "data would cross the network unencrypted. Use https://api.omi.me.",
            )
        ]
    return []


#: Settings past whose bound a value is a mistake rather than a choice: (key, bound, what it costs).
_BOUNDS = (
    ("OMI_SIGNATURE_TOLERANCE", MAX_TOLERANCE, "a captured webhook or tool call stays usable that long"),
    (
        "OMI_WEBHOOK_TASK_TIME_LIMIT",
        MAX_TASK_TIME_LIMIT,
        "a stuck handler holds its claim and a worker that long",
    ),
    (
        "OMI_WEBHOOK_TASK_RETRIES",
        MAX_TASK_RETRIES,
        "with backoff doubling, a failing handler is retried for ages",
    ),
)


def _limits(config: Any) -> list[Finding]:
    found: list[Finding] = []
    for key, bound, cost in _BOUNDS:
        value = config.get(key, DEFAULTS[key])
        if value > bound:
            found.append(
                Finding(True, f"{key} is {value}: {cost}. Keep it at most {bound} (default {DEFAULTS[key]}).")
            )
    for key in ("OMI_WEBHOOK_MAX_BYTES", "OMI_TOOLS_MAX_BYTES", "OMI_API_MAX_RESPONSE_BYTES"):
        if config.get(key, DEFAULTS[key]) > MAX_BODY_BYTES:
            found.append(
                Finding(
                    True,
                    f"{key} is over {MAX_BODY_BYTES // (1024 * 1024)} MiB: each such request holds that "
                    "much memory in a worker. Keep the default.",
                )
            )
    return found


def _receiver(extension: str, what: str, store_key: str, app: Flask) -> list[Finding]:
    if getattr(record_of(app), extension) is None:
        return []
    config = app.config
    found: list[Finding] = []
    if not signing_secrets(config):
        found.append(
            Finding(
                True,
                f"OMI_SIGNING_SECRET is not set: {what} are accepted unsigned, so anyone who finds the "
                "URL can act as any uid. Issue the app's signing secret in OMI's developer settings "
                "(OMI then signs every call) and set it here.",
            )
        )
    store = store_for(config, store_key)
    if store is None:
        found.append(
            Finding(
                store_key == "OMI_TOOLS_REPLAY_STORE",
                f"{store_key} is off: "
                + (
                    "a signed tool call can be replayed while its signature is fresh."
                    if store_key == "OMI_TOOLS_REPLAY_STORE"
                    else "OMI's retries run a handler again, and a captured delivery can be replayed."
                ),
            )
        )
    elif is_per_process(store) and not config.get("OMI_SINGLE_PROCESS"):
        found.append(
            Finding(
                True,
                f"{store_key} is kept in each process: under gunicorn with several workers (or several "
                f"machines) {what} replayed or retried to another process run again. Set it to the "
                "app's Redis client, or set OMI_SINGLE_PROCESS = True if the app really runs one process.",
            )
        )
    return found


def _remember_cookie(app: Flask, local: bool) -> list[Finding]:
    """The Flask-Login bridge's remember-me cookie is a sign-in that lasts a year."""
    bridge = record_of(app).flask_login
    if bridge is None or not getattr(bridge, "remember", False):
        return []
    config = app.config
    missing = [
        name
        for name, ok in (
            ("REMEMBER_COOKIE_SECURE", config.get("REMEMBER_COOKIE_SECURE") or local),
            ("REMEMBER_COOKIE_HTTPONLY", config.get("REMEMBER_COOKIE_HTTPONLY", True)),
            ("REMEMBER_COOKIE_SAMESITE", str(config.get("REMEMBER_COOKIE_SAMESITE") or "").lower() == "lax"),
        )
        if not ok
    ]
    if not missing:
        return []
    return [
        Finding(
            True,
            "The Flask-Login bridge signs users in with a remember-me cookie, but "
            + ", ".join(missing)
            + " is not set as it should be (True, True, 'Lax'): that cookie is a year-long sign-in.",
        )
    ]
