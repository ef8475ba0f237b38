"""HTTP to OMI's API: timeouts, bounded retries with backoff, and OMI's errors as exceptions.

Retry rules, chosen so that a retry can never duplicate a write:

- A read (``idempotent=True``) is retried after a timeout, a connection failure, or 429/502/503/504.
- A write is retried only when OMI cannot have acted on it: 429 (OMI rate-limits before it does
  anything) and failures to connect at all. After a read timeout or a 5xx the request may have
  reached OMI, so the error is raised instead.
- Every attempt has a timeout, and all attempts together stay within ``deadline`` seconds; a
  ``Retry-After`` longer than what is left is not waited for.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from .errors import (
    OmiApiError,
    OmiAppNotEnabled,
    OmiAuthError,
    OmiNotFound,
    OmiPermissionError,
    OmiRateLimited,
    OmiServerError,
    OmiTransportError,
    OmiValidationError,
)

logger = logging.getLogger("flask_omi.api")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
NOT_ENABLED_DETAIL = "App is not enabled for this user"
INVALID_KEY_DETAIL = "Invalid API key"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff: float = 0.25  # seconds before the second attempt; doubles each time, with jitter
    max_backoff: float = 4.0
    deadline: float = 30.0  # seconds for all attempts together


def _never_connected(error: requests.ConnectionError) -> bool:
    """True when the request cannot have been sent: connecting itself failed."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason: Any = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError)


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _detail(response: requests.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or None
    return body.get("detail") if isinstance(body, dict) else body


def error_for(response: requests.Response, method: str, path: str) -> OmiApiError:
    """The exception for one of OMI's error answers."""
    status, detail = response.status_code, _detail(response)
    where: dict[str, Any] = {"status": status, "detail": detail, "method": method, "path": path}
    if status == 401 or (status == 403 and detail == INVALID_KEY_DETAIL):
        return OmiAuthError("OMI refused the app's API key", **where)
    if status == 403 and detail == NOT_ENABLED_DETAIL:
        return OmiAppNotEnabled("The user has not enabled this app in OMI", **where)
    if status == 403:
        return OmiPermissionError("The app lacks the capability for this call", **where)
    if status == 404:
        return OmiNotFound("OMI does not know this app or resource", **where)
    if status in (400, 422):
        return OmiValidationError("OMI refused the request's input", **where)
    if status == 429:
        return OmiRateLimited("OMI rate-limited the request", retry_after=_retry_after(response), **where)
    if status >= 500:
        return OmiServerError("OMI failed to answer", **where)
    return OmiApiError(f"Unexpected answer from OMI ({status})", **where)


class Transport:
    """Sends requests for one app and turns answers into JSON or exceptions."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        policy: RetryPolicy,
        session: requests.Session,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.timeout, self.policy, self.session = timeout, policy, session
        self._sleep, self._clock = sleep, clock

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        json: Any = None,
        idempotent: bool,
        deadline: float | None = None,
    ) -> tuple[Any, requests.Response]:
        """Send, retrying as the module docstring says; returns (parsed JSON, response)."""
        ends = self._clock() + (self.policy.deadline if deadline is None else deadline)
        attempt = 0
        while True:
            attempt += 1
            left = ends - self._clock()
            if left <= 0:
                raise OmiTransportError(
                    "No time left to call OMI", status=None, detail=None, method=method, path=path
                )
            try:
                response = self.session.request(
                    method,
                    self.base_url + path,
                    params={k: v for k, v in params.items() if v is not None},
                    json=json,
                    headers=self._auth,
                    timeout=min(self.timeout, left),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                retry = (idempotent and isinstance(exc, (requests.Timeout, requests.ConnectionError))) or (
                    isinstance(exc, requests.ConnectionError) and _never_connected(exc)
                )
                failure = OmiTransportError(
                    f"Could not reach OMI: {type(exc).__name__}",
                    status=None,
                    detail=None,
                    method=method,
                    path=path,
                )
                wait = self._backoff(attempt) if retry else None
                if wait is None or not self._can_wait(wait, attempt, ends):
                    raise failure from None
                logger.info(
                    "OMI %s %s: %s, retry %d in %.2fs", method, path, type(exc).__name__, attempt, wait
                )
                self._sleep(wait)
                continue
            if response.status_code < 300:
                return self._json(response, method, path), response
            error = error_for(response, method, path)
            status = response.status_code
            if status in RETRYABLE_STATUS and (idempotent or status == 429):
                wait = _retry_after(response)
                wait = self._backoff(attempt) if wait is None else wait
                if self._can_wait(wait, attempt, ends):
                    logger.info("OMI %s %s: %d, retry %d in %.2fs", method, path, status, attempt, wait)
                    self._sleep(wait)
                    continue
            raise error

    def _backoff(self, attempt: int) -> float:
        base = min(self.policy.max_backoff, self.policy.backoff * 2.0 ** (attempt - 1))
        return base * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not security)

    def _can_wait(self, wait: float, attempt: int, ends: float) -> bool:
        return attempt < self.policy.max_attempts and self._clock() + wait < ends

    @staticmethod
    def _json(response: requests.Response, method: str, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise OmiTransportError(
                "OMI's answer was not JSON",
                status=response.status_code,
                detail=None,
                method=method,
                path=path,
            ) from None
