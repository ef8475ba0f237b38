"""OMI-confirmed sign-in: a one-time code that only the uid's owner can read proves who is at the browser.

OMI's redirect carries the uid unsigned, so anyone who starts a sign-in here can pair their own
state with someone else's uid. Two channels reach only the uid's owner: OMI's notification API (a
code pushed to the phone signed in to that account, typed back into this browser), and OMI's chat
(the browser shows a short code, the owner sends it to the app in OMI's chat, and OMI calls the
app's ``omi_confirm_sign_in`` tool signed with the owner's uid).

Everything that limits an attacker lives on the server, in a :class:`~flask_omi.keystore.RecordStore`,
under the pending confirmation's random id; the session only holds that id (see
:mod:`flask_omi.signin.confirm_records`). This module holds the codes and the message. Framework-neutral.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timezone

#: Session key of the pending confirmation's id, and of the uid confirmed in this session.
PENDING_CONFIRM_KEY = "_omi_confirm"
CONFIRMED_KEY = "_omi_confirmed"

CODE_DIGITS = 8
CODE_TTL = 300
#: Comparisons of one code, however many requests arrive at once.
MAX_TRIES = 5
#: Comparisons per uid per clock hour, across browsers and processes, counted before comparing.
MAX_COMPARISONS_PER_UID_PER_HOUR = 20
#: Chat confirmations tried per uid per clock hour (only the uid's owner can make them).
MAX_CHAT_TRIES_PER_UID_PER_HOUR = 20
RESEND_COOLDOWN = 60
#: The chat code: short, and without the letters and digits people confuse (I, L, O, 0, 1).
CHAT_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CHAT_CODE_LENGTH = 6
#: The chat tool OMI's assistant calls with the code the owner sent.
CHAT_TOOL_NAME = "omi_confirm_sign_in"
CHANNELS = ("notification", "chat")


def new_code() -> str:
    """8 random digits from :mod:`secrets`: one chance in 10^8 per comparison."""
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def new_chat_code() -> str:
    """6 characters without look-alikes: easy to type in OMI's chat, and only the uid's owner can send
    it there."""
    return "".join(secrets.choice(CHAT_CODE_ALPHABET) for _ in range(CHAT_CODE_LENGTH))


def grouped(code: str) -> str:
    """``12345678`` as ``1234 5678``: easier to read off a phone and type."""
    return f"{code[:4]} {code[4:]}"


def code_mac(key: bytes, record_id: str, uid: str, code: str) -> str:
    """What the store keeps of a code: never the code itself."""
    message = f"omi-confirm\n{record_id}\n{uid}\n{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def chat_index(key: bytes, uid: str, chat_code: str) -> str:
    """Where a chat code is found from what OMI's tool call carries: the uid and the code."""
    message = f"omi-confirm-chat\n{uid}\n{chat_code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


_NOT_CODE = re.compile(r"[\s-]")


def typed_code(typed: str | None) -> str | None:
    """The 8 digits typed (spaces and dashes allowed, as the code was shown), or None."""
    code = _NOT_CODE.sub("", typed or "")
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        return None
    return code


def typed_chat_code(typed: object) -> str | None:
    """The chat code as the person sent it (any case, spaces and dashes allowed), or None."""
    if not isinstance(typed, str) or len(typed) > 64:
        return None
    code = _NOT_CODE.sub("", typed).upper()
    if len(code) != CHAT_CODE_LENGTH or any(char not in CHAT_CODE_ALPHABET for char in code):
        return None
    return code


def hashed(value: str) -> str:
    """A uid or an address as the store's counters name it (not the value itself)."""
    return hashlib.sha256(value.encode()).hexdigest()[:24]


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
    """``Chrome on Windows``: the browser as it describes itself, in a few fixed words (no IP
    address, and nothing copied from the request: a requester can only pick among these words)."""
    agent = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in agent), "a browser")
    system = next((name for marker, name in _SYSTEMS if marker in agent), None)
    return f"{browser} on {system}" if system else browser


def message(site: str, code: str, browser: str, now: float) -> str:
    """The notification: which site asks (from configuration only), when, the code, and never to
    share it. The browser's description is the requester's word, and is labelled as such."""
    at = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%H:%M UTC")
    return (
        f"Your code to sign in to {site} is {grouped(code)}. Asked for at {at} (the browser says it "
        f"is {browser}). Never share this code. If you did not try to sign in, ignore this message."
    )
