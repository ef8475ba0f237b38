"""OMI's ``v2`` signatures, which sign a whole request: chat-tool calls.

A tool call differs from a webhook: a GET tool carries its arguments in the query string, and one
app has many tool URLs under one secret. So ``v2`` covers the request itself. The signed message
is seven lines, each ending in a line feed, then the raw body (empty for GET)::

    v2
    <timestamp>
    <X-Omi-Delivery>
    <X-Omi-Event>            "chat_tool" for tool calls
    <METHOD>
    <canonical path>
    <canonical query>

A canonical path re-encodes each ``/``-separated segment after decoding it; a canonical query is
the decoded ``(name, value)`` pairs, each side re-encoded, sorted by name (stable, so repeated
names keep their order) and joined with ``&``. Bytes outside ``A-Z a-z 0-9 - . _ ~`` become
``%XX`` with upper-case hex. Host, scheme and port are not signed. The key is the destination's
secret as UTF-8, as for ``v1``, and the ``v2=`` values share ``X-Omi-Signature`` with its ``t=``.

(Read from OMI's ``backend/utils/webhook_signing.py``.) Framework-neutral.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from flask_omi.inbound.protocol import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TOOL_EVENT
from flask_omi.inbound.signing import DEFAULT_TOLERANCE, Secrets, check_signature, secret_list

SCHEME = "v2"


def _encode(text: str | bytes) -> str:
    return quote(text, safe="")  # everything but the unreserved characters, upper-case hex


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """The query as OMI's ``v2`` scheme signs it: pairs decoded, sorted, encoded again."""
    encoded = sorted(((_encode(name), _encode(value)) for name, value in pairs), key=lambda pair: pair[0])
    return "&".join(f"{name}={value}" for name, value in encoded)


#: A path made only of these is its own canonical form (the common case, checked first).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._~/-]*")


def canonical_path(path: str) -> str:
    """The path as OMI's ``v2`` scheme signs it, so that equivalent spellings sign alike."""
    if not path:
        return "/"
    if _PLAIN_PATH.fullmatch(path):
        return path
    return "/".join(_encode(unquote_to_bytes(segment)) for segment in path.split("/"))


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The decoded pairs of a raw query string, blank values kept, as OMI reads them."""
    return parse_qsl(raw_query, keep_blank_values=True)


def message_to_sign(
    timestamp: int, delivery_id: str, event: str, method: str, path: str, query: str, body: bytes
) -> bytes:
    """The exact bytes a ``v2`` signature covers; ``query`` is the raw query string.

    Raises ValueError for a delivery id, event or method that could break the line framing.
    """
    for part in (delivery_id, event, method):
        if not part or not part.isascii() or not part.isprintable():
            raise ValueError("delivery id, event and method must be printable ASCII")
    signed_path, signed_query = canonical_path(path), canonical_query(query_pairs(query)) if query else ""
    head = f"{SCHEME}\n{timestamp}\n{delivery_id}\n{event}\n{method.upper()}\n{signed_path}\n{signed_query}\n"
    return head.encode("ascii") + body


def compute_request_signature(
    secret: str,
    timestamp: int,
    *,
    delivery_id: str,
    event: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
) -> str:
    """The ``v2`` HMAC-SHA256 over the seven signed lines and the raw body, as OMI computes it."""
    message = message_to_sign(timestamp, delivery_id, event, method, path, query, body)
    return hmac.digest(secret.encode(), message, hashlib.sha256).hex()


def verify_request_signature(
    secret: Secrets,
    header: str | None,
    *,
    delivery_id: str,
    event: str,
    method: str,
    path: str,
    query: str,
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Raise :class:`~flask_omi.errors.InboundSignatureError` unless ``header`` carries a fresh
    ``v2`` signature of exactly this request; return its canonical identity."""

    def expected(key: str, timestamp: int) -> str:
        return compute_request_signature(
            key,
            timestamp,
            delivery_id=delivery_id,
            event=event,
            method=method,
            path=path,
            query=query,
            body=body,
        )

    return check_signature(header, SCHEME, expected, secret, now=now, tolerance=tolerance)


def signed_headers(
    secret: Secrets, *, method: str, path: str, query: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers OMI sends with a signed tool call, for tests and the fake OMI (one ``v2``
    value per secret)."""
    t = int(time.time()) if timestamp is None else timestamp
    delivery_id = str(uuid.uuid4())
    signatures = ",".join(
        f"{SCHEME}="
        + compute_request_signature(
            key,
            t,
            delivery_id=delivery_id,
            event=TOOL_EVENT,
            method=method,
            path=path,
            query=query,
            body=body,
        )
        for key in secret_list(secret)
    )
    return {
        SIGNATURE_HEADER: f"t={t},{signatures}",
        EVENT_HEADER: TOOL_EVENT,
        DELIVERY_HEADER: delivery_id,
    }
