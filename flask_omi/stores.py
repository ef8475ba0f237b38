"""One key-store family for everything flask-omi must remember across requests.

Three guards need "has this been seen?", answered atomically for every instance that shares the
store: the used-state registry (a sign-in state works once), webhook de-duplication (a delivery OMI
retries runs its handler once) and tool-call replay refusal (a signed call is accepted once). They
share one interface, :class:`KeyStore`, and two backends side by side, :class:`MemoryStore` and
:class:`RedisStore` (both in :mod:`flask_omi.keystore`, and importable from here).

Each setting that takes a store (``OMI_STATE_REGISTRY``, ``OMI_WEBHOOK_STORE``, ``OMI_TOOLS_REPLAY_STORE``)
follows one convention, read by :func:`resolve_store`: ``True`` (an in-process store), ``False``
or ``None`` (off), the app's Redis URL or client (shared), or any :class:`KeyStore`; ``OMI_STORE``
stands for each one left at its default. Framework-neutral.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask_omi.errors import OmiConfigError, StoreNotShared
from flask_omi.keystore import (
    RUNNING_TTL,
    Claim,
    KeyStore,
    MemoryStore,
    RecordStore,
    RedisStore,
    StoreFull,
    WhenFull,
    claim_all,
    hashed_key,
)

__all__ = [
    "RUNNING_TTL",
    "Claim",
    "KeyStore",
    "MemoryStore",
    "PerProcessNotice",
    "RecordStore",
    "RedisStore",
    "StoreFull",
    "WhenFull",
    "claim_all",
    "hashed_key",
    "is_per_process",
    "resolve_store",
]


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
    if isinstance(value, KeyStore):
        return value
    if _is_redis(value):
        return RedisStore(value, prefix)
    raise OmiConfigError(
        f"{setting} must be True (this process), False, the app's Redis URL or client (every "
        f"instance) or a flask_omi.stores.KeyStore; got {type(value).__name__}."
    )


def is_per_process(store: object) -> bool:
    """Whether ``store`` lives in this process's memory, and so guards nothing across workers."""
    return isinstance(store, MemoryStore)


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
