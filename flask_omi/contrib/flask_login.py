"""Flask-Login and flask-omi as one sign-in: signing in or out of either does the same to the other.

::

    from flask_omi.contrib.flask_login import FlaskLoginBridge

    login_manager = LoginManager(app)
    FlaskLoginBridge(load_user=User.get, create_user=User.create).init_app(app)

After an OMI sign-in, ``load_user(uid)`` gives the Flask-Login user to sign in; when it gives
``None``, ``create_user(uid)`` (if given) makes one, at sign-in and only there. ``None`` from both
refuses the sign-in, and the OMI sign-in is undone too. Loading never creates, so a uid that
never signed in here is no user: a chat tool's ``requires_sign_in`` refuses it. Signing out with
``POST /omi/logout`` calls ``logout_user()``; an app's own ``logout_user()`` signs out of OMI.

One loader is enough: unless the app registered its own, ``load_user`` also serves as Flask-Login's
``user_loader`` (Flask-Login's user id is then the uid: ``get_id()`` must return it) and as
flask-omi's, so that ``current_user`` and ``current_omi_user`` load the same user. Needs
Flask-Login.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, g, session
from flask_login import login_user, logout_user, user_logged_out

from flask_omi._registration import record_of
from flask_omi.signals import omi_logged_in, omi_logged_out, omi_logout_requested
from flask_omi.signin.user import logout_omi_user

logger = logging.getLogger("flask_omi")

#: Set on ``flask.g`` while one side signs the other out, so that the echo does not bounce back.
_BRIDGING = "_omi_flask_login_bridging"


class FlaskLoginBridge:
    """Connects the two sign-ins of one app through their signals. Holds no app."""

    def __init__(
        self,
        load_user: Callable[[str], Any],
        *,
        create_user: Callable[[str], Any] | None = None,
        remember: bool = False,
    ) -> None:
        """``load_user(uid)``: the app's user for ``uid``, or None; it must not create one (it also
        answers every later request and every chat tool's ``requires_sign_in``).
        ``create_user(uid)``: make the user, at an OMI sign-in only. ``remember``: Flask-Login's
        remember-me cookie."""
        self.load_user = load_user
        self.create_user = create_user
        self.remember = remember

    def init_app(self, app: Flask) -> None:
        """Connect the two sign-ins of ``app`` (registers nothing that holds the app)."""
        record = record_of(app)
        record.flask_login = self
        omi = record.signin
        if omi is not None and omi.user_loader() is None:
            omi.fallback_user_loader = self.load_user
        login_manager = getattr(app, "login_manager", None)
        # Flask-Login keeps its loader in _user_callback and offers no public way to ask for it.
        if login_manager is not None and getattr(login_manager, "_user_callback", None) is None:
            login_manager.user_loader(self.load_user)
        omi_logged_in.connect(self._omi_signed_in, app, weak=False)
        omi_logged_out.connect(self._omi_signed_out, app, weak=False)
        omi_logout_requested.connect(self._logout_requested, app, weak=False)
        user_logged_out.connect(self._flask_login_signed_out, app, weak=False)

    def _omi_signed_in(self, sender: Flask, uid: str, **extra: Any) -> None:
        user = self.load_user(uid)
        if user is None and self.create_user is not None:
            user = self.create_user(uid)  # a sign-in, and only a sign-in, makes a user
        if user is None or not login_user(user, remember=self.remember):
            logger.warning("OMI sign-in: no active Flask-Login user for this uid; signed out of both")
            logout_omi_user()
            return
        if not self.remember:
            # A remember-me cookie of whoever used this browser before (a password sign-in with
            # "remember me") would otherwise bring them back after a restart: Flask-Login deletes
            # it at the end of this request.
            session["_remember"] = "clear"

    def _logout_requested(self, sender: Flask, **extra: Any) -> None:
        """``POST /omi/logout`` signs out of Flask-Login too, also when Flask-Login restored the
        user from its remember-me cookie and the session holds no OMI uid."""
        if g.get(_BRIDGING):
            return
        logout_user()  # its user_logged_out signs out of OMI, through _flask_login_signed_out

    def _omi_signed_out(self, sender: Flask, uid: str, **extra: Any) -> None:
        if g.get(_BRIDGING):
            return
        g.setdefault(_BRIDGING, True)
        try:
            logout_user()
        finally:
            g.pop(_BRIDGING, None)

    def _flask_login_signed_out(self, sender: Flask, user: Any = None, **extra: Any) -> None:
        if g.get(_BRIDGING):
            return
        g.setdefault(_BRIDGING, True)
        try:
            # Signing out of OMI may clear the whole session (OMI_LOGOUT_CLEAR_SESSION), which
            # drops Flask-Login's note to delete its remember-me cookie; logging out of Flask-Login
            # once more writes it again, into the fresh session.
            if logout_omi_user():
                logout_user()
        finally:
            g.pop(_BRIDGING, None)
