"""The per-app record that flask-omi keeps in ``app.extensions["omi"]``.

It holds the app's callbacks and the blueprint's registered name, never the app itself, so one
blueprint object can serve several apps (as in an app factory under test).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from .errors import OmiConfigError

if TYPE_CHECKING:
    from .client import OmiClient

UserLoader = Callable[[str], Any]
UidVerifier = Callable[[str], Any]
SetupChecker = Callable[[str], Any]
UnauthorizedHandler = Callable[[], Any]


@dataclass
class OmiHandlers:
    """Callbacks an app registers with the blueprint's decorators."""

    user_loader: UserLoader | None = None
    uid_verifiers: list[UidVerifier] = field(default_factory=list)
    setup_checker: SetupChecker | None = None
    unauthorized: UnauthorizedHandler | None = None


@dataclass
class OmiExtension:
    handlers: OmiHandlers
    #: The blueprint's full registered name, for ``url_for`` (``omi`` unless renamed or nested).
    endpoint_prefix: str
    #: Seconds since the epoch. Replace it in tests to move time without sleeping.
    clock: Callable[[], float] = time.time
    #: The app's API client, built on first use by ``omi_client()``.
    client: OmiClient | None = None

    def endpoint(self, name: str) -> str:
        return f"{self.endpoint_prefix}.{name}"


def get_extension(app: Flask | None = None) -> OmiExtension:
    target = app if app is not None else current_app
    try:
        ext: OmiExtension = target.extensions["omi"]
    except KeyError:
        raise OmiConfigError(
            "flask-omi is not set up on this app: call app.register_blueprint(omi_bp) first."
        ) from None
    return ext
