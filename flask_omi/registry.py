"""Used-state registries: "this state was used" recorded outside the browser's session.

The session records a used state too, but a session is a copy each request works on. Two
callbacks that arrive at once with the same cookie both read the session before either writes
it back, and a cookie session copied before the callback still holds the state afterwards. A
registry closes both gaps: each state is claimed once, atomically, in a store every instance
shares, and the claim outlives the session for as long as the state could be valid.

Set ``OMI_STATE_REGISTRY`` to a Redis client (``redis.Redis`` or anything with its ``set``), or to
an object with a ``claim(key, ttl)`` method. :class:`MemoryStateRegistry` serves a single process.
Framework-neutral.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .errors import OmiConfigError


@runtime_checkable
class StateRegistry(Protocol):
    """Records each state once; ``claim`` must be atomic across every instance that shares it."""

    def claim(self, key: str, ttl: int) -> bool:
        """Record ``key`` for ``ttl`` seconds; True if this call recorded it, False if it was there."""
        ...  # pragma: no cover - a protocol


class RedisStateRegistry:
    """A registry in Redis: ``SET key 1 NX EX ttl`` is atomic on the server, so exactly one of
    any number of concurrent claims, from any instance, gets True."""

    def __init__(self, redis: Any, prefix: str = "omi:state:") -> None:
        self._redis = redis
        self._prefix = prefix

    def claim(self, key: str, ttl: int) -> bool:
        return bool(self._redis.set(self._prefix + key, b"1", nx=True, ex=max(1, ttl)))

    def __repr__(self) -> str:
        return f"RedisStateRegistry(prefix={self._prefix!r})"


class MemoryStateRegistry:
    """A registry in this process's memory, for an app served by one process.

    It does not help across processes or machines. It holds at most ``max_entries`` live claims;
    when full it refuses new ones (the sign-in fails) rather than forget a live claim and so allow
    a replay.
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._clock = clock

    def claim(self, key: str, ttl: int) -> bool:
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            if key in self._entries:
                return False
            if len(self._entries) >= self._max_entries:
                raise RuntimeError("MemoryStateRegistry is full")
            self._entries[key] = now + max(1, ttl)
            return True

    def _drop_expired(self, now: float) -> None:
        # Every entry has the same lifetime in practice, so the oldest expire first.
        while self._entries:
            key, expires = next(iter(self._entries.items()))
            if expires > now:
                return
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def registry_key(state: str) -> str:
    """What is stored for a state: its SHA-256, so the store never holds a usable state."""
    return hashlib.sha256(state.encode("ascii")).hexdigest()


def resolve_registry(value: object) -> StateRegistry | None:
    """``OMI_STATE_REGISTRY`` as a registry: None, a registry, or a Redis client to wrap."""
    if value is None:
        return None
    if isinstance(value, StateRegistry):
        return value
    if callable(getattr(value, "set", None)):
        return RedisStateRegistry(value)
    raise OmiConfigError(
        "OMI_STATE_REGISTRY must be a Redis client, an object with claim(key, ttl), or None; "
        f"got {type(value).__name__}."
    )
