"""Configuration keys, their defaults, and the start-up check.

Every key starts with ``OMI_``. Defaults are applied with ``setdefault`` when the blueprint is
registered, so values an app sets before or after registration both win over them.
"""

from __future__ import annotations

from typing import Any

from flask.sansio.app import App

from .errors import OmiConfigError

DEFAULTS: dict[str, Any] = {
    "OMI_APP_ID": None,
    "OMI_API_BASE": "https://api.omi.me",
    "OMI_STATE_MAX_AGE": 600,
    "OMI_MAX_PENDING_SIGNINS": 5,
    "OMI_LOGIN_REDIRECT": "/",
    "OMI_LOGOUT_REDIRECT": "/",
    "OMI_LOGOUT_ALLOW_GET": False,
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
    for key in ("OMI_STATE_MAX_AGE", "OMI_MAX_PENDING_SIGNINS"):
        value = app.config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise OmiConfigError(f"{key} must be a positive number, not {value!r}.")
