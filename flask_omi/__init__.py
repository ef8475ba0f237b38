"""Sign in with OMI for Flask apps.

Register :data:`omi_bp`, protect views with :func:`omi_login_required`, read :func:`omi_uid`.

Every public name is importable from here, and loaded on first use (PEP 562): importing a
framework-neutral part (``flask_omi.api.client``, ``flask_omi.inbound.signing``) loads no Flask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask_omi.api.client import OmiClient
    from flask_omi.errors import (
        CodeExpired,
        CodeTriesExhausted,
        ConfirmationFailed,
        ConfirmationMissing,
        ConfirmationRateLimited,
        ConfirmationRefused,
        ConfirmationUnavailable,
        InboundPayloadError,
        InboundSignatureError,
        OmiApiError,
        OmiAppNotEnabled,
        OmiAuthError,
        OmiCallbackError,
        OmiConfigError,
        OmiError,
        OmiInboundError,
        OmiNotFound,
        OmiPermissionError,
        OmiRateLimited,
        OmiServerError,
        OmiSignInError,
        OmiTransportError,
        OmiValidationError,
        StateCheckUnavailable,
        StateExpired,
        StateMismatch,
        StateMissing,
        StateReused,
        StateSuperseded,
        StoreNotShared,
        UidInvalid,
        UidMissing,
        UidRejected,
        UidVerificationUnavailable,
    )
    from flask_omi.extension import omi_client
    from flask_omi.inbound.background import BackgroundAnswerError
    from flask_omi.inbound.payloads import (
        AudioChunk,
        ConversationCreated,
        Notify,
        Structured,
        TranscriptBatch,
        TranscriptSegment,
    )
    from flask_omi.inbound.tool_spec import ToolError
    from flask_omi.inbound.tools import OmiTools, omi_tools
    from flask_omi.inbound.webhooks import OmiWebhooks, omi_webhooks
    from flask_omi.keystore import KeyStore, MemoryStore, RecordStore, RedisStore, StoreFull
    from flask_omi.signals import (
        omi_confirm_flooded,
        omi_logged_in,
        omi_logged_out,
        omi_login_failed,
        omi_logout_requested,
    )
    from flask_omi.signin.blueprint import OmiBlueprint, omi_bp
    from flask_omi.signin.confirm_views import confirm_omi_sign_in
    from flask_omi.signin.decorators import omi_login_required
    from flask_omi.signin.user import (
        ANONYMOUS,
        AnonymousOmiUser,
        OmiUser,
        current_omi_user,
        login_omi_user,
        logout_omi_user,
        omi_uid,
    )

#: Where each public name lives.
_HOMES: dict[str, str] = {
    "ANONYMOUS": "flask_omi.signin.user",
    "AnonymousOmiUser": "flask_omi.signin.user",
    "OmiUser": "flask_omi.signin.user",
    "current_omi_user": "flask_omi.signin.user",
    "login_omi_user": "flask_omi.signin.user",
    "logout_omi_user": "flask_omi.signin.user",
    "omi_uid": "flask_omi.signin.user",
    "AudioChunk": "flask_omi.inbound.payloads",
    "ConversationCreated": "flask_omi.inbound.payloads",
    "Notify": "flask_omi.inbound.payloads",
    "Structured": "flask_omi.inbound.payloads",
    "TranscriptBatch": "flask_omi.inbound.payloads",
    "TranscriptSegment": "flask_omi.inbound.payloads",
    "BackgroundAnswerError": "flask_omi.inbound.background",
    "CodeExpired": "flask_omi.errors",
    "CodeTriesExhausted": "flask_omi.errors",
    "ConfirmationFailed": "flask_omi.errors",
    "ConfirmationMissing": "flask_omi.errors",
    "ConfirmationRateLimited": "flask_omi.errors",
    "ConfirmationRefused": "flask_omi.errors",
    "ConfirmationUnavailable": "flask_omi.errors",
    "InboundPayloadError": "flask_omi.errors",
    "InboundSignatureError": "flask_omi.errors",
    "OmiApiError": "flask_omi.errors",
    "OmiAppNotEnabled": "flask_omi.errors",
    "OmiAuthError": "flask_omi.errors",
    "OmiCallbackError": "flask_omi.errors",
    "OmiConfigError": "flask_omi.errors",
    "OmiError": "flask_omi.errors",
    "OmiInboundError": "flask_omi.errors",
    "OmiNotFound": "flask_omi.errors",
    "OmiPermissionError": "flask_omi.errors",
    "OmiRateLimited": "flask_omi.errors",
    "OmiServerError": "flask_omi.errors",
    "OmiSignInError": "flask_omi.errors",
    "OmiTransportError": "flask_omi.errors",
    "OmiValidationError": "flask_omi.errors",
    "StateCheckUnavailable": "flask_omi.errors",
    "StateExpired": "flask_omi.errors",
    "StateMismatch": "flask_omi.errors",
    "StateMissing": "flask_omi.errors",
    "StateReused": "flask_omi.errors",
    "StateSuperseded": "flask_omi.errors",
    "StoreNotShared": "flask_omi.errors",
    "UidInvalid": "flask_omi.errors",
    "UidMissing": "flask_omi.errors",
    "UidRejected": "flask_omi.errors",
    "UidVerificationUnavailable": "flask_omi.errors",
    "OmiBlueprint": "flask_omi.signin.blueprint",
    "omi_bp": "flask_omi.signin.blueprint",
    "OmiClient": "flask_omi.api.client",
    "OmiTools": "flask_omi.inbound.tools",
    "omi_tools": "flask_omi.inbound.tools",
    "OmiWebhooks": "flask_omi.inbound.webhooks",
    "omi_webhooks": "flask_omi.inbound.webhooks",
    "ToolError": "flask_omi.inbound.tool_spec",
    "confirm_omi_sign_in": "flask_omi.signin.confirm_views",
    "omi_client": "flask_omi.extension",
    "omi_confirm_flooded": "flask_omi.signals",
    "omi_logged_in": "flask_omi.signals",
    "omi_logged_out": "flask_omi.signals",
    "omi_login_failed": "flask_omi.signals",
    "omi_logout_requested": "flask_omi.signals",
    "omi_login_required": "flask_omi.signin.decorators",
    "KeyStore": "flask_omi.keystore",
    "MemoryStore": "flask_omi.keystore",
    "RecordStore": "flask_omi.keystore",
    "RedisStore": "flask_omi.keystore",
    "StoreFull": "flask_omi.keystore",
}

__all__ = [
    "ANONYMOUS",
    "AnonymousOmiUser",
    "AudioChunk",
    "BackgroundAnswerError",
    "CodeExpired",
    "CodeTriesExhausted",
    "ConfirmationFailed",
    "ConfirmationMissing",
    "ConfirmationRateLimited",
    "ConfirmationRefused",
    "ConfirmationUnavailable",
    "ConversationCreated",
    "InboundPayloadError",
    "InboundSignatureError",
    "KeyStore",
    "MemoryStore",
    "Notify",
    "OmiApiError",
    "OmiAppNotEnabled",
    "OmiAuthError",
    "OmiBlueprint",
    "OmiCallbackError",
    "OmiClient",
    "OmiConfigError",
    "OmiError",
    "OmiInboundError",
    "OmiNotFound",
    "OmiPermissionError",
    "OmiRateLimited",
    "OmiServerError",
    "OmiSignInError",
    "OmiTools",
    "OmiTransportError",
    "OmiUser",
    "OmiValidationError",
    "OmiWebhooks",
    "RecordStore",
    "RedisStore",
    "StateCheckUnavailable",
    "StateExpired",
    "StateMismatch",
    "StateMissing",
    "StateReused",
    "StateSuperseded",
    "StoreFull",
    "StoreNotShared",
    "Structured",
    "ToolError",
    "TranscriptBatch",
    "TranscriptSegment",
    "UidInvalid",
    "UidMissing",
    "UidRejected",
    "UidVerificationUnavailable",
    "confirm_omi_sign_in",
    "current_omi_user",
    "login_omi_user",
    "logout_omi_user",
    "omi_bp",
    "omi_client",
    "omi_confirm_flooded",
    "omi_logged_in",
    "omi_logged_out",
    "omi_login_failed",
    "omi_login_required",
    "omi_logout_requested",
    "omi_tools",
    "omi_uid",
    "omi_webhooks",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("flask-omi")
        except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
            return "0.0.0"
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
