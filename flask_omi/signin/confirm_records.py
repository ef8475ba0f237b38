"""Pending sign-in confirmations kept on the server, and every budget that limits an attacker.

Flask's default session is a cookie the client can copy and send again, so nothing here is kept
in it: a pending confirmation is a record in the store under a random id, and the session only
points to that id. Every limit is a counter or a claim in the same store, taken *before* the work
it limits, so that it holds however many requests arrive at once, from however many processes:

- each comparison of a typed code first takes one of the uid's comparisons this hour, then one of
  the code's :data:`~flask_omi.signin.confirm.MAX_TRIES`; a spent budget refuses the right code too;
- a right code is claimed once (``used``), so a copy of the cookie from any moment is worth nothing;
- codes started from one client address, and codes sent to one uid through OMI, are counted per
  clock hour (OMI's own notification limit counts UTC clock hours too);
- a chat confirmation is counted per uid, apart from the browser's comparisons: only the uid's
  owner can make OMI call the tool, so no one else can spend that budget.

Failure policy: the store's. A store that fails or is full refuses (the caller answers 503). A
security budget never forgets. Framework-neutral.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from typing import Literal

from flask_omi.keystore import RecordStore
from flask_omi.signin.confirm import (
    CODE_TTL,
    MAX_CHAT_TRIES_PER_UID_PER_HOUR,
    MAX_COMPARISONS_PER_UID_PER_HOUR,
    MAX_TRIES,
    chat_index,
    code_mac,
    hashed,
    new_chat_code,
    new_code,
    typed_chat_code,
    typed_code,
)

Outcome = Literal["confirmed", "wrong", "tries_spent", "budget_spent", "used", "missing"]
SendLimit = Literal["codes_per_address", "sends_per_uid"]


@dataclass
class PendingConfirmation:
    """What the store holds while a code is on its way: never the code itself."""

    id: str
    uid: str
    next: str | None
    code_mac: str
    sent_at: float
    #: Why the confirmation was asked: "sign-in" (OMI_CONFIRM_SIGNIN=True) or "step-up".
    purpose: str = "sign-in"
    #: Whether the code went out through OMI's notification API (not when the quota was spent).
    notified: bool = True
    #: The code the page shows for OMI's chat, or None when the chat channel is off. Not a secret
    #: from the browser that shows it: only the uid's owner can make OMI pass it on.
    chat_code: str | None = None

    def expired(self, now: float) -> bool:
        """Whether the code's 5 minutes are over (the record itself outlives them by a minute)."""
        return now - self.sent_at > CODE_TTL


@dataclass(frozen=True)
class Opened:
    """A new pending confirmation and the code to send through OMI, then forget."""

    record: PendingConfirmation
    #: The code to send through OMI, then forget.
    code: str


#: Records outlive their code by a minute, for clocks that differ between instances.
_RECORD_TTL = CODE_TTL + 60


class ConfirmLedger:
    """The confirmation records and budgets of one app, in ``store``; ``key`` keys the MACs."""

    def __init__(self, store: RecordStore, key: bytes) -> None:
        self.store, self.key = store, key

    # -- budgets taken before a code exists --------------------------------------------------------
    def take_start(self, address: str, now: float, per_address: int) -> bool:
        """One more code started from ``address`` this hour; False once its budget is spent."""
        hour = int(now // 3600)
        return self.store.count(f"confirm-codes-from:{hashed(address)}:{hour}", 3600) <= per_address

    def take_send(self, uid: str, now: float, per_uid: int) -> bool:
        """One more code sent to ``uid`` through OMI this hour; False once its budget is spent."""
        hour = int(now // 3600)
        return self.store.count(f"confirm-sends:{hashed(uid)}:{hour}", 3600) <= per_uid

    # -- records -----------------------------------------------------------------------------------
    def new(
        self, uid: str, next_path: str | None, purpose: str, now: float, *, notify: bool, chat: bool
    ) -> Opened:
        """A pending confirmation and its code, not yet stored: :meth:`save` it once the code is
        sent (or, with ``notified`` off, once sending was given up for the chat channel)."""
        record_id = secrets.token_urlsafe(18)
        code = new_code()
        mac = code_mac(self.key, record_id, uid, code)
        chat_code = new_chat_code() if chat else None
        return Opened(
            PendingConfirmation(record_id, uid, next_path, mac, now, purpose, notify, chat_code), code
        )

    def save(self, record: PendingConfirmation) -> None:
        """Store ``record`` (and its chat code's index) once its code was sent or sending was given up."""
        self.store.put(f"confirm:{record.id}", json.dumps(asdict(record)), _RECORD_TTL)
        if record.chat_code is not None:
            index = chat_index(self.key, record.uid, record.chat_code)
            self.store.put(f"confirm-chat:{index}", record.id, CODE_TTL)

    def load(self, record_id: object) -> PendingConfirmation | None:
        """The record a session points to, or None: a missing, malformed or foreign id finds nothing."""
        if not isinstance(record_id, str) or not record_id or len(record_id) > 64:
            return None
        raw = self.store.get(f"confirm:{record_id}")
        if raw is None:
            return None
        try:
            record = PendingConfirmation(**json.loads(raw))
        except (TypeError, ValueError):
            return None
        return record if record.id == record_id else None

    def retire(self, record: PendingConfirmation) -> None:
        """End ``record``: its codes, typed or sent in the chat, no longer confirm anything."""
        self.store.claim(f"confirm-used:{record.id}", _RECORD_TTL)

    # -- the code typed into the browser -----------------------------------------------------------
    def check_code(self, record: PendingConfirmation, typed: str | None, now: float) -> tuple[Outcome, int]:
        """Compare ``typed`` with ``record``'s code, within every budget; returns the outcome and
        the tries left. The budgets are taken first, atomically, so that at most ``MAX_TRIES``
        comparisons of one code happen, however many requests arrive at once."""
        hour = int(now // 3600)
        spent = self.store.count(f"confirm-compared:{hashed(record.uid)}:{hour}", 3600)
        if spent > MAX_COMPARISONS_PER_UID_PER_HOUR:
            return "budget_spent", 0
        tries = self.store.count(f"confirm-tries:{record.id}", _RECORD_TTL)
        if tries > MAX_TRIES:
            return "tries_spent", 0
        code = typed_code(typed)
        right = code is not None and secrets.compare_digest(
            code_mac(self.key, record.id, record.uid, code), record.code_mac
        )
        if not right:
            return ("tries_spent" if tries >= MAX_TRIES else "wrong"), MAX_TRIES - tries
        return self._use(record), 0

    def _use(self, record: PendingConfirmation) -> Outcome:
        """The one request that claims a right code first wins; every other one is refused."""
        return "confirmed" if self.store.claim(f"confirm-used:{record.id}", _RECORD_TTL) == "new" else "used"

    # -- the code sent in OMI's chat ---------------------------------------------------------------
    def confirm_from_chat(
        self, uid: str, typed: object, now: float
    ) -> tuple[Outcome, PendingConfirmation | None]:
        """OMI called the chat tool for ``uid`` (signed) with ``typed``: mark the pending sign-in
        of *that* uid with *that* code confirmed, once. The browser completes it (:meth:`take_chat`)."""
        hour = int(now // 3600)
        if self.store.count(f"confirm-chat-tries:{hashed(uid)}:{hour}", 3600) > (
            MAX_CHAT_TRIES_PER_UID_PER_HOUR
        ):
            return "budget_spent", None
        code = typed_chat_code(typed)
        if code is None:
            return "wrong", None
        record_id = self.store.get(f"confirm-chat:{chat_index(self.key, uid, code)}")
        record = self.load(record_id)
        if record is None or record.uid != uid or record.expired(now):
            return "wrong", None
        if self.store.claim(f"confirm-chat-ok:{record.id}", _RECORD_TTL) != "new":
            return "used", record
        return "confirmed", record

    def take_chat(self, record: PendingConfirmation) -> Outcome:
        """The browser asks whether its chat code was sent: ``confirmed`` once, if it was."""
        if self.store.get(f"confirm-chat-ok:{record.id}") is None:  # the tool's claim, if any
            return "missing"
        return self._use(record)
