"""One run per delivery: de-duplicating OMI's retries and refusing replayed signatures.

OMI retries a durable conversation delivery (same ``X-Omi-Idempotency-Key``) after a 5xx, 408,
425, 429 or a timeout. Neither that key nor ``X-Omi-Delivery`` is signed, so two guards work together
(``OMI_WEBHOOK_STORE``; one Redis store for both, or two bounded stores in process):

- **De-duplication**, keyed on the idempotency key *and* a digest of the signed uid and body: a
  retry of the same delivery runs the handler once; someone re-posting a captured delivery under
  the next delivery's key claims nothing of that delivery's.
- **Replay refusal**: a signature (its ``t=`` and values) is accepted once while it is fresh (twice
  the tolerance). A captured signed delivery posted again, under any key, is refused with 409.

A failed handler (5xx) releases both, so OMI's retry runs it again. Framework-neutral.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from flask_omi.stores import RUNNING_TTL, KeyStore, MemoryStore, StoreFull, claim_all, hashed_key

Verdict = Literal["run", "done", "running", "replayed"]

#: Used signatures kept in process beside an in-process ledger (whose own bound, with its failure
#: policy, is ``config.STORE_SETTINGS``'s): each is kept for twice the tolerance and refused when
#: the store is full, so one process takes at most 100,000 / 600 s = 166 signed deliveries a
#: second, sustained; above that, or with more than one process, the shared (Redis) store.
REPLAY_MAX_ENTRIES = 100_000


def in_process_replay_store() -> MemoryStore:
    """The store of used signatures beside an in-process de-duplication ledger: kept apart, so
    that a burst of live transcripts (signed, never retried) cannot crowd out handled deliveries."""
    return MemoryStore(REPLAY_MAX_ENTRIES, when_full="refuse")


class Admission(NamedTuple):
    """What the store said of a delivery, and the keys this request claimed (to settle later)."""

    verdict: Verdict
    claimed: tuple[str, ...] = ()


def admit(
    ledger: KeyStore,
    replays: KeyStore,
    *,
    kind: str,
    uid: str,
    body: bytes,
    idempotency_key: str | None,
    signature: str | None,
    tolerance: float,
) -> Admission:
    """Claim what this delivery needs before its handler runs, all or nothing: in one round trip
    when both guards share a store (Redis). Raises whatever the store raises."""
    dedup_key = None
    if idempotency_key is not None:
        digest = hashed_key(uid.encode() + b"\n" + body)[:32]
        dedup_key = f"{kind}:{idempotency_key}:{digest}"
    # "{t}:{hex}": an HMAC, not a secret, and already short.
    signature_key = None if signature is None else f"signature:{signature}"
    if dedup_key is not None and signature_key is not None and ledger is replays:
        # One store (Redis): both claims together, in one round trip.
        index, seen = claim_all(ledger, ((dedup_key, RUNNING_TTL), (signature_key, int(2 * tolerance))))
        if index == 1:
            return Admission("replayed")
        if index == 0:
            return Admission("done" if seen == "done" else "running")
        return Admission("run", (dedup_key, signature_key))
    if dedup_key is not None:
        seen = ledger.claim(dedup_key, RUNNING_TTL)
        if seen != "new":
            # "done": answered 200 unrun; "running": 425, which OMI retries.
            return Admission("done" if seen == "done" else "running")
    if signature_key is not None and replays.claim(signature_key, int(2 * tolerance)) != "new":
        if dedup_key is not None:
            ledger.abandon(dedup_key)
        return Admission("replayed")
    return Admission("run", tuple(key for key in (dedup_key, signature_key) if key is not None))


def admit_locally(store: MemoryStore, signature: str, tolerance: float) -> Admission:
    """Replay refusal for a live delivery while the shared store is out of reach: in this
    process's memory, for the signature's lifetime (a full one refuses, as a replay guard must)."""
    key = f"signature:{signature}"
    try:
        fresh = store.claim(key, int(2 * tolerance)) == "new"
    except StoreFull:
        return Admission("replayed")
    return Admission("run", (key,)) if fresh else Admission("replayed")


def settle(ledger: KeyStore, replays: KeyStore, admission: Admission, *, failed: bool, ttl: int) -> None:
    """After the handler: remember the delivery as done for ``ttl`` seconds, or, when it failed,
    forget every claim so that OMI's retry (re-signed, or within the same second) runs it again."""
    for key in admission.claimed:
        is_signature = key.startswith("signature:")
        if failed:
            (replays if is_signature else ledger).abandon(key)
        elif not is_signature:
            ledger.finish(key, ttl)
