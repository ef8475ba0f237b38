"""Blinker signals, in Flask's style: connect with ``signal.connect_via(app)``.

- ``omi_logged_in(app, uid=...)``: after a uid is stored in the session.
- ``omi_logged_out(app, uid=...)``: after the uid is removed.
- ``omi_login_failed(app, error_code=..., error=...)``: a callback was refused.
- ``omi_logout_requested(app)``: someone asked to sign out (``POST /omi/logout``), whether or not
  an OMI uid is still in the session; integrations sign out of what they signed in.
- ``omi_confirm_flooded(app, limit=..., uid=...)``: a confirmation budget ran out
  (``codes_per_address``, ``sends_per_uid`` or ``comparisons_per_uid``): someone may be flooding a
  user's phone or guessing codes. Connect it to alert.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

omi_logged_in = _signals.signal("omi-logged-in")
omi_logged_out = _signals.signal("omi-logged-out")
omi_login_failed = _signals.signal("omi-login-failed")
omi_logout_requested = _signals.signal("omi-logout-requested")
omi_confirm_flooded = _signals.signal("omi-confirm-flooded")
