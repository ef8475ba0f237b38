"""``omi_login_required``: protect a view, sync or async."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from flask import current_app, redirect, request
from werkzeug.urls import iri_to_uri

from flask_omi.extension import get_extension
from flask_omi.signin.confirm_views import confirmation_required, has_pending, is_confirmed
from flask_omi.signin.responses import json_error, login_url, no_store, wants_json
from flask_omi.signin.user import load_user_in_request
from flask_omi.validation import safe_next_path

F = TypeVar("F", bound=Callable[..., Any])


@overload
def omi_login_required(view: F) -> F: ...


@overload
def omi_login_required(*, confirmed: bool = False) -> Callable[[F], F]: ...


def omi_login_required(view: F | None = None, *, confirmed: bool = False) -> F | Callable[[F], F]:
    """Let the view run only for a signed-in user: ``@omi_login_required``, or
    ``@omi_login_required(confirmed=True)`` for a view that also needs the sign-in confirmed with a
    code sent to the user's OMI app (``OMI_CONFIRM_SIGNIN``; "step-up" asks for it here only).

    Signed out, a browser is sent to sign in and brought back here afterwards; an API client gets
    401 JSON with the login URL; an app-registered ``unauthorized_handler`` replaces both. While a
    confirmation is owed, a browser is sent to ``/omi/confirm`` and an API client gets 401
    ``confirmation_required``. A signed-out ``OPTIONS`` request (a CORS preflight carries no
    cookies) gets Flask's default options response: the view itself never runs for someone not
    signed in.
    """

    def decorate(view: F) -> F:
        # Decided once here rather than by ensure_sync on every request: this wrapper is a hot path.
        is_async = inspect.iscoroutinefunction(view)

        if not confirmed:  # most views: nothing more than a sign-in to check on this hot path

            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                # Signed in: anything the user loader returned, unless it says otherwise with
                # is_authenticated (a plain model class works as well as a UserMixin).
                if getattr(load_user_in_request(), "is_authenticated", True):
                    if is_async:
                        return current_app.ensure_sync(view)(*args, **kwargs)
                    return view(*args, **kwargs)
                return _refused(confirmation_owed=False)

            return cast(F, wrapper)

        @functools.wraps(view)
        def confirmed_wrapper(*args: Any, **kwargs: Any) -> Any:
            if getattr(load_user_in_request(), "is_authenticated", True):
                if is_confirmed():
                    if is_async:
                        return current_app.ensure_sync(view)(*args, **kwargs)
                    return view(*args, **kwargs)
                return _refused(confirmation_owed=True)
            return _refused(confirmation_owed=False)

        return cast(F, confirmed_wrapper)

    return decorate(view) if view is not None else decorate


def _refused(confirmation_owed: bool) -> Any:
    """The answer to a request the view does not run for: signed out, or a code still owed."""
    if request.method == "OPTIONS":
        return current_app.make_default_options_response()
    if confirmation_owed or has_pending():
        return confirmation_required(current_path(), wants_json())
    return unauthorized()


def current_path() -> str | None:
    """This request's path and query as a ``next`` value, or None when it is not a safe one."""
    path = iri_to_uri(request.script_root + request.path)
    query = request.query_string.decode("latin-1")
    return safe_next_path(f"{path}?{query}" if query else path)


def unauthorized() -> Any:
    """What a protected view answers to someone signed out: the app's handler, else 401 JSON for API
    clients or a redirect to sign in that comes back here."""
    handler = get_extension().handlers.unauthorized
    if handler is not None:
        return current_app.ensure_sync(handler)()
    url = login_url(current_path())
    if wants_json():
        description = "Sign in with OMI to use this resource."
        return json_error(401, "omi_login_required", description, login_url=url)
    return no_store(redirect(url, code=302))  # a cached redirect would outlive the sign-in
