"""One key-store family for everything flask-omi must remember across requests.

Three guards need "has this been seen?", answered atomically for every instance that shares the
store: the used-state registry (a sign-in state works once), webhook de-duplication (a delivery OMI
retries runs its handler once) and tool-call replay refusal (a signed call is accepted once). They
share one interface, :class:`KeyStore`, and two backends side by side, :class:`MemoryStore` and
:class:`RedisStore` (both in :mod:`flask_omi.keystore`, and importable from here).

Each setting that takes a store (``OMI_STATE_REGISTRY``, ``OMI_WEBHOOK_DEDUP``, ``OMI_TOOLS_DEDUP``)
follows one convention, read by :func:`resolve_store`: ``True`` (an in-process store), ``False``
or ``None`` (off), the app's Redis client (shared), or any :class:`KeyStore`. The older objects
(:class:`StateRegistry`, :class:`DeliveryLedger`) are still taken. Framework-neutral.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .errors import OmiConfigError, StoreNotShared
from .keystore import (
    RUNNING_TTL,
    Claim,
    KeyStore,
    MemoryStore,
    RecordStore,
    RedisStore,
    Status,
    StoreFull,
    WhenFull,
    claim_all,
    hashed_key,
)

__all__ = [
    "RUNNING_TTL",
    "Claim",
    "DeliveryLedger",
    "KeyStore",
    "MemoryDeliveryLedger",
    "MemoryStateRegistry",
    "MemoryStore",
    "PerProcessNotice",
    "RecordStore",
    "RedisDeliveryLedger",
    "RedisStateRegistry",
    "RedisStore",
    "StateRegistry",
    "Status",
    "StoreFull",
    "WhenFull",
    "claim_all",
    "hashed_key",
    "is_per_process",
    "resolve_store",
]


# -- the names of 0.2, kept ------------------------------------------------------------------------
@runtime_checkable
class StateRegistry(Protocol):
    """Records each state once; ``claim`` must be atomic across every instance that shares it.

    Any :class:`KeyStore` serves as well; this shape is still accepted.
    """

    def claim(self, key: str, ttl: int) -> bool:
        """Record ``key`` for ``ttl`` seconds; True if this call recorded it, False if it was there."""
        ...  # pragma: no cover - a protocol


@runtime_checkable
class DeliveryLedger(Protocol):
    """A :class:`KeyStore` whose claim is called ``begin``; still accepted for de-duplication."""

    def begin(self, key: str, ttl: int) -> Claim:
        """Claim ``key`` as running unless it is there; return what it was ("new" if claimed)."""
        ...  # pragma: no cover - a protocol

    def finish(self, key: str, ttl: int) -> None:
        """Mark ``key`` done for ``ttl`` seconds."""
        ...  # pragma: no cover - a protocol

    def abandon(self, key: str) -> None:
        """Forget ``key``, so that a retry runs the handler again."""
        ...  # pragma: no cover - a protocol


class MemoryStateRegistry:
    """A used-state registry in this process's memory, for an app served by one process.

    It does not help across processes or machines. When full it refuses new claims (the sign-in
    fails with 503) rather than forget a live claim and so allow a replay.
    """

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = MemoryStore(max_entries, when_full="refuse", clock=clock)

    def claim(self, key: str, ttl: int) -> bool:
        """Record ``key`` for ``ttl`` seconds; True if this call recorded it, False if it was there."""
        return self.store.claim(key, ttl) == "new"

    def __len__(self) -> int:
        return len(self.store)


class RedisStateRegistry:
    """A used-state registry in Redis: exactly one of any number of concurrent claims, from any
    instance, gets True."""

    def __init__(self, redis: Any, prefix: str = "omi:state:") -> None:
        self.store = RedisStore(redis, prefix)

    def claim(self, key: str, ttl: int) -> bool:
        """Record ``key`` for ``ttl`` seconds; True if this call recorded it, False if it was there."""
        return self.store.claim(key, ttl) == "new"

    def __repr__(self) -> str:
        return f"RedisStateRegistry({self.store!r})"


class MemoryDeliveryLedger(MemoryStore):
    """An in-process de-duplication ledger of at most ``max_entries`` keys; the oldest are
    forgotten first when it is full."""

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_entries, when_full="forget_oldest", clock=clock)

    def begin(self, key: str, ttl: int) -> Claim:
        """The 0.2 name of :meth:`claim`."""
        return self.claim(key, ttl)


class RedisDeliveryLedger(RedisStore):
    """A de-duplication ledger in Redis, shared by every instance."""

    def __init__(self, redis: Any, prefix: str = "omi:delivery:") -> None:
        super().__init__(redis, prefix)

    def begin(self, key: str, ttl: int) -> Claim:
        """The 0.2 name of :meth:`claim`."""
        return self.claim(key, ttl)


class _RegistryAsStore:
    """A :class:`StateRegistry` seen as a :class:`KeyStore` (a claim once taken stays taken)."""

    def __init__(self, registry: StateRegistry) -> None:
        self.registry = registry

    def claim(self, key: str, ttl: int) -> Claim:
        return "new" if self.registry.claim(key, ttl) else "done"

    def finish(self, key: str, ttl: int) -> None:
        """A registry's claim is already final."""

    def abandon(self, key: str) -> None:
        """A registry cannot forget (it never needs to: a state is used once)."""


class _LedgerAsStore:
    """A :class:`DeliveryLedger` seen as a :class:`KeyStore`."""

    def __init__(self, ledger: DeliveryLedger) -> None:
        self.ledger = ledger

    def claim(self, key: str, ttl: int) -> Claim:
        return self.ledger.begin(key, ttl)

    def finish(self, key: str, ttl: int) -> None:
        self.ledger.finish(key, ttl)

    def abandon(self, key: str) -> None:
        self.ledger.abandon(key)


def _is_redis(value: object) -> bool:
    return all(callable(getattr(value, name, None)) for name in ("set", "get", "delete"))


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_clients: dict[str, Any] = {}


def redis_client(url: str) -> Any:
    """One Redis client per URL in this process (its connections are pooled), with short socket
    timeouts: a stall is retried within :data:`~flask_omi.keystore.STALL_BUDGET`, not waited out."""
    client = _clients.get(url)
    if client is None:
        try:
            import redis
        except ImportError:  # pragma: no cover - the extra is installed in the test suite
            raise OmiConfigError(
                "OMI_STORE names a Redis URL, which needs the redis package: pip install 'flask-omi[redis]'."
            ) from None
        client = _clients.setdefault(
            url, redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        )
    return client


def resolve_store(
    setting: str, value: object, *, prefix: str, when_full: WhenFull, max_entries: int
) -> KeyStore | None:
    """The store a setting names (see the module docstring); raises :class:`OmiConfigError` naming
    ``setting`` for anything else. ``True`` makes a new :class:`MemoryStore`: call once per app."""
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.startswith(REDIS_SCHEMES):
        return RedisStore(redis_client(value), prefix)
    if value is True:
        return MemoryStore(max_entries, when_full=when_full, name=f"{setting}'s in-process store")
    if isinstance(value, (MemoryStateRegistry, RedisStateRegistry)):
        return value.store
    if isinstance(value, KeyStore):
        return value
    if isinstance(value, DeliveryLedger):
        return _LedgerAsStore(value)
    if _is_redis(value):
        return RedisStore(value, prefix)
    if isinstance(value, StateRegistry):
        return _RegistryAsStore(value)
    raise OmiConfigError(
        f"{setting} must be True (this process), False, the app's Redis URL or client (every "
        f"instance) or a flask_omi.stores.KeyStore; got {type(value).__name__}."
    )


def is_per_process(store: object) -> bool:
    """Whether ``store`` lives in this process's memory, and so guards nothing across workers."""
    inner = getattr(store, "ledger", None) or getattr(store, "registry", None) or store
    inner = getattr(inner, "store", inner)
    return isinstance(inner, MemoryStore)


@dataclass
class PerProcessNotice:
    """Refuses a request when a store kept in each process serves several processes: each worker
    would guard only what reaches it (gunicorn -w 4 ran one signed tool call 4 times)."""

    setting: str
    #: What goes wrong without a shared store, said in the log line.
    consequence: str
    #: Whether the setting's store is in this process only; nothing is said otherwise.
    active: bool
    said: bool = False

    def check(self, multiprocess: object, logger: logging.Logger) -> None:
        """Refuse, loudly, when the store is per process and ``multiprocess`` is true: logged as
        an error once, and raised as :class:`StoreNotShared` naming ``OMI_STORE`` every time."""
        if self.active and multiprocess:
            message = (
                f"{self.setting} is kept in each worker process and this server runs several: "
                f"{self.consequence}. Set OMI_STORE to the app's Redis URL (see the deployment guide)."
            )
            if not self.said:
                self.said = True
                logger.error("%s", message)
            raise StoreNotShared(message)
