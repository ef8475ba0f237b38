"""Pending sign-ins: the ``state`` values that stop login CSRF.

OMI sends the browser back to the App Home URL with ``?uid=...&state=...`` built by string
concatenation and unsigned. The uid alone proves nothing, so the only thing tying a callback to the
browser that started the sign-in is the state, which therefore must be:

- unguessable: 256 bits from :mod:`secrets`, in the URL-safe alphabet OMI can pass through unencoded;
- bound to the browser: stored in its session, never anywhere else;
- single use: removed from the session before it is checked;
- short-lived: refused once older than ``max_age`` seconds.

This module is framework-neutral: it works on any mutable mapping used as a session and takes the
current time as an argument, so it can be tested without a clock or a request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import MutableMapping
from typing import Any

from flask_omi.errors import StateExpired, StateMismatch, StateMissing, StateReused, StateSuperseded

#: Session keys; all namespaced so that they cannot clash with the app's own.
PENDING_KEY = "_omi_pending"
RETIRED_KEY = "_omi_retired"

STATE_BYTES = 32
_STATE_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # exactly what token_urlsafe(32) produces

#: How many used or dropped states are remembered to tell "reused" from "never issued".
RETIRED_MEMORY = 8
_USED = "u"
_SUPERSEDED = "s"


def new_state() -> str:
    """A fresh state: 256 random bits, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(STATE_BYTES)


def _fingerprint(state: str) -> str:
    """A short one-way digest, so that retired states are remembered without being stored.

    48 bits: it only chooses between two refusals (reused or never issued), so a collision costs
    nothing, while every byte of it is decoded with the session cookie on every request.
    """
    return hashlib.sha256(state.encode("ascii")).hexdigest()[:12]


class PendingSignIns:
    """The sign-ins this browser has started and not finished, kept in its session.

    Each record is ``[state, issued_at, next_path]``, oldest first; at most ``max_pending`` are kept,
    so several tabs can sign in at once without the cookie growing without bound.
    """

    def __init__(
        self, session: MutableMapping[str, Any], *, max_pending: int, max_age: float, now: float
    ) -> None:
        self._session = session
        self._max_pending = max(1, max_pending)
        self._max_age = max_age
        self._now = now

    def begin(self, next_path: str | None) -> str:
        """Record a new pending sign-in and return its state."""
        state = new_state()
        # Milliseconds are kept: a whole-second issue time would make states expire up to 1 s early.
        records = [*self._records(), [state, round(self._now, 3), next_path]]
        dropped = records[: -self._max_pending]
        self._store(records[-self._max_pending :])
        for old in dropped:
            self._retire(old[0], _SUPERSEDED)
        return state

    def complete(self, state: str | None) -> str | None:
        """Consume the pending sign-in for ``state`` and return its ``next`` path.

        Raises a :class:`~flask_omi.errors.OmiSignInError` subclass naming why the state is refused.
        """
        if not state or state == "None":
            # OMI renders a missing state as the text "None".
            raise StateMissing()
        if _STATE_RE.fullmatch(state) is None:
            raise StateMismatch()
        records = self._records()
        match = None
        for record in records:
            # Compare against every record so the time taken does not reveal which one matched.
            if hmac.compare_digest(record[0], state):
                match = record
        if match is None:
            raise self._unknown_state_error(state)
        # Single use: the record is removed before anything else is checked.
        self._store([r for r in records if r is not match])
        self._retire(state, _USED)
        if self._now - match[1] > self._max_age:
            raise StateExpired()
        next_path = match[2]
        return next_path if isinstance(next_path, str) else None

    def _unknown_state_error(self, state: str) -> StateMismatch | StateReused | StateSuperseded:
        fingerprint = _fingerprint(state)
        for entry in self._retired():
            if hmac.compare_digest(entry[1:], fingerprint):
                return StateReused() if entry[0] == _USED else StateSuperseded()
        return StateMismatch()

    def _records(self) -> list[list[Any]]:
        raw = self._session.get(PENDING_KEY)
        if not isinstance(raw, list):
            return []
        return [
            r
            for r in raw
            if isinstance(r, list)
            and len(r) == 3
            and isinstance(r[0], str)
            and isinstance(r[1], (int, float))
        ]

    def _store(self, records: list[list[Any]]) -> None:
        # An empty list is not kept: the session cookie is decoded on every request.
        if records:
            self._session[PENDING_KEY] = records
        else:
            self._session.pop(PENDING_KEY, None)

    def _retired(self) -> list[str]:
        """Retired states as ``reason + fingerprint`` strings, kept as one flat string in the
        session: cheaper to decode on every request than a nested list."""
        raw = self._session.get(RETIRED_KEY)
        return [e for e in raw.split(",") if len(e) > 1] if isinstance(raw, str) else []

    def _retire(self, state: str, reason: str) -> None:
        retired = [*self._retired(), reason + _fingerprint(state)]
        self._session[RETIRED_KEY] = ",".join(retired[-RETIRED_MEMORY:])


def carried_over(session: MutableMapping[str, Any]) -> dict[str, Any]:
    """The state bookkeeping to keep when the session is cleared at sign-in.

    Other tabs' pending sign-ins must survive so that each can finish, and the retired fingerprints
    must survive so that a replayed callback is reported as reused.
    """
    return {key: session[key] for key in (PENDING_KEY, RETIRED_KEY) if key in session}
