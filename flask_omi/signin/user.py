"""Who is signed in: ``current_omi_user`` and the helpers that change it.

The signed-in uid lives in the session under ``_omi_uid``; the user object is built from it at most
once per request and cached on :data:`flask.g`, never on the app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from flask import current_app, g, has_request_context, session
from werkzeug.local import LocalProxy

from flask_omi.errors import UidInvalid
from flask_omi.extension import get_extension
from flask_omi.signals import omi_logged_in, omi_logged_out
from flask_omi.signin.state import RETIRED_KEY, carried_over
from flask_omi.validation import is_valid_uid

logger = logging.getLogger("flask_omi")

UID_KEY = "_omi_uid"
_G_USER = "_omi_user"
_NOT_LOADED = object()


@dataclass(frozen=True, slots=True)
class OmiUser:
    """The default signed-in user when the app registers no user loader."""

    uid: str
    is_authenticated: ClassVar[bool] = True
    is_anonymous: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class AnonymousOmiUser:
    """Stands in for nobody, so templates and views can ask ``is_authenticated`` without a None check."""

    uid: ClassVar[None] = None
    is_authenticated: ClassVar[bool] = False
    is_anonymous: ClassVar[bool] = True


ANONYMOUS = AnonymousOmiUser()


def _load_user() -> Any:
    if not has_request_context():
        raise RuntimeError(
            "current_omi_user is used outside a request: who is signed in is a property of a "
            "request's session. In a background job or a CLI command, pass the uid along instead."
        )
    return load_user_in_request()


def _signed_in_uid() -> str | None:
    if not has_request_context():
        raise RuntimeError(
            "omi_uid() is called outside a request: who is signed in is a property of a "
            "request's session. In a background job or a CLI command, pass the uid along instead."
        )
    uid = session.get(UID_KEY)
    return uid if isinstance(uid, str) else None


def load_user_in_request() -> Any:
    """The signed-in user, loaded at most once per request. Must be called inside a request.

    This runs on every protected request, often twice (the decorator, then the view's
    ``current_omi_user``). Each proxy is resolved once, with Werkzeug's public
    ``_get_current_object``, and the session and app only on the first call of a request. Only
    public names are used, so Flask reorganising its context internals changes nothing here.
    """
    ctx_g = _real(g)
    user = ctx_g.__dict__.get(_G_USER, _NOT_LOADED)
    if user is _NOT_LOADED:
        user = _user_from_session(_real(session), _real(current_app))
        setattr(ctx_g, _G_USER, user)
    return user


def _real(proxy: Any) -> Any:
    return proxy._get_current_object()


def _user_from_session(ctx_session: Any, app: Any) -> Any:
    uid = ctx_session.get(UID_KEY)
    if not isinstance(uid, str):
        return ANONYMOUS
    ext = get_extension(app)
    loader = ext.handlers.user_loader or ext.fallback_user_loader  # ext.user_loader(), inlined
    if loader is None:
        return OmiUser(uid)
    user = app.ensure_sync(loader)(uid)
    return ANONYMOUS if user is None else user


class _CurrentUserProxy(LocalProxy):  # type: ignore[type-arg]
    """A :class:`~werkzeug.local.LocalProxy` whose attribute reads take a shorter path.

    ``current_omi_user.uid`` is read on most protected requests; werkzeug's generic lookup costs
    several Python calls per access, this one costs one. Everything else is LocalProxy's.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(_load_user(), name)


#: The signed-in user: the user loader's object, an :class:`OmiUser`, or :data:`ANONYMOUS`.
#: Typed as ``Any`` because the user loader decides the class. Outside a request it raises
#: ``RuntimeError``, as Flask's ``request`` does.
current_omi_user: Any = _CurrentUserProxy(_load_user)


def omi_uid() -> str | None:
    """The signed-in OMI uid, a plain ``str``, or None: the same whatever the user loader returns
    and whether or not the app's user class has a ``uid``. A value, not a proxy, so it can be
    compared in a database query (``Entry.uid == omi_uid()``). Outside a request it raises
    ``RuntimeError``."""
    return _signed_in_uid()


def login_omi_user(uid: str) -> None:
    """Sign ``uid`` in for this browser, the way a successful callback does.

    The session is cleared first (session fixation: nothing planted before sign-in survives it),
    keeping only this browser's other pending sign-ins. Raises :class:`UidInvalid` for a malformed uid.
    """
    get_extension()  # fail clearly when the blueprint was never registered
    if not is_valid_uid(uid):
        raise UidInvalid()
    kept = carried_over(session)
    session.clear()
    session.update(kept)
    session[UID_KEY] = uid
    # Done once the session is non-empty: Flask-Session skips regenerating an empty one.
    _regenerate_session_id()
    g.pop(_G_USER, None)
    logger.info("OMI sign-in: uid %s signed in", uid)
    omi_logged_in.send(current_app._get_current_object(), uid=uid)  # type: ignore[attr-defined]


def logout_omi_user() -> bool:
    """Sign the current user out. Returns whether anyone was signed in.

    With ``OMI_LOGOUT_CLEAR_SESSION`` (the default) the whole session is cleared and a server-side
    session gets a new id, as at sign-in, so nothing of the signed-in session survives it. Without
    it only flask-omi's own key is removed. ``omi_logged_out`` is sent after, so its receivers (a
    Flask-Login bridge calling ``logout_user``) write into the fresh session.
    """
    uid = session.get(UID_KEY)
    setattr(g, _G_USER, ANONYMOUS)
    if uid is None:
        return False  # nobody to sign out: the session is left as it is
    if current_app.config.get("OMI_LOGOUT_CLEAR_SESSION", True):
        # Only the fingerprints of used states stay, so that a replayed callback is still
        # reported as "reused"; they are one-way digests and sign nobody in.
        retired = session.get(RETIRED_KEY)
        _regenerate_session_id()  # while the session is non-empty: the old id leaves the store
        session.clear()
        if retired is not None:
            session[RETIRED_KEY] = retired
    else:
        session.pop(UID_KEY, None)
    logger.info("OMI sign-out: uid %s signed out", uid)
    omi_logged_out.send(current_app._get_current_object(), uid=uid)  # type: ignore[attr-defined]
    return True


def _regenerate_session_id() -> None:
    """Server-side sessions (Flask-Session) get a new id, so an id planted or seen before is
    worthless after it. Cookie sessions have no id: their whole content is the cookie."""
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if callable(regenerate):
        regenerate(session)
