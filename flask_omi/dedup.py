"""Webhook de-duplication: a delivery OMI retries runs its handler once, across instances.

OMI retries a durable conversation delivery (same ``X-Omi-Idempotency-Key``) when the answer is a
5xx, 408, 425 or 429 or the request timed out. Each key moves through three states here:

- new: this request claims it (``running``) and runs the handler;
- ``running``: another request is handling it right now; this one is answered 425 Too Early, which
  OMI retries, so the event is not lost if the first attempt then fails;
- ``done``: handled; the duplicate is answered 200 without running the handler.

A handler that fails releases the claim, so OMI's retry runs it again.

Set ``OMI_WEBHOOK_DEDUP`` to ``True`` (the default: :class:`MemoryDeliveryLedger`, one process),
the app's Redis client (shared by every instance), any :class:`DeliveryLedger`, or ``False``.
Framework-neutral.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

from .errors import OmiConfigError

Status = Literal["new", "running", "done"]
#: How long a claim may stay "running" before a crashed worker's claim is given up.
RUNNING_TTL = 300


@runtime_checkable
class DeliveryLedger(Protocol):
    def begin(self, key: str, ttl: int) -> Status:
        """Claim ``key`` as running unless it is there; return what it was ("new" if claimed)."""
        ...  # pragma: no cover - a protocol

    def finish(self, key: str, ttl: int) -> None:
        """Mark ``key`` done for ``ttl`` seconds."""
        ...  # pragma: no cover - a protocol

    def abandon(self, key: str) -> None:
        """Forget ``key``, so that a retry runs the handler again."""
        ...  # pragma: no cover - a protocol


class RedisDeliveryLedger:
    """Claims with ``SET NX EX``: atomic on the server, so one instance wins each key."""

    def __init__(self, redis: Any, prefix: str = "omi:delivery:") -> None:
        self._redis, self._prefix = redis, prefix

    def begin(self, key: str, ttl: int) -> Status:
        name = self._prefix + key
        for _ in range(2):  # the key may expire between SET and GET: then try once more
            if self._redis.set(name, b"running", nx=True, ex=min(ttl, RUNNING_TTL)):
                return "new"
            value = self._redis.get(name)
            if value is not None:
                return "done" if value in (b"done", "done") else "running"
        return "running"

    def finish(self, key: str, ttl: int) -> None:
        self._redis.set(self._prefix + key, b"done", ex=ttl)

    def abandon(self, key: str) -> None:
        self._redis.delete(self._prefix + key)


class MemoryDeliveryLedger:
    """An in-process ledger of at most ``max_entries`` keys; the oldest are forgotten first."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[Status, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries, self._clock = max_entries, clock

    def begin(self, key: str, ttl: int) -> Status:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] > now:
                return entry[0]
            self._store(key, "running", now + min(ttl, RUNNING_TTL))
            return "new"

    def finish(self, key: str, ttl: int) -> None:
        with self._lock:
            self._store(key, "done", self._clock() + ttl)

    def abandon(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _store(self, key: str, status: Status, expires: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (status, expires)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def resolve_ledger(value: object) -> DeliveryLedger | None:
    """``OMI_WEBHOOK_DEDUP`` as a ledger (a new memory ledger for ``True``; call once per app)."""
    if value is None or value is False:
        return None
    if value is True:
        return MemoryDeliveryLedger()
    if isinstance(value, DeliveryLedger):
        return value
    if callable(getattr(value, "set", None)) and callable(getattr(value, "get", None)):
        return RedisDeliveryLedger(value)
    raise OmiConfigError(
        "OMI_WEBHOOK_DEDUP must be True, False, a Redis client or a DeliveryLedger; "
        f"got {type(value).__name__}."
    )
