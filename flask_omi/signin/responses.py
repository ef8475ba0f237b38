"""Content negotiation and the error responses shared by the views and the decorator."""

from __future__ import annotations

from typing import TypeVar

from flask import Response, jsonify, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from flask_omi.errors import OmiCallbackError
from flask_omi.extension import get_extension

_NO_STORE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
#: Sign-in pages are never framed: a framed "Sign in with OMI" button is a clickjacking target.
_NO_FRAME_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


def wants_json() -> bool:
    """True for API clients: XHR, an Accept header preferring JSON, or a JSON body without HTML."""
    if request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest":
        return True
    accept = request.accept_mimetypes
    best = accept.best_match(("text/html", "application/json"))
    if best == "application/json":
        return True
    return request.is_json and best is None


R = TypeVar("R", bound=BaseResponse)


def no_store(response: R) -> R:
    """Keep sign-in pages and redirects out of caches, their URLs out of Referer headers, and
    their content type from being second-guessed by the browser."""
    response.headers.update(_NO_STORE_HEADERS)
    return response


def no_frames(response: Response) -> Response:
    """Forbid framing a page (old and new header), unless the app already set a policy."""
    for name, value in _NO_FRAME_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def json_error(status: int, error_code: str, description: str, **extra: str) -> Response:
    """A JSON error with the stable ``error`` code and a sentence for people, never cached."""
    response = jsonify(error=error_code, error_description=description, **extra)
    response.status_code = status
    return no_store(response)


def login_url(next_path: str | None = None) -> str:
    """The login route of this app's blueprint, with ``next`` when it is a safe path."""
    return url_for(get_extension().endpoint("login"), next=next_path)


def render_callback_error(error: OmiCallbackError) -> Response:
    """A readable page (template ``omi/error.html``, overridable) or JSON, never a 500."""
    status = error.code or 400
    description = error.description or ""
    if wants_json():
        response = json_error(status, error.error_code, description)
    else:
        html = render_template("omi/error.html", error=error, login_url=login_url())
        response = no_frames(no_store(Response(html, status=status, mimetype="text/html")))
    retry_after = getattr(error, "retry_after", None)  # OMI's own wait, on a 429
    if isinstance(retry_after, int):
        response.headers["Retry-After"] = str(retry_after)
    return response
