"""One run per delivery: de-duplicating OMI's retries and refusing replayed signatures.

OMI retries a durable conversation delivery (same ``X-Omi-Idempotency-Key``) after a 5xx, 408,
425, 429 or a timeout. Neither that key nor ``X-Omi-Delivery`` is signed, so two guards share the
store (``OMI_WEBHOOK_DEDUP``):

- **De-duplication**, keyed on the idempotency key *and* a digest of the signed uid and body: a
  retry of the same delivery runs the handler once; someone re-posting a captured delivery under
  the next delivery's key claims nothing of that delivery's.
- **Replay refusal**: a signature (its ``t=`` and values) is accepted once while it is fresh (twice
  the tolerance). A captured signed delivery posted again, under any key, is refused with 409.

A failed handler (5xx) releases both, so OMI's retry runs it again. Framework-neutral.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from ..stores import RUNNING_TTL, KeyStore, hashed_key

Verdict = Literal["run", "done", "running", "replayed"]


class Admission(NamedTuple):
    """What the store said of a delivery, and the keys this request claimed (to settle later)."""

    verdict: Verdict
    claimed: tuple[str, ...] = ()


def admit(
    store: KeyStore,
    *,
    kind: str,
    uid: str,
    body: bytes,
    idempotency_key: str | None,
    signature: str | None,
    tolerance: float,
) -> Admission:
    """Claim what this delivery needs before its handler runs; raises whatever the store raises."""
    claimed: list[str] = []
    if idempotency_key is not None:
        digest = hashed_key(uid.encode() + b"\n" + body)[:32]
        key = f"{kind}:{idempotency_key}:{digest}"
        seen = store.claim(key, RUNNING_TTL)
        if seen != "new":
            return Admission(seen)  # "done": answered 200 unrun; "running": 425, which OMI retries
        claimed.append(key)
    if signature is not None:
        key = f"signature:{signature}"  # "{t}:{hex}": an HMAC, not a secret, and already short
        if store.claim(key, int(2 * tolerance)) != "new":
            for other in claimed:
                store.abandon(other)
            return Admission("replayed")
        claimed.append(key)
    return Admission("run", tuple(claimed))


def settle(store: KeyStore, admission: Admission, *, failed: bool, ttl: int) -> None:
    """After the handler: remember the delivery as done for ``ttl`` seconds, or, when it failed,
    forget every claim so that OMI's retry (re-signed, or within the same second) runs it again."""
    for key in admission.claimed:
        if failed:
            store.abandon(key)
        elif not key.startswith("signature:"):
            store.finish(key, ttl)
