"""OMI's webhook signatures: ``X-Omi-Signature: t=UNIX,v1=HEX``.

``v1`` is HMAC-SHA256, keyed with the destination's secret (the whole ``whsec_...`` string, UTF-8),
over ``"{t}.{uid}."`` followed by the raw body. Binding the uid stops a signed body from being
replayed for another user; the timestamp, checked within a tolerance, limits replays in time.
Framework-neutral.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

from flask_omi.config import DEFAULTS
from flask_omi.errors import InboundSignatureError
from flask_omi.inbound.protocol import SIGNATURE_HEADER
from flask_omi.validation import is_ascii_digits

DEFAULT_TOLERANCE: int = DEFAULTS["OMI_SIGNATURE_TOLERANCE"]


Secrets = str | Sequence[str]


def secret_list(secrets: Secrets) -> tuple[str, ...]:
    """One secret, or several while OMI rotates the app's secret (the old one stays valid 24 h)."""
    return (secrets,) if isinstance(secrets, str) else tuple(secrets)


def compute_signature(secret: str, timestamp: int, uid: str, body: bytes) -> str:
    """The ``v1`` HMAC-SHA256 over ``{t}.{uid}.`` and the raw body, keyed with the whole ``whsec_``
    secret, as OMI computes it."""
    message = f"{timestamp}.{uid}.".encode() + body
    return hmac.digest(secret.encode(), message, hashlib.sha256).hex()


def signature_header(secret: Secrets, uid: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value OMI sends for this body, for tests and the fake OMI: one ``v1`` value per
    secret (two while OMI rotates the app's secret)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t}," + ",".join(f"v1={compute_signature(key, t, uid, body)}" for key in secret_list(secret))


def parse_header(header: str, scheme: str) -> tuple[int, list[str]]:
    """``t=UNIX,<scheme>=HEX[,<scheme>=HEX]``: the timestamp and every signature of ``scheme``.

    Other schemes' signatures are ignored, so a ``v1`` value never counts for ``v2`` and back.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and is_ascii_digits(value, 12):
            timestamp = int(value)
        elif key == scheme and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InboundSignatureError(
            "signature_malformed", f"{SIGNATURE_HEADER} must be 't=UNIX,{scheme}=HEX'."
        )
    return timestamp, signatures


def check_signature(
    header: str | None,
    scheme: str,
    expected: Callable[[str, int], str],
    secrets: Secrets,
    *,
    now: float,
    tolerance: float,
) -> str:
    """Raise :class:`InboundSignatureError` unless ``header`` carries a fresh ``scheme`` signature
    equal to ``expected(secret, timestamp)`` for one of ``secrets``. Every pair is compared in
    constant time: OMI sends a signature per secret while it rotates one, and the app may accept
    the old and the new secret at once (``OMI_SIGNING_SECRET`` as a list).

    Returns what was signed and verified, canonically (``"{t}:{hex}"``): the identity of this
    signature for replay refusal. The raw header is not one: extra parameters or upper-case hex
    would give one signature many spellings."""
    if not header:
        raise InboundSignatureError(
            "signature_missing", f"This endpoint requires an {SIGNATURE_HEADER} header."
        )
    timestamp, signatures = parse_header(header, scheme)
    if abs(now - timestamp) > tolerance:
        raise InboundSignatureError(
            "signature_expired", f"The signature's timestamp is more than {int(tolerance)} s from now."
        )
    verified: str | None = None
    for secret in secret_list(secrets):
        wanted = expected(secret, timestamp)
        matched = False
        for candidate in signatures:
            # compare_digest takes ASCII text; anything else cannot match a hex digest anyway.
            matched |= candidate.isascii() and hmac.compare_digest(wanted, candidate.lower())
        if matched and verified is None:
            verified = f"{timestamp}:{wanted}"
    if verified is None:
        raise InboundSignatureError("signature_mismatch", "The signature does not match the request.")
    return verified


def verify_signature(
    secret: Secrets,
    header: str | None,
    uid: str,
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Raise :class:`InboundSignatureError` unless ``header`` signs ``uid`` and ``body`` recently
    with ``secret`` (or one of several); return the verified signature's canonical identity."""
    return check_signature(
        header,
        "v1",
        lambda key, t: compute_signature(key, t, uid, body),
        secret,
        now=now,
        tolerance=tolerance,
    )
