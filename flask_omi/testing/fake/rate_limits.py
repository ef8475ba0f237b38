"""OMI's two rate limiters, as its backend counts.

- The app API's writes use OMI's general limiter (``backend/database/redis_db.py``
  ``check_rate_limit``, policies in ``backend/utils/rate_limit_config.py``): a Redis ``INCR`` whose
  key expires ``window`` seconds after the *first* counted request. Every call is counted, refused
  ones too, and a refusal says how long the key still lives. OMI multiplies the limits in
  production (``RATE_LIMIT_BOOST``), so the fake takes them as settings.
- Notifications (``backend/routers/integration.py`` 0def44eb, ``backend/routers/notifications.py``
  05dc5115) count per app, user and UTC clock hour, from 0: ten go through per hour, and a call is
  refused once the stored count reaches 10. A refusal is not counted. (Before 0def44eb the first
  call stored 1, so only nine went through.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

#: OMI's policies used by the app API: (requests, window in seconds).
DEFAULT_POLICIES: dict[str, tuple[int, int]] = {
    "integration:conversations": (10, 3600),
    "integration:memories": (60, 3600),
}
NOTIFICATIONS_PER_HOUR = 10


@dataclass(frozen=True)
class Verdict:
    """Whether a call is within OMI's limit, and the headers OMI sends with the answer."""

    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the window ends: ``Retry-After`` on a refusal, ``X-RateLimit-Reset`` for
    #: notifications.
    reset: int


class RateLimits:
    """Counters for every (policy, key). Thread-safe; time comes from ``clock``."""

    def __init__(
        self,
        clock: Callable[[], float],
        policies: dict[str, tuple[int, int]] | None = None,
        notifications_per_hour: int = NOTIFICATIONS_PER_HOUR,
    ) -> None:
        self._clock = clock
        self.policies = dict(DEFAULT_POLICIES if policies is None else policies)
        self.notifications_per_hour = notifications_per_hour
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (expires at, count)

    def take(self, policy: str, key: str) -> Verdict:
        """Count one request under ``policy`` (an INCR with an expiry set on the first one)."""
        limit, window = self.policies[policy]
        now = self._clock()
        name = f"rl:{policy}:{key}"
        with self._lock:
            expires, count = self._windows.get(name, (0.0, 0))
            if expires <= now:
                expires, count = now + window, 0
            count += 1
            self._windows[name] = (expires, count)
        ttl = max(0, int(expires - now))
        return Verdict(count <= limit, limit, max(0, limit - count), ttl)

    def take_notification(self, app_id: str, uid: str) -> Verdict:
        """OMI's notification limit: per app, user and UTC clock hour."""
        limit = self.notifications_per_hour
        now = self._clock()
        hour = int(now // 3600)
        reset = 3600 - int(now) % 3600
        name = f"notification_rate_limit:{app_id}:{uid}:{hour}"
        with self._lock:
            _, stored = self._windows.get(name, (0.0, 0))
            count = stored
            if count >= limit:
                return Verdict(False, limit, limit - count, reset)
            self._windows[name] = (float(hour * 3600 + 3600), count + 1)
        return Verdict(True, limit, limit - count - 1, reset)
