"""Keep Flask-WTF's ``CSRFProtect`` away from OMI's requests.

``CSRFProtect`` checks every POST of the app for a form token. OMI's webhook and tool calls carry
none (they are authenticated by their signature instead), so it would answer each with 400 and OMI
would drop the event. flask-omi's machine-facing blueprints exempt themselves when Flask-WTF is in
use, whether ``CSRFProtect`` was set up before them or after.
"""

from __future__ import annotations

from importlib.util import find_spec

from flask import current_app
from flask.sansio.app import App
from flask.sansio.blueprints import Blueprint


def exempt_from_csrf(app: App, blueprint: Blueprint) -> None:
    """Keep Flask-WTF's ``CSRFProtect`` off ``blueprint``'s views: OMI's requests carry no CSRF token,
    and are checked by signature instead. Works whichever is set up first."""
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(blueprint)
        return
    if find_spec("flask_wtf") is None:
        return
    # CSRFProtect may be set up after this blueprint. Its check is a before_request function of
    # the app; this one runs first (it is inserted at the front) and exempts once.
    done: list[bool] = []

    def exempt_when_protected() -> None:
        if done:
            return
        done.append(True)
        late = current_app.extensions.get("csrf")
        if late is not None:
            late.exempt(blueprint)

    app.before_request_funcs.setdefault(None, []).insert(0, exempt_when_protected)
