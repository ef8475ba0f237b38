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

from werkzeug.exceptions import BadRequest, HTTPException, ServiceUnavailable


class OmiError(Exception):
    """Base class of everything flask-omi raises."""

    error_code: str = "omi_error"


class OmiConfigError(OmiError, RuntimeError):
    """The app is configured in a way that cannot work (raised at start-up, never per request)."""

    error_code = "config_error"


class OmiCallbackError(OmiError, HTTPException):
    """A sign-in callback did not sign anyone in. Rendered as a page, or JSON for JSON clients."""

    error_code = "callback_failed"


class OmiSignInError(OmiCallbackError, BadRequest):
    """The callback's input was refused (400): the state or the uid did not pass."""

    error_code = "sign_in_failed"
    description = "Signing in with OMI did not work. Please start again."


class StateMissing(OmiSignInError):
    error_code = "state_missing"
    description = (
        "The sign-in link carried no state. Sign-in must be started from this site, "
        "not from a bookmarked or shared link."
    )


class StateMismatch(OmiSignInError):
    error_code = "state_mismatch"
    description = (
        "This sign-in was not started in this browser, or the link was altered. "
        "Please start again from this site."
    )


class StateExpired(OmiSignInError):
    error_code = "state_expired"
    description = "This sign-in took too long and has expired. Please start again."


class StateReused(OmiSignInError):
    error_code = "state_reused"
    description = "This sign-in link has already been used. Please start again."


class StateSuperseded(OmiSignInError):
    error_code = "state_superseded"
    description = (
        "Too many sign-ins were started in this browser at once; this one was dropped. Please start again."
    )


class UidMissing(OmiSignInError):
    error_code = "uid_missing"
    description = "OMI did not say who signed in. Please start again."


class UidInvalid(OmiSignInError):
    error_code = "uid_invalid"
    description = "OMI sent a user id that is not valid."


class UidRejected(OmiSignInError):
    error_code = "uid_rejected"
    description = "This OMI account cannot sign in here. Has it enabled this app in OMI?"


class UidVerificationUnavailable(OmiCallbackError, ServiceUnavailable):
    """OMI could not be asked whether the uid enabled the app; sign-in fails closed."""

    error_code = "uid_verification_unavailable"
    description = "OMI could not be reached to confirm your account. Please try again shortly."


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
)
