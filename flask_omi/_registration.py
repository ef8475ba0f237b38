"""One rule for every flask-omi blueprint: handlers are registered before the blueprint is.

A blueprint object keeps its handlers for every app it is registered on. A handler registered
after the first registration (typically inside an app factory, with a module-level blueprint)
would silently replace the handler of every app made earlier: a webhook posted to one app would
run another app's code. Flask refuses ``route`` on a registered blueprint for the same reason;
flask-omi refuses its handler decorators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask_omi.errors import OmiConfigError

if TYPE_CHECKING:
    from flask.sansio.app import App


@dataclass
class OmiRecord:
    """Everything flask-omi keeps for one app, in ``app.extensions["omi"]``: one record, one part
    per job, each None until the blueprint that does it is registered. No part holds the app."""

    #: Sign-in (``OmiBlueprint``): :class:`flask_omi.extension.OmiExtension`.
    signin: Any = None
    #: Webhooks (``OmiWebhooks``): :class:`flask_omi.inbound.webhooks.WebhookState`.
    webhooks: Any = None
    #: Chat tools (``OmiTools``): :class:`flask_omi.inbound.tools.ToolsState`.
    tools: Any = None
    #: The app's API client, built on first use by ``omi_client()``.
    client: Any = None
    #: The Flask-Login bridge, when ``FlaskLoginBridge.init_app`` was called.
    flask_login: Any = None


def record_of(app: App) -> OmiRecord:
    """The app's record, made on first use."""
    record: OmiRecord = app.extensions.setdefault("omi", OmiRecord())
    return record


class HandlersBeforeRegistration:
    """Mixed into flask-omi's blueprints; they call :meth:`_check_handlers_open` in each decorator."""

    _omi_registered: bool = False

    def _close_handlers(self) -> None:
        self._omi_registered = True

    def _check_handlers_open(self, decorator: str) -> None:
        if self._omi_registered:
            kind = type(self).__name__
            raise OmiConfigError(
                f"{kind}.{decorator} was called after this {kind} was registered on an app, so the handler "
                f"would also replace the one of every app already using it. Create one {kind}() per app "
                "(in your app factory) and register its handlers before app.register_blueprint()."
            )


def claim_extension_slot(app: App, part: str, kind: str) -> None:
    """One blueprint of each kind per app: a second would silently replace the first's state (its
    handlers, its verifiers, its manifest) for every request, so it is refused."""
    if getattr(app.extensions.get("omi"), part, None) is not None:
        raise OmiConfigError(
            f"This app already has an {kind}: register one {kind} per app (give it a url_prefix of "
            f"your choice); a second one would silently take over the first one's settings."
        )
