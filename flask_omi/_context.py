"""Direct access to the current Flask contexts, for the per-request hot path only.

``flask.g``, ``flask.session`` and ``flask.current_app`` are proxies; each attribute access
resolves a context variable through several Python calls. The signed-in check runs on every
protected request, so it reads the context variables Flask itself uses once instead. They are
Flask internals: if a Flask release renames them, the public proxies are used instead, and the
test suite runs both paths.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from flask import current_app, g, session

try:
    from flask.globals import _cv_app, _cv_request
except ImportError:  # pragma: no cover - exercised by a test that hides them
    _cv_app = _cv_request = None  # type: ignore[assignment]


def current_contexts() -> tuple[Any, MutableMapping[str, Any], Any]:
    """``(g, session, app)`` of the current request, as the real objects."""
    if _cv_app is not None and _cv_request is not None:
        try:
            app_ctx, request_ctx = _cv_app.get(), _cv_request.get()
            return app_ctx.g, request_ctx.session, app_ctx.app
        except (LookupError, AttributeError):  # pragma: no cover - a future Flask layout
            pass
    return g._get_current_object(), session._get_current_object(), current_app._get_current_object()  # type: ignore[attr-defined]
