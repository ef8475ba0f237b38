"""Configuration keys, their defaults, and the start-up check.

Every key starts with ``OMI_``. Defaults are applied with ``setdefault`` when the blueprint is
registered, so values an app sets before or after registration both win over them.
"""

from __future__ import annotations

from typing import Any

from flask.sansio.app import App

from .errors import OmiConfigError
from .registry import resolve_registry

DEFAULTS: dict[str, Any] = {
    "OMI_APP_ID": None,
    "OMI_API_BASE": "https://api.omi.me",
    "OMI_STATE_MAX_AGE": 600,
    "OMI_MAX_PENDING_SIGNINS": 5,
    "OMI_LOGIN_REDIRECT": "/",
    "OMI_LOGOUT_REDIRECT": "/",
    "OMI_LOGOUT_ALLOW_GET": False,
    "OMI_LOGOUT_CLEAR_SESSION": True,
    "OMI_STATE_REGISTRY": None,
    "OMI_API_KEY": None,
    "OMI_API_TIMEOUT": 10.0,
    "OMI_API_WRITE_TIMEOUT": 60.0,
    "OMI_API_MAX_ATTEMPTS": 3,
    "OMI_API_DEADLINE": 30.0,
    "OMI_API_MAX_RESPONSE_BYTES": 32 * 1024 * 1024,
    "OMI_VERIFY_UID": False,
    "OMI_VERIFY_TIMEOUT": 5.0,
    "OMI_WEBHOOK_SECRET": None,
    "OMI_WEBHOOK_MAX_BYTES": 5 * 1024 * 1024,
    "OMI_WEBHOOK_TOLERANCE": 300,
    "OMI_WEBHOOK_DEDUP": True,
    "OMI_WEBHOOK_DEDUP_TTL": 86400,
    "OMI_TOOLS_SECRET": None,
    "OMI_TOOLS_MAX_BYTES": 1024 * 1024,
    "OMI_TOOLS_DEDUP": True,
}


def apply_defaults(app: App) -> None:
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)


def check_config(app: App) -> None:
    """Fail at start-up, not at the first sign-in, when the app cannot possibly work."""
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
    if app.config["OMI_VERIFY_UID"] and not app.config.get("OMI_API_KEY"):
        raise OmiConfigError(
            "OMI_VERIFY_UID asks OMI whether each uid enabled the app, which needs OMI_API_KEY "
            "(the app's secret key from OMI's developer settings)."
        )
    resolve_registry(app.config["OMI_STATE_REGISTRY"])  # raises OmiConfigError when unusable
    numbers = (
        "OMI_STATE_MAX_AGE",
        "OMI_MAX_PENDING_SIGNINS",
        "OMI_API_TIMEOUT",
        "OMI_API_WRITE_TIMEOUT",
        "OMI_API_MAX_ATTEMPTS",
    )
    for key in (*numbers, "OMI_API_DEADLINE", "OMI_VERIFY_TIMEOUT", "OMI_API_MAX_RESPONSE_BYTES"):
        value = app.config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise OmiConfigError(f"{key} must be a positive number, not {value!r}.")
