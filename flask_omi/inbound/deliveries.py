"""One run per delivery: de-duplicating OMI's retries and refusing replayed signatures.

OMI retries a durable conversation delivery (same ``X-Omi-Idempotency-Key``) after a 5xx, 408,
425, 429 or a timeout. Neither that key nor ``X-Omi-Delivery`` is signed, so two guards work together
(``OMI_WEBHOOK_DEDUP``; one Redis store for both, or two bounded stores in process):

- **De-duplication**, keyed on the idempotency key *and* a digest of the signed uid and body: a
  retry of the same delivery runs the handler once; someone re-posting a captured delivery under
  the next delivery's key claims nothing of that delivery's.
- **Replay refusal**: a signature (its ``t=`` and values) is accepted once while it is fresh (twice
  the tolerance). A captured signed delivery posted again, under any key, is refused with 409.

A failed handler (5xx) releases both, so OMI's retry runs it again. Framework-neutral.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from ..stores import RUNNING_TTL, KeyStore, MemoryStore, StoreFull, claim_all, hashed_key

Verdict = Literal["run", "done", "running", "replayed"]

#: How long OMI may retry one conversation delivery, in seconds. OMI's durable finalization job
#: makes at most 5 attempts (``LISTEN_FINALIZATION_TASKS_MAX_ATTEMPTS``), each leased for up to
#: 1,500 s (``DEFAULT_LEASE_SECONDS``), its queue waits at most 60 s between attempts and a missed
#: hand-off is replayed after 300 s: 5 x (1,500 + 60) + 300 = 8,100 s, rounded up to 3 hours.
#: (``backend/database/conversation_finalization_jobs.py`` 03e60a48, ``backend/utils/queue_redis.py``
#: and ``backend/utils/pusher_finalization.py`` 0d7d9f2d.) The default ``OMI_WEBHOOK_DEDUP_TTL``.
RETRY_HORIZON = 3 * 3600
#: The in-process stores' bounds (``OMI_WEBHOOK_DEDUP = True``). A handled delivery is kept for
#: ``OMI_WEBHOOK_DEDUP_TTL`` and a used signature for twice the tolerance, whatever else arrives:
#: a full store refuses new deliveries (503, which OMI retries) rather than forget one. So one
#: process takes at most 100,000 / 10,800 s = 9 conversation deliveries a second and 100,000 / 600
#: s = 166 signed deliveries a second, sustained, at the default settings; above that, or with
#: more than one process, the shared (Redis) store is required.
DEDUP_MAX_ENTRIES = 100_000
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
