"""``OmiBlueprint``: the routes plus everything an app needs, set up when it is registered."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Blueprint, current_app
from flask.sansio.blueprints import BlueprintSetupState

from flask_omi._registration import HandlersBeforeRegistration, claim_extension_slot, record_of
from flask_omi.cli import add_cli
from flask_omi.config import check_sign_in_config, set_up
from flask_omi.errors import OmiCallbackError
from flask_omi.extension import (
    NeedsConfirmationHandler,
    OmiExtension,
    OmiHandlers,
    SetupChecker,
    UidVerifier,
    UnauthorizedHandler,
    UserLoader,
)
from flask_omi.signin import confirm_views, views
from flask_omi.signin.confirm_tool import attach_confirm_tool
from flask_omi.signin.responses import no_store, render_callback_error
from flask_omi.signin.user import current_omi_user

L = TypeVar("L", bound=UserLoader)
V = TypeVar("V", bound=UidVerifier)
S = TypeVar("S", bound=SetupChecker)
U = TypeVar("U", bound=UnauthorizedHandler)
N = TypeVar("N", bound=NeedsConfirmationHandler)


class OmiBlueprint(HandlersBeforeRegistration, Blueprint):
    """Sign in with OMI as a blueprint: registering it is the whole set-up.

    Registration applies the ``OMI_*`` config defaults, checks every ``OMI_*`` value and that
    ``OMI_APP_ID`` and ``SECRET_KEY`` are set,
    records the app's state in ``app.extensions["omi"].signin``, renders callback errors app-wide and exposes
    ``current_omi_user`` to templates. The decorators below register the app's callbacks.
    """

    def __init__(self, name: str = "omi", url_prefix: str | None = "/omi") -> None:
        super().__init__(name, "flask_omi", url_prefix=url_prefix, template_folder="templates")
        self.handlers = OmiHandlers()
        self.add_url_rule("/login", view_func=views.login, methods=["GET"])
        self.add_url_rule("/callback", view_func=views.callback, methods=["GET"])
        self.add_url_rule("/logout", view_func=views.logout, methods=["GET", "POST"])
        self.add_url_rule("/setup-completed", view_func=views.setup_completed, methods=["GET"])
        self.add_url_rule("/confirm", "confirm", confirm_views.confirm_page, methods=["GET"])
        self.add_url_rule("/confirm", "confirm_submit", confirm_views.confirm_submit, methods=["POST"])
        self.after_request(no_store)
        self.app_errorhandler(OmiCallbackError)(render_callback_error)
        self.app_context_processor(_template_context)
        self.record_once(self._set_up_app)

    def _set_up_app(self, state: BlueprintSetupState) -> None:
        self._close_handlers()
        app = state.app
        claim_extension_slot(app, "signin", "OmiBlueprint")
        set_up(app)
        check_sign_in_config(app)
        prefix = f"{state.name_prefix}.{state.name}".lstrip(".")
        record_of(app).signin = OmiExtension(handlers=self.handlers, endpoint_prefix=prefix)
        add_cli(app)
        if app.config["OMI_CONFIRM_SIGNIN"] and "chat" in app.config["OMI_CONFIRM_CHANNELS"]:
            attach_confirm_tool(app)

    def user_loader(self, loader: L) -> L:
        """Register ``loader(uid) -> user | None``; None means the uid is treated as signed out."""
        self._check_handlers_open("user_loader")
        self.handlers.user_loader = loader
        return loader

    def uid_verifier(self, verifier: V) -> V:
        """Register ``verifier(uid) -> bool``, asked before sign-in; false refuses it (uid_rejected)."""
        self._check_handlers_open("uid_verifier")
        self.handlers.uid_verifiers.append(verifier)
        return verifier

    def setup_checker(self, checker: S) -> S:
        """Register ``checker(uid) -> bool`` that answers OMI's setup-completed question."""
        self._check_handlers_open("setup_checker")
        self.handlers.setup_checker = checker
        return checker

    def needs_confirmation_handler(self, handler: N) -> N:
        """Register ``handler() -> response``, used by ``omi_login_required(confirmed=True)`` (and
        by every protected view while a sign-in waits for its code) instead of the confirm page:
        Flask-Login's ``needs_refresh_handler``, for OMI's confirmation."""
        self._check_handlers_open("needs_confirmation_handler")
        self.handlers.needs_confirmation = handler
        return handler

    def unauthorized_handler(self, handler: U) -> U:
        """Register ``handler() -> response`` used by ``omi_login_required`` for signed-out users."""
        self._check_handlers_open("unauthorized_handler")
        self.handlers.unauthorized = handler
        return handler


def _template_context() -> dict[str, Any]:
    return {
        "current_omi_user": current_omi_user,
        "omi_layout": current_app.config.get("OMI_TEMPLATE_LAYOUT", "omi/_layout.html"),
    }


#: The default instance most apps register.
omi_bp = OmiBlueprint()

__all__ = ["OmiBlueprint", "omi_bp"]
