"""Checks for the two untrusted strings a sign-in carries: the uid and the ``next`` target.

Framework-neutral: plain functions over ``str`` so they can be reused outside Flask and tested
exhaustively.
"""

from __future__ import annotations

import re

#: Firebase uids are at most 128 characters. OMI pastes the uid into URLs without encoding, so only
#: characters that survive that unharmed (RFC 3986 "unreserved") can arrive intact anyway.
UID_MAX_LENGTH = 128
_UID_RE = re.compile(rf"[A-Za-z0-9._~-]{{1,{UID_MAX_LENGTH}}}")

#: A ``next`` longer than this is dropped: it lives in the session cookie, which browsers cap at 4 KB,
#: and up to ``OMI_MAX_PENDING_SIGNINS`` of them can be stored at once.
NEXT_MAX_LENGTH = 400


def is_valid_uid(uid: object) -> bool:
    """True when ``uid`` looks like a uid OMI could have sent (it proves nothing about who it is).

    A uid made only of dots is refused: apps put uids in paths and keys, where ``.`` and ``..``
    are traversal segments.
    """
    return isinstance(uid, str) and _UID_RE.fullmatch(uid) is not None and uid.strip(".") != ""


def is_ascii_digits(text: str, max_length: int) -> bool:
    """Plain ``0-9`` only: ``str.isdigit`` also accepts ``²`` or ``٣``, which ``int()`` then
    refuses or reads as another number."""
    return 0 < len(text) <= max_length and text.isascii() and text.isdigit()


def ascii_int(text: str, max_digits: int = 18) -> int | None:
    """``text`` as an int if it is an optional ``-`` then plain ``0-9`` digits, else None. The digit
    bound keeps a hostile header or query value from costing a long ``int()`` conversion."""
    digits = text[1:] if text.startswith("-") else text
    return int(text) if is_ascii_digits(digits, max_digits) else None


def safe_next_path(target: object) -> str | None:
    """Return ``target`` if a browser would resolve it to a path on this same origin, else None.

    Only a path-absolute reference is accepted: one leading ``/`` not followed by ``/`` or ``\\``
    (browsers read both as the start of a host), no backslash anywhere, and only printable ASCII,
    since browsers strip tabs and newlines (``/\\t/evil.com`` becomes ``//evil.com``) and map some
    Unicode look-alikes of ``/`` to ``/``. Anything else, including every absolute URL, is refused
    rather than repaired.
    """
    if not isinstance(target, str) or not 1 <= len(target) <= NEXT_MAX_LENGTH:
        return None
    if target[0] != "/" or target[1:2] in ("/", "\\"):
        return None
    if "\\" in target or not all("!" <= ch <= "~" for ch in target):
        return None
    return target
