"""The sign-in part of the record flask-omi keeps in ``app.extensions["omi"]``, and the app's API client.

It holds the app's callbacks and the blueprint's registered name, never the app itself, so one
blueprint object can serve several apps (as in an app factory under test). This is the Flask side
of the client: :mod:`flask_omi.api.client` itself imports no Flask.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app, has_request_context, request

from flask_omi._registration import OmiRecord
from flask_omi.api.client import OmiClient
from flask_omi.config import store_for
from flask_omi.errors import OmiConfigError
from flask_omi.keystore import MemoryStore, RecordStore
from flask_omi.stores import KeyStore, PerProcessNotice, is_per_process

if TYPE_CHECKING:
    from collections.abc import Mapping

_logger = logging.getLogger("flask_omi")

UserLoader = Callable[[str], Any]
UidVerifier = Callable[[str], Any]
SetupChecker = Callable[[str], Any]
UnauthorizedHandler = Callable[[], Any]
NeedsConfirmationHandler = Callable[[], Any]


@dataclass
class OmiHandlers:
    """Callbacks an app registers with the blueprint's decorators."""

    user_loader: UserLoader | None = None
    uid_verifiers: list[UidVerifier] = field(default_factory=list)
    setup_checker: SetupChecker | None = None
    unauthorized: UnauthorizedHandler | None = None
    needs_confirmation: NeedsConfirmationHandler | None = None


@dataclass
class OmiExtension:
    """The sign-in part of the app's record: its callbacks, the blueprint's registered name, and what
    sign-in keeps per app (the state store, the confirmation store). Holds no app."""

    handlers: OmiHandlers
    #: The blueprint's full registered name, for ``url_for`` (``omi`` unless renamed or nested).
    endpoint_prefix: str
    #: Seconds since the epoch. Replace it in tests to move time without sleeping.
    clock: Callable[[], float] = time.time
    #: The fake OMI's base URL, when the app is connected to the fake (tests, demo): the confirm
    #: page links to its phone-like inbox and its chat, so that a developer can read and send codes.
    fake_omi_url: str | None = None
    #: ``OMI_STATE_REGISTRY``'s value and the store made of it, made again only when it changes
    #: (the setting may be given after the blueprint is registered).
    _state_store: tuple[object, KeyStore | None] = field(default=(None, None), repr=False)
    #: Said once when the registry is per process and the server runs several processes.
    state_notice: PerProcessNotice = field(
        default_factory=lambda: PerProcessNotice(
            "OMI_STATE_REGISTRY", "a callback replayed to another worker with a copied cookie signs in", False
        ),
        repr=False,
    )

    def state_store(self, config: Mapping[str, Any]) -> KeyStore | None:
        """``OMI_STATE_REGISTRY``'s store (or ``OMI_STORE``'s), made again only when the setting
        changes: it may be given after the blueprint is registered."""
        value = config["OMI_STATE_REGISTRY"]
        known, store = self._state_store
        if value is not known:
            store = store_for(config, "OMI_STATE_REGISTRY")
            self._state_store = (value, store)
            self.state_notice.active = is_per_process(store)
        return store

    #: Confirmation records when OMI_STATE_REGISTRY names no store: this process only, refusing
    #: when full (a security budget never forgets); ``flask omi check`` flags it under several
    #: processes.
    _local_confirm_store: MemoryStore = field(
        default_factory=lambda: MemoryStore(100_000, when_full="refuse"), repr=False
    )
    #: Said once when the confirmation records are per process and the server runs several.
    confirm_notice: PerProcessNotice = field(
        default_factory=lambda: PerProcessNotice(
            "OMI_STATE_REGISTRY",
            "sign-in confirmation codes and their guessing budgets are counted per worker",
            True,
        ),
        repr=False,
    )

    def confirm_store(self, config: Mapping[str, Any]) -> RecordStore:
        """Where confirmation records live: ``OMI_STATE_REGISTRY``'s store (or ``OMI_STORE``),
        else this process's. Under several processes a per-process one is refused, loudly."""
        store = self.state_store(config)
        self.confirm_notice.active = store is None or is_per_process(store)
        if has_request_context():
            self.confirm_notice.check(request.environ.get("wsgi.multiprocess"), _logger)
        return cast(RecordStore, store or self._local_confirm_store)

    #: The app's user loader when the blueprint has none: set by an integration that knows how to
    #: load users (the Flask-Login bridge's ``load_user``), for this app only.
    fallback_user_loader: UserLoader | None = None

    def user_loader(self) -> UserLoader | None:
        """The user loader in force for this app: the blueprint's, else the integration's."""
        return self.handlers.user_loader or self.fallback_user_loader

    def endpoint(self, name: str) -> str:
        """The full endpoint of one of the blueprint's views, whatever name and prefix it was
        registered with."""
        return f"{self.endpoint_prefix}.{name}"


def get_extension(app: Flask | None = None) -> OmiExtension:
    """The sign-in part of the app's record; raises when no ``OmiBlueprint`` is registered."""
    target = app if app is not None else current_app
    record = target.extensions.get("omi")
    ext: OmiExtension | None = getattr(record, "signin", None)
    if ext is None:
        raise OmiConfigError(
            "flask-omi's sign-in is not set up on this app: call app.register_blueprint(omi_bp) first."
        )
    return ext


_client_lock = threading.Lock()


def omi_client() -> OmiClient:
    """The current app's client, built once from ``OMI_APP_ID``, ``OMI_API_KEY``, ``OMI_API_BASE``:
    in any app with a flask-omi part registered (an app that only receives webhooks acts through
    OMI's API too, from a background handler for one)."""
    record: OmiRecord | None = current_app.extensions.get("omi")
    if record is None:
        raise OmiConfigError(
            "flask-omi is not set up on this app: register omi_bp, OmiWebhooks or OmiTools first."
        )
    client: OmiClient | None = record.client
    if client is None:
        with _client_lock:
            client = record.client
            if client is None:
                client = record.client = build_client(current_app.config)
    return client


def build_client(config: Mapping[str, Any]) -> OmiClient:
    """An :class:`OmiClient` made from an app's ``OMI_*`` settings."""
    if not config.get("OMI_API_KEY"):
        raise OmiConfigError("OMI_API_KEY is not set: copy the app's secret key (sk_...) from OMI.")
    return OmiClient(
        config["OMI_APP_ID"],
        config["OMI_API_KEY"],
        base_url=config["OMI_API_BASE"],
        timeout=float(config["OMI_API_TIMEOUT"]),
        write_timeout=float(config["OMI_API_WRITE_TIMEOUT"]),
        max_attempts=int(config["OMI_API_MAX_ATTEMPTS"]),
        deadline=float(config["OMI_API_DEADLINE"]),
        max_response_bytes=int(config["OMI_API_MAX_RESPONSE_BYTES"]),
    )
