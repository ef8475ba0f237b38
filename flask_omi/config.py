"""Every ``OMI_*`` key: its default, and the start-up check that names a bad one.

This is the one place a default is written. The client, the signature checks and the receivers
import theirs from here, so a default can never differ between the Flask setting and the plain
Python API. Defaults are applied with ``setdefault`` when a flask-omi blueprint is registered, so
values an app sets before or after registration both win over them. Imports no Flask.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask_omi.errors import OmiConfigError, StoreNotShared
from flask_omi.keystore import RecordStore
from flask_omi.stores import resolve_store

if TYPE_CHECKING:
    from flask.sansio.app import App

MIB = 1024 * 1024

DEFAULTS: dict[str, Any] = {
    # what every process must share
    "OMI_STORE": None,
    # sign-in
    "OMI_APP_ID": None,
    "OMI_STATE_MAX_AGE": 600,
    "OMI_MAX_PENDING_SIGNINS": 5,
    "OMI_LOGIN_REDIRECT": "/",
    "OMI_LOGOUT_REDIRECT": "/",
    "OMI_LOGOUT_ALLOW_GET": False,
    "OMI_LOGOUT_CLEAR_SESSION": True,
    "OMI_STATE_REGISTRY": None,
    "OMI_VERIFY_UID": False,
    "OMI_VERIFY_TIMEOUT": 5.0,
    "OMI_CONFIRM_SIGNIN": False,
    "OMI_CONFIRM_CHANNELS": ("notification",),
    "OMI_CONFIRM_SENDS_PER_UID": 5,
    "OMI_CONFIRM_CODES_PER_ADDRESS": 20,
    "OMI_EXTERNAL_URL": None,
    "OMI_TEMPLATE_LAYOUT": "omi/_layout.html",
    "OMI_SINGLE_PROCESS": False,
    # the API client
    "OMI_API_BASE": "https://api.omi.me",
    "OMI_API_KEY": None,
    "OMI_API_TIMEOUT": 10.0,
    "OMI_API_WRITE_TIMEOUT": 60.0,
    "OMI_API_MAX_ATTEMPTS": 3,
    "OMI_API_DEADLINE": 30.0,
    "OMI_API_MAX_RESPONSE_BYTES": 32 * MIB,
    # what OMI sends: webhooks and chat tools
    "OMI_SIGNING_SECRET": None,
    "OMI_WEBHOOK_MAX_BYTES": 5 * MIB,
    "OMI_SIGNATURE_TOLERANCE": 300,
    "OMI_WEBHOOK_STORE": True,
    "OMI_WEBHOOK_TASK_RETRIES": 5,
    "OMI_WEBHOOK_TASK_TIME_LIMIT": 300,
    # OMI's retry horizon: its durable finalization job makes at most 5 attempts
    # (LISTEN_FINALIZATION_TASKS_MAX_ATTEMPTS), each leased for up to 1,500 s (DEFAULT_LEASE_SECONDS),
    # its queue waits at most 60 s between attempts and a missed hand-off is replayed after 300 s:
    # 5 x (1,500 + 60) + 300 = 8,100 s, rounded up to 3 hours (backend/database/
    # conversation_finalization_jobs.py 03e60a48, backend/utils/queue_redis.py and
    # backend/utils/pusher_finalization.py 0d7d9f2d).
    "OMI_WEBHOOK_DEDUP_TTL": 3 * 3600,
    # chat tools
    "OMI_TOOLS_MAX_BYTES": 1 * MIB,
    "OMI_TOOLS_REPLAY_STORE": True,
}

#: One sentence per key, for the generated configuration reference (docs/conf.py) and tests.
DESCRIPTIONS: dict[str, str] = {
    "OMI_STORE": "The one store every process shares (a Redis URL or client), for every guard below.",
    "OMI_APP_ID": "The app id from OMI's developer settings; sign-in needs it.",
    "OMI_STATE_MAX_AGE": "Seconds a started sign-in (its state) stays valid.",
    "OMI_MAX_PENDING_SIGNINS": "Sign-ins one browser may have in flight at once; the oldest goes beyond it.",
    "OMI_LOGIN_REDIRECT": "Where a sign-in lands when there is no valid next.",
    "OMI_LOGOUT_REDIRECT": "Where sign-out lands.",
    "OMI_LOGOUT_ALLOW_GET": "Also accept GET /omi/logout (POST only otherwise).",
    "OMI_LOGOUT_CLEAR_SESSION": "Sign-out clears the whole session and renews a server-side session id.",
    "OMI_STATE_REGISTRY": "Where used states are claimed once: True, a Redis client or a KeyStore.",
    "OMI_VERIFY_UID": "Ask OMI at each sign-in whether the uid enabled the app; fails closed.",
    "OMI_VERIFY_TIMEOUT": "Seconds that check may take, retries included.",
    "OMI_CONFIRM_SIGNIN": "True or 'step-up': confirm sign-ins with a code sent to the user's OMI app.",
    "OMI_CONFIRM_CHANNELS": "How codes reach the owner: ('notification',), or ('notification', 'chat').",
    "OMI_CONFIRM_SENDS_PER_UID": "Codes sent to one uid through OMI per clock hour (OMI allows 10).",
    "OMI_CONFIRM_CODES_PER_ADDRESS": "Codes started from one client address per clock hour.",
    "OMI_EXTERNAL_URL": "The app's public URL: the site named in codes, manifest endpoints, links.",
    "OMI_TEMPLATE_LAYOUT": "The template flask-omi's pages extend (blocks: title, content).",
    "OMI_SINGLE_PROCESS": "Declares that the app runs in one process, so in-process stores pass the check.",
    "OMI_API_BASE": "Where OMI's API lives; the fake OMI's URL in tests.",
    "OMI_API_KEY": "The app's secret key from OMI's developer settings (sk_...).",
    "OMI_API_TIMEOUT": "Seconds one read from OMI may take.",
    "OMI_API_WRITE_TIMEOUT": "Seconds one write to OMI may take (OMI processes before it answers).",
    "OMI_API_MAX_ATTEMPTS": "Attempts per API call, retries included.",
    "OMI_API_DEADLINE": "Seconds all attempts of one call may take together.",
    "OMI_API_MAX_RESPONSE_BYTES": "Largest answer from OMI that is read.",
    "OMI_SIGNING_SECRET": "The app's signing secret from OMI (a list while rotating).",
    "OMI_WEBHOOK_MAX_BYTES": "Largest webhook body accepted.",
    "OMI_SIGNATURE_TOLERANCE": "Seconds a webhook's or a tool call's signed timestamp may be off.",
    "OMI_WEBHOOK_STORE": "Where handled deliveries, used signatures and background run claims are kept.",
    "OMI_WEBHOOK_TASK_RETRIES": "Retries of a failing background handler, with backoff.",
    "OMI_WEBHOOK_TASK_TIME_LIMIT": "Seconds a background handler may run before its worker stops it.",
    "OMI_WEBHOOK_DEDUP_TTL": "Seconds a handled delivery is remembered (OMI retries for up to 2 h 15 min).",
    "OMI_TOOLS_MAX_BYTES": "Largest tool call accepted.",
    "OMI_TOOLS_REPLAY_STORE": "Where tool calls are remembered to refuse replays (a store).",
}


def reference_table() -> str:
    """Every setting as a Markdown table: the documentation's configuration reference."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, default in DEFAULTS.items():
        rows.append(f"| `{key}` | `{default!r}` | {DESCRIPTIONS[key]} |")
    return "\n".join(rows) + "\n"


#: Where each setting that takes a store keeps its keys in Redis, and what an in-process store does
#: when full, one policy per purpose: replay guards and single-use claims refuse (never forget a
#: live key); the de-duplication ledger forgets its oldest entries (logged once, counted), since an
#: outage is worse than a rare duplicate. Its bound is OMI's retry horizon at a stated rate:
#: 100,000 handled deliveries kept 3 hours is 9.3 conversation deliveries a second, sustained, per
#: process; above that the oldest handled deliveries are the ones forgotten, which OMI is least
#: likely still to retry.
STORE_SETTINGS: dict[str, dict[str, Any]] = {
    "OMI_STATE_REGISTRY": {"prefix": "omi:state:", "when_full": "refuse", "max_entries": 100_000},
    "OMI_WEBHOOK_STORE": {"prefix": "omi:delivery:", "when_full": "forget_oldest", "max_entries": 100_000},
    "OMI_TOOLS_REPLAY_STORE": {"prefix": "omi:tool-call:", "when_full": "refuse", "max_entries": 100_000},
}


def store_for(config: Mapping[str, Any], key: str) -> Any:
    """The store ``config[key]`` names, per the :mod:`flask_omi.stores` convention; a setting left
    at its default follows ``OMI_STORE`` when that is set (one setting for every guard)."""
    value = config[key]
    shared = config.get("OMI_STORE")
    if shared is not None and value is DEFAULTS[key]:
        value = shared
    return resolve_store(key, value, **STORE_SETTINGS[key])


def apply_defaults(app: App) -> None:
    """Every ``OMI_*`` default, with ``setdefault``: values the app set before or after registering
    win."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)


# -- the check -------------------------------------------------------------------------------------
def _positive_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value > 0


def _count(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _text_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value != "")


def _secrets(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(item, str) and item != "" for item in value)
    return _text_or_none(value)


def _channels(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and len(set(value)) == len(value)
        and all(channel in ("notification", "chat") for channel in value)
    )


def _redirect_target(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    return (value.startswith("/") and not value.startswith("//")) or _http_url(value)


def _http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.query and not parts.fragment


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "OMI_STORE": (
        lambda v: v is None or not isinstance(v, (bool, int, float)),
        "the app's Redis URL (redis://...), its Redis client, a flask_omi.stores.KeyStore, or None",
    ),
    "OMI_APP_ID": (_text_or_none, "the app id from OMI's developer settings (text)"),
    "OMI_STATE_MAX_AGE": (_positive_number, "a positive number of seconds"),
    "OMI_MAX_PENDING_SIGNINS": (_positive_int, "a positive whole number"),
    "OMI_LOGIN_REDIRECT": (_redirect_target, "a path on this site such as '/', or an http(s) URL"),
    "OMI_LOGOUT_REDIRECT": (_redirect_target, "a path on this site such as '/', or an http(s) URL"),
    "OMI_LOGOUT_ALLOW_GET": (_bool, "True or False"),
    "OMI_LOGOUT_CLEAR_SESSION": (_bool, "True or False"),
    "OMI_VERIFY_UID": (_bool, "True or False"),
    "OMI_SINGLE_PROCESS": (_bool, "True or False"),
    "OMI_CONFIRM_SIGNIN": (lambda v: v is True or v is False or v == "step-up", "True, False or 'step-up'"),
    "OMI_VERIFY_TIMEOUT": (_positive_number, "a positive number of seconds"),
    "OMI_CONFIRM_CHANNELS": (_channels, "('notification',), ('chat',) or ('notification', 'chat')"),
    "OMI_CONFIRM_SENDS_PER_UID": (
        lambda v: _positive_int(v) and v <= 10,
        "a whole number from 1 to 10 (OMI sends at most 10 notifications per app and user per hour)",
    ),
    "OMI_CONFIRM_CODES_PER_ADDRESS": (_positive_int, "a positive whole number"),
    "OMI_TEMPLATE_LAYOUT": (lambda v: isinstance(v, str) and v != "", "a template name"),
    "OMI_API_BASE": (_http_url, "an http(s) URL with no query or fragment, such as https://api.omi.me"),
    "OMI_EXTERNAL_URL": (
        lambda v: v is None or _http_url(v),
        "the app's public URL with no query or fragment, such as https://app.example.com, or None",
    ),
    "OMI_API_KEY": (_text_or_none, "the app's secret key from OMI (sk_...)"),
    "OMI_API_TIMEOUT": (_positive_number, "a positive number of seconds"),
    "OMI_API_WRITE_TIMEOUT": (_positive_number, "a positive number of seconds"),
    "OMI_API_MAX_ATTEMPTS": (_positive_int, "a positive whole number"),
    "OMI_API_DEADLINE": (_positive_number, "a positive number of seconds"),
    "OMI_API_MAX_RESPONSE_BYTES": (_positive_int, "a positive whole number of bytes"),
    "OMI_SIGNING_SECRET": (
        _secrets,
        "the app's signing secret from OMI (whsec_...), a list of them, or None",
    ),
    "OMI_WEBHOOK_MAX_BYTES": (_positive_int, "a positive whole number of bytes"),
    "OMI_SIGNATURE_TOLERANCE": (_positive_number, "a positive number of seconds"),
    "OMI_WEBHOOK_DEDUP_TTL": (_positive_int, "a positive whole number of seconds"),
    "OMI_WEBHOOK_TASK_RETRIES": (_count, "a whole number, 0 or more"),
    "OMI_WEBHOOK_TASK_TIME_LIMIT": (_positive_int, "a positive whole number of seconds"),
    "OMI_TOOLS_MAX_BYTES": (_positive_int, "a positive whole number of bytes"),
}


#: Names of the unreleased draft, for the error's hint only: none of them is read.
_DRAFT_NAMES = {
    "OMI_WEBHOOK_DEDUP": "OMI_WEBHOOK_STORE",
    "OMI_TOOLS_DEDUP": "OMI_TOOLS_REPLAY_STORE",
    "OMI_WEBHOOK_TOLERANCE": "OMI_SIGNATURE_TOLERANCE",
}


def _nearest(key: str) -> str | None:
    """The known setting an unknown one most likely meant: among those ending in the same word
    (``..._SECRET`` means a secret), else among all."""
    if key in _DRAFT_NAMES:
        return _DRAFT_NAMES[key]
    last = key.rsplit("_", 1)[-1]
    same_kind = [name for name in DEFAULTS if name.rsplit("_", 1)[-1] == last]
    close = difflib.get_close_matches(key, same_kind, n=1, cutoff=0.3) or difflib.get_close_matches(
        key, DEFAULTS, n=1
    )
    return close[0] if close else None


def _refused_unshared(app: App, error: StoreNotShared) -> Any:
    """A request refused because a per-process store serves several processes: a 500 (OMI retries
    its deliveries) whose JSON says which setting to set."""
    body = json.dumps({"error": error.error_code, "error_description": str(error)})
    make: Any = app.response_class
    return make(body, status=500, mimetype="application/json")


def check_config(app: App) -> None:
    """Every ``OMI_*`` value, checked when a flask-omi blueprint is registered: a bad one fails at
    start-up with its key's name, not as a 500 on the first request that reads it."""
    config = app.config
    for key in config:
        if key.startswith("OMI_") and key not in DEFAULTS:
            close = _nearest(key)
            hint = f" Did you mean {close}?" if close else ""
            raise OmiConfigError(f"{key} is not a flask-omi setting.{hint}")
    for key, (valid, what) in _RULES.items():
        if not valid(config[key]):
            raise OmiConfigError(f"{key} must be {what}, not {config[key]!r}.")
    if config["OMI_STORE"] is not None:
        resolve_store("OMI_STORE", config["OMI_STORE"], prefix="omi:", when_full="refuse", max_entries=1)
    for key in STORE_SETTINGS:
        store_for(config, key)  # raises OmiConfigError naming the key when unusable
    app.register_error_handler(StoreNotShared, lambda error: _refused_unshared(app, error))


def signing_secrets(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The secrets signatures are checked with: ``OMI_SIGNING_SECRET`` (a list while it rotates).
    Empty: signatures are not checked."""
    value = config["OMI_SIGNING_SECRET"]
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def check_sign_in_config(app: App) -> None:
    """What sign-in needs besides valid values."""
    if not app.config.get("OMI_APP_ID"):
        raise OmiConfigError(
            "flask-omi needs OMI_APP_ID: set app.config['OMI_APP_ID'] to the app id shown in "
            "OMI's developer settings before registering omi_bp."
        )
    if not app.secret_key:
        raise OmiConfigError(
            "flask-omi needs SECRET_KEY: sign-in state is kept in the session, which Flask can only "
            "sign with a secret key. Set app.config['SECRET_KEY'] before registering omi_bp."
        )
    if app.config["OMI_CONFIRM_SIGNIN"] and not app.config.get("OMI_API_KEY"):
        raise OmiConfigError(
            "OMI_CONFIRM_SIGNIN sends a code to the uid's phone through OMI's notification API, which "
            "needs OMI_API_KEY (the app's secret key from OMI's developer settings)."
        )
    if app.config["OMI_CONFIRM_SIGNIN"]:
        check_confirm_config(app)
    if app.config["OMI_VERIFY_UID"] and not app.config.get("OMI_API_KEY"):
        raise OmiConfigError(
            "OMI_VERIFY_UID asks OMI whether each uid enabled the app, which needs OMI_API_KEY "
            "(the app's secret key from OMI's developer settings)."
        )


def check_confirm_config(app: App) -> None:
    """What confirmed sign-in needs: a site name from configuration, and for the chat channel a
    signed tool call (an unsigned one would let anyone confirm anyone)."""
    config = app.config
    if not config.get("OMI_EXTERNAL_URL"):
        raise OmiConfigError(
            "OMI_CONFIRM_SIGNIN needs OMI_EXTERNAL_URL (the app's public URL, such as "
            "https://app.example.com): the code's message names the site from it, never from the "
            "request's Host header, which the requester chooses."
        )
    if "chat" in config["OMI_CONFIRM_CHANNELS"] and not signing_secrets(config):
        raise OmiConfigError(
            "OMI_CONFIRM_CHANNELS includes 'chat', whose tool call OMI signs with the app's signing "
            "secret: set OMI_SIGNING_SECRET (whsec_...), or anyone could confirm anyone's sign-in."
        )
    store = store_for(config, "OMI_STATE_REGISTRY")
    if store is not None and not isinstance(store, RecordStore):
        raise OmiConfigError(
            f"OMI_CONFIRM_SIGNIN keeps its codes and budgets in OMI_STATE_REGISTRY, and "
            f"{type(store).__name__} cannot keep records: use the app's Redis client, True, or a "
            "flask_omi.keystore.RecordStore."
        )


def set_up(app: App) -> None:
    """What every flask-omi blueprint does to the app's config when it is registered."""
    apply_defaults(app)
    check_config(app)


def external_url(config: Mapping[str, Any], path: str) -> str | None:
    """``path`` under ``OMI_EXTERNAL_URL``, the app's public address, or None when it is not set
    (callers then build from the request, as ``url_for(..., _external=True)`` does)."""
    base = config.get("OMI_EXTERNAL_URL")
    return f"{str(base).rstrip('/')}{path}" if base else None
