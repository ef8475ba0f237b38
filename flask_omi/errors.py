"""The flask-omi error hierarchy.

Every error the library raises derives from :class:`OmiError` and carries a stable, machine-readable
``error_code``. The code is part of the public API: apps and monitoring may match on it, so a code
never changes meaning once released.

Sign-in failures are also :class:`~werkzeug.exceptions.BadRequest` subclasses, so an app that does not
handle them still answers 400 rather than 500. Werkzeug reserves the ``code`` attribute for the HTTP
status (Flask uses it to pick error handlers and to build the response), which is why the stable
reason lives in ``error_code`` instead.
"""

from __future__ import annotations

from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, ServiceUnavailable, TooManyRequests


class OmiError(Exception):
    """Base class of everything flask-omi raises."""

    error_code: str = "omi_error"


class OmiConfigError(OmiError, RuntimeError):
    """The app is configured in a way that cannot work (raised at start-up, never per request)."""

    error_code = "config_error"


class StoreNotShared(OmiConfigError):
    """A store kept in this process serves a server of several processes (WSGI's
    ``wsgi.multiprocess``), where it would guard only what reaches this one: answered 500 with the
    one setting to set, ``OMI_STORE``, rather than break a promise without a word."""

    error_code = "store_not_shared"


class OmiCallbackError(OmiError, HTTPException):
    """A sign-in callback did not sign anyone in. Rendered as a page, or JSON for JSON clients."""

    error_code = "callback_failed"


class OmiSignInError(OmiCallbackError, BadRequest):
    """The callback's input was refused (400): the state or the uid did not pass."""

    error_code = "sign_in_failed"
    description = "Signing in with OMI did not work. Please start again."


class StateMissing(OmiSignInError):
    """The callback carries no state, or OMI's ``None`` for a sign-in started without one."""

    error_code = "state_missing"
    description = (
        "The sign-in link carried no state. Sign-in must be started from this site, "
        "not from a bookmarked or shared link."
    )


class StateMismatch(OmiSignInError):
    """The state was not issued to this browser's session (login CSRF, or another browser)."""

    error_code = "state_mismatch"
    description = (
        "This sign-in was not started in this browser, or the link was altered. "
        "Please start again from this site."
    )


class StateExpired(OmiSignInError):
    """The state is older than ``OMI_STATE_MAX_AGE``."""

    error_code = "state_expired"
    description = "This sign-in took too long and has expired. Please start again."


class StateReused(OmiSignInError):
    """The state was already used (a replayed callback)."""

    error_code = "state_reused"
    description = "This sign-in link has already been used. Please start again."


class StateSuperseded(OmiSignInError):
    """The state was dropped: the browser started more than ``OMI_MAX_PENDING_SIGNINS`` sign-ins."""

    error_code = "state_superseded"
    description = (
        "Too many sign-ins were started in this browser at once; this one was dropped. Please start again."
    )


class UidMissing(OmiSignInError):
    """The callback carries no uid."""

    error_code = "uid_missing"
    description = "OMI did not say who signed in. Please start again."


class UidInvalid(OmiSignInError):
    """The uid is not one OMI could have sent (characters, length, dots only, repeated)."""

    error_code = "uid_invalid"
    description = "OMI sent a user id that is not valid."


class UidRejected(OmiSignInError):
    """A uid verifier, or ``OMI_VERIFY_UID``, refused the uid."""

    error_code = "uid_rejected"
    description = "This OMI account cannot sign in here. Has it enabled this app in OMI?"


class UidVerificationUnavailable(OmiCallbackError, ServiceUnavailable):
    """OMI could not be asked whether the uid enabled the app; sign-in fails closed."""

    error_code = "uid_verification_unavailable"
    description = "OMI could not be reached to confirm your account. Please try again shortly."


class StateCheckUnavailable(OmiCallbackError, ServiceUnavailable):
    """The used-state registry (``OMI_STATE_REGISTRY``) could not be asked; sign-in fails closed."""

    error_code = "state_check_unavailable"
    description = "Sign-in could not be checked just now. Please try again shortly."


class ConfirmationFailed(OmiSignInError):
    """OMI-confirmed sign-in (``OMI_CONFIRM_SIGNIN``): the code did not confirm it."""

    error_code = "confirmation_failed"


class ConfirmationMissing(ConfirmationFailed):
    """No confirmation is waiting in this browser: never started, already used, or replaced."""

    error_code = "confirmation_missing"
    description = "There is no sign-in waiting for a code in this browser. Please sign in again."


class CodeExpired(ConfirmationFailed):
    """The pending confirmation is older than its code's 5 minutes."""

    error_code = "code_expired"
    description = "The code has expired. Please sign in again for a new one."


class CodeTriesExhausted(ConfirmationFailed):
    """The code's 5 comparisons, or the uid's comparisons this hour, are spent (counted in the
    store, so a copy of the session cookie buys no more)."""

    error_code = "code_tries_exhausted"
    description = "Too many wrong codes. Please sign in again for a new one."


class ConfirmationRefused(OmiCallbackError, Forbidden):
    """OMI cannot send the code: the uid has not installed the app (OMI's 403)."""

    error_code = "confirmation_refused"
    description = (
        "OMI says this account has not installed the app, so no code can reach its phone. Enable the "
        "app in OMI, then sign in again."
    )


class ConfirmationRateLimited(OmiCallbackError, TooManyRequests):
    """No code may be sent now: OMI's notification limit (10 per hour per app and user), or one of
    the app's own budgets (codes per uid, codes per client address), is spent."""

    error_code = "confirmation_rate_limited"
    description = "No new sign-in code can be sent just now. Please try again later."

    def __init__(self, wait_seconds: float | None = None) -> None:
        # Werkzeug's TooManyRequests sends ``Retry-After`` from this: OMI's own wait, passed on.
        super().__init__(retry_after=None if wait_seconds is None else max(1, int(wait_seconds)))
        #: Seconds until a code can be sent again (OMI's ``Retry-After``, or the budget's hour).
        self.wait_seconds = wait_seconds
        if wait_seconds is not None:
            minutes = max(1, round(wait_seconds / 60))
            self.description = f"No new sign-in code can be sent for about {minutes} minute(s)."


class ConfirmationUnavailable(OmiCallbackError, ServiceUnavailable):
    """OMI could not be asked to send the code (down, or an answer not understood); logged."""

    error_code = "confirmation_unavailable"
    description = "OMI could not send your sign-in code just now. Please try again shortly."


#: Every error a sign-in callback can end in, for documentation and exhaustive tests.
SIGN_IN_ERRORS: tuple[type[OmiError], ...] = (
    StateMissing,
    StateMismatch,
    StateExpired,
    StateReused,
    StateSuperseded,
    UidMissing,
    UidInvalid,
    UidRejected,
    UidVerificationUnavailable,
    StateCheckUnavailable,
    ConfirmationMissing,
    CodeExpired,
    CodeTriesExhausted,
    ConfirmationRefused,
    ConfirmationRateLimited,
    ConfirmationUnavailable,
)


class OmiApiError(OmiError):
    """A call to OMI's API failed. Carries what is needed to act on it, never the API key.

    ``status`` is the HTTP status (None when no answer came), ``detail`` OMI's ``detail`` field,
    ``method`` and ``path`` the request (without its query string, which may carry user text).
    """

    error_code = "omi_api_error"

    def __init__(self, message: str, *, status: int | None, detail: object, method: str, path: str) -> None:
        super().__init__(message)
        self.status, self.detail, self.method, self.path = status, detail, method, path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}"
        status = f" -> {self.status}" if self.status is not None else ""
        detail = f": {self.detail}" if self.detail not in (None, "") else ""
        return f"{self.args[0]} ({where}{status}){detail}"


class OmiAuthError(OmiApiError):
    """401, or 403 "Invalid API key": the app's key is missing, malformed or wrong."""

    error_code = "omi_auth_error"


class OmiAppNotEnabled(OmiApiError):
    """403 "App is not enabled for this user": the uid has not enabled (or has removed) the app."""

    error_code = "omi_app_not_enabled"


class OmiPermissionError(OmiApiError):
    """403 for a missing capability: the app lacks the action in OMI's developer settings."""

    error_code = "omi_permission_error"


class OmiNotFound(OmiApiError):
    """404: OMI does not know the app (or the resource)."""

    error_code = "omi_not_found"


class OmiValidationError(OmiApiError):
    """422 or 400: OMI refused the input; ``detail`` holds its reasons."""

    error_code = "omi_validation_error"


class OmiRateLimited(OmiApiError):
    """429; ``retry_after`` is how many seconds OMI asked to wait (None if it did not say)."""

    error_code = "omi_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class OmiServerError(OmiApiError):
    """5xx: OMI failed; reads are retried within the deadline, writes are not."""

    error_code = "omi_server_error"


class OmiTransportError(OmiApiError):
    """No usable answer: a timeout, a refused or broken connection, or a body that is not JSON."""

    error_code = "omi_transport_error"


class OmiInboundError(OmiError):
    """A request from OMI (a webhook delivery or a chat-tool call) was refused before any of the
    app's code ran; answered as JSON with ``status`` and the stable ``error_code``."""

    error_code = "inbound_error"
    status = 400

    def __init__(self, error_code: str, description: str, status: int | None = None) -> None:
        super().__init__(description)
        self.error_code, self.description = error_code, description
        if status is not None:
            self.status = status


class InboundSignatureError(OmiInboundError):
    """``X-Omi-Signature`` missing, malformed, stale or wrong (401)."""

    status = 401


class InboundPayloadError(OmiInboundError):
    """The body, query or headers are not what OMI sends for this endpoint (400, or 413 when too
    big)."""
