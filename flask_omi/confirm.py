"""OMI-confirmed sign-in: a one-time code pushed to the uid's own phone proves who is at the browser.

OMI's redirect carries the uid unsigned, so anyone who starts a sign-in here can pair their own
state with someone else's uid. OMI's notification API reaches only the device signed in to that
uid's OMI account: a code sent there, typed back into this browser, proves that the person at the
browser can read that account's notifications.

The code: 8 digits from :mod:`secrets`, shown as ``1234 5678``; kept only as an HMAC (keyed with the
app's ``SECRET_KEY``) over this pending sign-in's random nonce, the uid and the code, in this
browser's session; valid for :data:`CODE_TTL` seconds, used once, compared in constant time, at most
:data:`MAX_TRIES` wrong tries per code and :data:`MAX_WRONG_PER_UID_PER_HOUR` per uid across every
browser and process (through the store ``OMI_STATE_REGISTRY`` names). Framework-neutral.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from .stores import KeyStore

#: Session key of the pending confirmation, and of the uid confirmed in this session (step-up).
PENDING_CONFIRM_KEY = "_omi_confirm"
CONFIRMED_KEY = "_omi_confirmed"

CODE_DIGITS = 8
CODE_TTL = 300
MAX_TRIES = 5
#: Wrong codes accepted per uid per clock hour, across browsers and processes.
MAX_WRONG_PER_UID_PER_HOUR = 20
RESEND_COOLDOWN = 60


@dataclass
class PendingConfirmation:
    """What the session holds while a code is on its way: never the code itself."""

    uid: str
    next: str | None
    nonce: str
    code_mac: str
    sent_at: float
    tries: int = 0
    #: Why the confirmation was asked: "sign-in" (OMI_CONFIRM_SIGNIN=True) or "step-up".
    purpose: str = "sign-in"

    def as_session_value(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session_value(cls, value: Any) -> PendingConfirmation | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(**value)
        except TypeError:
            return None

    def expired(self, now: float) -> bool:
        return now - self.sent_at > CODE_TTL


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def grouped(code: str) -> str:
    """``12345678`` as ``1234 5678``: easier to read off a phone and type."""
    return f"{code[:4]} {code[4:]}"


def code_mac(key: bytes, nonce: str, uid: str, code: str) -> str:
    message = f"omi-confirm\n{nonce}\n{uid}\n{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def pending_for(
    key: bytes, uid: str, next_path: str | None, now: float, purpose: str
) -> tuple[PendingConfirmation, str]:
    """A fresh pending confirmation and its code (to send, then forget)."""
    code = new_code()
    nonce = secrets.token_urlsafe(16)
    return PendingConfirmation(uid, next_path, nonce, code_mac(key, nonce, uid, code), now, 0, purpose), code


_NOT_DIGITS = re.compile(r"[\s-]")


def matches(key: bytes, pending: PendingConfirmation, typed: str) -> bool:
    """Whether ``typed`` (spaces and dashes allowed, as the code was shown) is this pending code."""
    code = _NOT_DIGITS.sub("", typed or "")
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        return False
    return hmac.compare_digest(code_mac(key, pending.nonce, pending.uid, code), pending.code_mac)


def count_wrong_guess(store: KeyStore, uid: str, now: float) -> bool:
    """Record one wrong code for ``uid`` in this clock hour; False once the hour's budget is spent.

    Each wrong guess claims the next of a fixed number of slots, so the bound holds across browsers
    and processes with any :class:`~flask_omi.stores.KeyStore` (claims are atomic)."""
    hour = int(now // 3600)
    digest = hashlib.sha256(uid.encode()).hexdigest()[:24]
    for slot in range(MAX_WRONG_PER_UID_PER_HOUR):
        if store.claim(f"confirm-wrong:{digest}:{hour}:{slot}", 3600) == "new":
            return True
    return False


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))  # fmt: skip


def describe_browser(user_agent: str | None) -> str:
    """``Chrome on Windows``: where a request came from, in words a person knows (no IP address)."""
    agent = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in agent), "a browser")
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    return f"{browser} on {system}" if system else browser


def message(site: str, code: str, browser: str, now: float) -> str:
    """The notification: who asks, from where and when, the code, and never to share it."""
    at = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%H:%M UTC")
    return (
        f"Your code to sign in to {site} is {grouped(code)}. Requested from {browser} at {at}. "
        "Never share this code. If you did not try to sign in, ignore this message."
    )
