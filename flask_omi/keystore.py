"""The key store: "has this been seen?", answered atomically for everything that shares it.

A key moves through three states: absent; ``running`` (claimed by :meth:`KeyStore.claim`); ``done``
(:meth:`KeyStore.finish`). :meth:`KeyStore.abandon` forgets it. Every entry expires after the time
its caller gives. Both backends also keep small records and counters (:class:`RecordStore`: ``put``,
``get``, ``count``), for what must live on the server rather than in a cookie a client can copy: a
pending sign-in confirmation and its budgets. Two backends, side by side:

- :class:`MemoryStore`: this process only, bounded; what happens when it is full is the *use's*
  failure policy, chosen by the caller (``when_full``);
- :class:`RedisStore`: every instance; each claim is one script on the server (one round trip).

Which store a setting names is :mod:`flask_omi.stores`'s. Framework-neutral.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

logger = logging.getLogger("flask_omi")

Claim = Literal["new", "running", "done"]
WhenFull = Literal["refuse", "forget_oldest"]
#: How long a webhook delivery's claim may stay "running": twice OMI's 30 s read timeout. A handler
#: still running then has had its delivery given up by OMI, whose retry may take the claim over;
#: a crashed worker's claim is not held against OMI's retries for long.
RUNNING_TTL = 60


class StoreFull(RuntimeError):
    """A :class:`MemoryStore` with ``when_full="refuse"`` has no room for a new live key."""


@runtime_checkable
class KeyStore(Protocol):
    """Claims on keys, atomic across everything that shares the store."""

    def claim(self, key: str, ttl: int) -> Claim:
        """Mark ``key`` running for ``ttl`` seconds unless it is there; return what it was
        (``"new"``: this call claimed it)."""
        ...  # pragma: no cover - a protocol

    def finish(self, key: str, ttl: int) -> None:
        """Mark ``key`` done for ``ttl`` seconds."""
        ...  # pragma: no cover - a protocol

    def abandon(self, key: str) -> None:
        """Forget ``key``, so that the next claim is new."""
        ...  # pragma: no cover - a protocol


@runtime_checkable
class RecordStore(KeyStore, Protocol):
    """A :class:`KeyStore` that also keeps short records and counters, atomically."""

    def put(self, key: str, value: str, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds."""
        ...  # pragma: no cover - a protocol

    def get(self, key: str) -> str | None:
        """The value stored under ``key`` (by :meth:`put`, or a claim's own), or None."""
        ...  # pragma: no cover - a protocol

    def count(self, key: str, ttl: int) -> int:
        """Add one to the counter ``key`` and return it; a new counter lives ``ttl`` seconds."""
        ...  # pragma: no cover - a protocol


class MemoryStore:
    """A store in this process's memory, of at most ``max_entries`` live keys.

    When it is full, ``when_full`` decides: ``"refuse"`` raises :class:`StoreFull` (a guard against
    replays must never forget a live key), ``"forget_oldest"`` drops the least recently written
    key (a de-duplication that forgets runs a handler twice at worst).
    """

    def __init__(
        self,
        max_entries: int = 100_000,
        *,
        when_full: WhenFull = "refuse",
        clock: Callable[[], float] = time.monotonic,
        name: str = "An in-process store",
    ) -> None:
        #: A claim ("running", "done"), a record (other text) or a counter (an int), and its expiry.
        self._entries: dict[str, tuple[Any, float]] = {}
        #: Every write's (expiry, key), oldest write first. An item whose key has since been written
        #: again or forgotten is stale and skipped: this finds expired keys without scanning.
        self._writes: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()
        self._max_entries, self._when_full = max_entries, when_full
        #: What "now" is for expiry. Replace it in tests and benchmarks to move time.
        self.clock = clock
        self._swept = float("-inf")
        #: Live keys dropped to make room (``forget_oldest`` only): a de-duplication that forgot
        #: a delivery may run its handler again if OMI retries it.
        self.forgotten = 0
        #: What the log calls this store.
        self.name = name

    def claim(self, key: str, ttl: int) -> Claim:
        """See :meth:`KeyStore.claim`."""
        now = self.clock()
        with self._lock:
            return self._claim(key, ttl, now)

    def claim_all(self, items: Sequence[tuple[str, int]]) -> tuple[int, Claim]:
        """See :meth:`RedisStore.claim_all`; atomic under this store's lock."""
        now = self.clock()
        with self._lock:
            return _claim_each(items, lambda key, ttl: self._claim(key, ttl, now), self._forget)

    def _claim(self, key: str, ttl: int, now: float) -> Claim:
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            return "done" if entry[0] == "done" else "running"
        self._write(key, "running", now + max(1, ttl), now)
        return "new"

    def finish(self, key: str, ttl: int) -> None:
        """See :meth:`KeyStore.finish`."""
        now = self.clock()
        with self._lock:
            self._write(key, "done", now + max(1, ttl), now)

    def abandon(self, key: str) -> None:
        """See :meth:`KeyStore.abandon`."""
        with self._lock:
            self._forget(key)

    def put(self, key: str, value: str, ttl: int) -> None:
        """See :meth:`RecordStore.put`."""
        now = self.clock()
        with self._lock:
            self._write(key, value, now + max(1, ttl), now)

    def get(self, key: str) -> str | None:
        """See :meth:`RecordStore.get`."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= self.clock() or not isinstance(entry[0], str):
            return None
        return entry[0]

    def count(self, key: str, ttl: int) -> int:
        """See :meth:`RecordStore.count`."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[1] > now and isinstance(entry[0], int):
                value, expires = entry[0] + 1, entry[1]
                self._entries[key] = (value, expires)  # the same expiry: the write log stays right
                return value
            self._write(key, 1, now + max(1, ttl), now)
            return 1

    def _forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def _write(self, key: str, claim: Any, expires: float, now: float) -> None:
        # Keys written first mostly expire first: dropping expired ones from the front of the
        # write log costs little on each write. A full store is swept whole before it refuses or
        # forgets a live key, at most once a second: a sweep reads every key, and a full store
        # would otherwise sweep on every write (a ledger at its bound, or a registry flooded).
        writes, entries = self._writes, self._entries
        while writes and writes[0][0] <= now:
            self._drop_if_current(*writes.popleft())
        if key not in entries and len(entries) >= self._max_entries:
            if now - self._swept >= 1.0:
                self._swept = now
                self._drop_expired(now)
            if len(entries) >= self._max_entries:
                if self._when_full == "refuse":
                    raise StoreFull(f"{type(self).__name__} holds {self._max_entries} live keys")
                while len(entries) >= self._max_entries and writes:  # bounded by the log's length
                    if self._drop_if_current(*writes.popleft()):
                        self._forgot()
        entries[key] = (claim, expires)
        writes.append((expires, key))
        if len(writes) > 2 * len(entries) + 1024:  # stale items pile up (keys written again)
            self._writes = deque(sorted((expiry, name) for name, (_, expiry) in entries.items()))

    def _drop_if_current(self, expires: float, key: str) -> bool:
        entry = self._entries.get(key)
        if entry is not None and entry[1] == expires:
            del self._entries[key]
            return True
        return False

    def _forgot(self) -> None:
        """A live key made room (``forget_oldest``): counted, and said once per store."""
        self.forgotten += 1
        if self.forgotten == 1:
            logger.warning(
                "%s is full (%d live keys): the oldest are forgotten to make room; see "
                "MemoryStore.forgotten for how many (use a shared Redis store to keep them all)",
                self.name,
                self._max_entries,
            )

    def _drop_expired(self, now: float) -> None:
        for key in [key for key, (_, expires) in self._entries.items() if expires <= now]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


_DONE = (b"done", "done")
#: Seconds a Redis command is tried again through a stall (a failover, a slow fsync, a full
#: network buffer), within one request's patience.
STALL_BUDGET = 2.0


def _is_transient(error: Exception) -> bool:
    """A Redis connection error or timeout (redis-py's, or the builtins it derives from): worth
    sending again. A command error (a script's, a wrong type) is not."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return type(error).__name__ in ("ConnectionError", "TimeoutError", "BusyLoadingError") and (
        type(error).__module__.startswith("redis")
    )


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


#: Claims keys in order, atomically, in one round trip: each is set to this claim's value unless
#: it holds another. The first key held by someone else stops the claim; the keys this call set
#: before it are deleted again, and its index and value are returned. A key already holding this
#: claim's own value (a client's retry of the whole script) counts as claimed.
_CLAIM_SCRIPT = """
for i, name in ipairs(KEYS) do
  if not redis.call('SET', name, ARGV[1], 'NX', 'EX', ARGV[i + 1]) then
    local current = redis.call('GET', name)
    if current ~= ARGV[1] then
      for j = 1, i - 1 do redis.call('DEL', KEYS[j]) end
      return {i, current or 'running'}
    end
  end
end
return {0}
"""


#: A counter that expires ``ARGV[1]`` seconds after it was first counted.
_COUNT_SCRIPT = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return value
"""


class RedisStore:
    """A store in Redis, shared by every instance: each claim is one atomic script on the server,
    so one round trip, however many keys a request claims (:meth:`claim_all`).

    Each claim writes a value of its own (``running:<random>``). A Redis client that retries a
    command after a timeout may send it twice, the first having succeeded: the second then finds
    the key taken, and reading back its own value tells the claim apart from another request's, so
    an honest request is never refused as its own replay. A client without scripting (a minimal
    stand-in with ``set``, ``get``, ``delete``) is served with ``SET NX`` then ``GET``.
    """

    def __init__(self, redis: Any, prefix: str = "omi:", *, retry_for: float = STALL_BUDGET) -> None:
        """``retry_for``: seconds a command is tried again after a connection error or timeout,
        so that a Redis stall shorter than that refuses nobody (every command here is safe to
        send twice; a counter counted twice only spends a budget faster)."""
        self._redis, self._prefix, self._retry_for = redis, prefix, retry_for
        register = getattr(redis, "register_script", None)
        self._script = register(_CLAIM_SCRIPT) if callable(register) else None
        self._count_script = register(_COUNT_SCRIPT) if callable(register) else None

    def claim(self, key: str, ttl: int) -> Claim:
        """See :meth:`KeyStore.claim`."""
        return self.claim_all(((key, ttl),))[1]

    def claim_all(self, items: Sequence[tuple[str, int]]) -> tuple[int, Claim]:
        """Claim every ``(key, ttl)`` in order, all or none: ``(-1, "new")`` when every key was
        claimed; otherwise the index of the first key found taken and what it holds (the keys
        claimed before it are released)."""
        mine = b"running:" + secrets.token_hex(8).encode()
        if self._script is None:
            claimed: tuple[int, Claim] = self._retrying(
                lambda: _claim_each(
                    items, lambda key, ttl: self._claim_without_script(key, ttl, mine), self.abandon
                )
            )
            return claimed
        names = [self._prefix + key for key, _ in items]
        script, args = self._script, [mine, *(max(1, ttl) for _, ttl in items)]
        answer = self._retrying(lambda: script(keys=names, args=args))
        if int(answer[0]) == 0:
            return -1, "new"
        return int(answer[0]) - 1, "done" if answer[1] in _DONE else "running"

    def _claim_without_script(self, key: str, ttl: int, mine: bytes) -> Claim:
        name = self._prefix + key
        for _ in range(2):  # the key may expire between SET and GET: then try once more
            if self._redis.set(name, mine, nx=True, ex=max(1, ttl)):
                return "new"
            value = self._redis.get(name)
            if value is not None:
                if _as_bytes(value) == mine:
                    return "new"  # this request's own SET, sent again by the client's retry
                return "done" if value in _DONE else "running"
        return "running"

    @property
    def client(self) -> Any:
        """The Redis client this store sends its commands through."""
        return self._redis

    def finish(self, key: str, ttl: int) -> None:
        """See :meth:`KeyStore.finish`."""
        self._retrying(lambda: self._redis.set(self._prefix + key, b"done", ex=max(1, ttl)))

    def abandon(self, key: str) -> None:
        """See :meth:`KeyStore.abandon`."""
        self._retrying(lambda: self._redis.delete(self._prefix + key))

    def put(self, key: str, value: str, ttl: int) -> None:
        """See :meth:`RecordStore.put`."""
        self._retrying(lambda: self._redis.set(self._prefix + key, value.encode(), ex=max(1, ttl)))

    def get(self, key: str) -> str | None:
        """See :meth:`RecordStore.get`."""
        value = self._retrying(lambda: self._redis.get(self._prefix + key))
        return None if value is None else _as_bytes(value).decode()

    def count(self, key: str, ttl: int) -> int:
        """See :meth:`RecordStore.count`: one round trip (a script: INCR, and EXPIRE when new)."""
        name = self._prefix + key
        script = self._count_script
        if script is not None:
            return int(self._retrying(lambda: script(keys=[name], args=[max(1, ttl)])))
        value = int(self._retrying(lambda: self._redis.incr(name)))
        if value == 1:
            self._retrying(lambda: self._redis.expire(name, max(1, ttl)))
        return value

    def _retrying(self, command: Callable[[], Any]) -> Any:
        """Run ``command``; after a connection error or a timeout, again, until ``retry_for``
        seconds have passed (bounded: each wait doubles, from 20 ms)."""
        deadline = time.monotonic() + self._retry_for
        wait = 0.02
        while True:  # bounded by the deadline
            try:
                return command()
            except Exception as error:
                left = deadline - time.monotonic()
                if not _is_transient(error) or left <= 0:
                    raise
                time.sleep(min(wait, left))
                wait *= 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prefix={self._prefix!r})"


def _claim_each(
    items: Sequence[tuple[str, int]], claim: Callable[[str, int], Claim], abandon: Callable[[str], None]
) -> tuple[int, Claim]:
    for index, (key, ttl) in enumerate(items):
        seen = claim(key, ttl)
        if seen != "new":
            for earlier, _ in items[:index]:
                abandon(earlier)
            return index, seen
    return -1, "new"


def claim_all(store: KeyStore, items: Sequence[tuple[str, int]]) -> tuple[int, Claim]:
    """Claim every ``(key, ttl)`` of ``items`` in ``store``, in order, all or none (see
    :meth:`RedisStore.claim_all`): in one round trip when the store offers ``claim_all``, one
    claim after another otherwise."""
    together = getattr(store, "claim_all", None)
    if callable(together):
        result: tuple[int, Claim] = together(items)
        return result
    return _claim_each(items, store.claim, store.abandon)


def hashed_key(value: str | bytes) -> str:
    """What is stored for a secret such as a state (or for a long value such as a body): its
    SHA-256, so the store never holds it."""
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()
