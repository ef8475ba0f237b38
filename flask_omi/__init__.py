"""Sign in with OMI for Flask apps.

Register :data:`omi_bp`, protect views with :func:`omi_login_required`, read
:data:`current_omi_user`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .blueprint import OmiBlueprint, omi_bp
from .client import OmiClient
from .confirm_views import confirm_omi_sign_in
from .decorators import omi_login_required
from .errors import (
    OmiApiError,
    OmiAppNotEnabled,
    OmiAuthError,
    OmiCallbackError,
    OmiConfigError,
    OmiError,
    OmiNotFound,
    OmiPermissionError,
    OmiRateLimited,
    OmiServerError,
    OmiSignInError,
    OmiTransportError,
    OmiValidationError,
    OmiWebhookError,
    StateCheckUnavailable,
    StateExpired,
    StateMismatch,
    StateMissing,
    StateReused,
    StateSuperseded,
    UidInvalid,
    UidMissing,
    UidRejected,
    UidVerificationUnavailable,
    WebhookPayloadError,
    WebhookSignatureError,
)
from .extension import omi_client
from .inbound.background import BackgroundAnswerError
from .inbound.payloads import (
    AudioChunk,
    ConversationCreated,
    Notify,
    Structured,
    TranscriptBatch,
    TranscriptSegment,
)
from .inbound.tool_spec import ToolError
from .inbound.tools import OmiTools, omi_tools
from .inbound.webhooks import OmiWebhooks, omi_webhooks
from .signals import omi_confirm_flooded, omi_logged_in, omi_logged_out, omi_login_failed
from .stores import (
    DeliveryLedger,
    MemoryDeliveryLedger,
    MemoryStateRegistry,
    RedisDeliveryLedger,
    RedisStateRegistry,
    StateRegistry,
)
from .user import (
    ANONYMOUS,
    AnonymousOmiUser,
    OmiUser,
    current_omi_uid,
    current_omi_user,
    login_omi_user,
    logout_omi_user,
)

try:
    __version__ = version("flask-omi")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "ANONYMOUS",
    "AnonymousOmiUser",
    "AudioChunk",
    "BackgroundAnswerError",
    "ConversationCreated",
    "DeliveryLedger",
    "MemoryDeliveryLedger",
    "MemoryStateRegistry",
    "Notify",
    "OmiApiError",
    "OmiAppNotEnabled",
    "OmiAuthError",
    "OmiBlueprint",
    "OmiCallbackError",
    "OmiClient",
    "OmiConfigError",
    "OmiError",
    "OmiNotFound",
    "OmiPermissionError",
    "OmiRateLimited",
    "OmiServerError",
    "OmiSignInError",
    "OmiTools",
    "OmiTransportError",
    "OmiUser",
    "OmiValidationError",
    "OmiWebhookError",
    "OmiWebhooks",
    "RedisDeliveryLedger",
    "RedisStateRegistry",
    "StateCheckUnavailable",
    "StateExpired",
    "StateMismatch",
    "StateMissing",
    "StateRegistry",
    "StateReused",
    "StateSuperseded",
    "Structured",
    "ToolError",
    "TranscriptBatch",
    "TranscriptSegment",
    "UidInvalid",
    "UidMissing",
    "UidRejected",
    "UidVerificationUnavailable",
    "WebhookPayloadError",
    "WebhookSignatureError",
    "confirm_omi_sign_in",
    "current_omi_uid",
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
    "omi_tools",
    "omi_webhooks",
]
