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

from .errors import WebhookSignatureError
from .validation import is_ascii_digits

SIGNATURE_HEADER = "X-Omi-Signature"
EVENT_HEADER = "X-Omi-Event"
DELIVERY_HEADER = "X-Omi-Delivery"
IDEMPOTENCY_HEADER = "X-Omi-Idempotency-Key"
DEFAULT_TOLERANCE = 300


def compute_signature(secret: str, timestamp: int, uid: str, body: bytes) -> str:
    message = f"{timestamp}.{uid}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, uid: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value OMI sends for this body, for tests and the fake OMI."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={compute_signature(secret, t, uid, body)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and is_ascii_digits(value, 12):
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError("signature_malformed", "X-Omi-Signature must be 't=UNIX,v1=HEX'.")
    return timestamp, signatures


def verify_signature(
    secret: str,
    header: str | None,
    uid: str,
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Raise :class:`WebhookSignatureError` unless ``header`` signs ``uid`` and ``body`` recently."""
    if not header:
        raise WebhookSignatureError("signature_missing", "This endpoint requires an X-Omi-Signature header.")
    timestamp, signatures = _parse(header)
    if abs(now - timestamp) > tolerance:
        raise WebhookSignatureError(
            "signature_expired", f"The signature's timestamp is more than {int(tolerance)} s from now."
        )
    expected = compute_signature(secret, timestamp, uid, body)
    # Every candidate is compared (several v1 values are allowed while a secret is rotated).
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.lower().encode())
    if not matched:
        raise WebhookSignatureError("signature_mismatch", "The signature does not match the request.")
