"""HTTP to OMI's API: timeouts, bounded retries with backoff, and OMI's errors as exceptions.

Retry rules, chosen so that a retry can never duplicate a write:

- A read (``idempotent=True``) is retried after a timeout, a connection failure, or 429/502/503/504.
- A write is retried only when OMI cannot have acted on it: 429 (OMI rate-limits before it does
  anything) and failures to connect at all. After a read timeout or a 5xx the request may have
  reached OMI, so the error is raised instead.
- Every attempt has a timeout, and all attempts together stay within ``deadline`` seconds; a
  ``Retry-After`` longer than what is left is not waited for.

Answers are classified failing closed: an answer is only given a specific meaning (not enabled,
missing capability) when it is exactly one OMI is known to send; anything else stays a generic
:class:`OmiApiError`. Bodies larger than ``max_response_bytes`` are refused unread, and the API key
is redacted from anything OMI echoes back.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from json import loads as json_loads
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from flask_omi.config import DEFAULTS
from flask_omi.errors import (
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
from flask_omi.validation import ascii_int

logger = logging.getLogger("flask_omi.api")

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
#: OMI's two wordings for "this uid has not enabled the app" (backend/routers/integration.py for
#: the app API, backend/routers/notifications.py for notifications).
NOT_ENABLED_DETAILS = frozenset({"App is not enabled for this user", "User does not have this app installed"})
#: Every missing-capability answer in backend/routers/integration.py starts with this.
CAPABILITY_DETAIL_PREFIX = "App does not have the capability to "
#: Default bound on a response body: OMI's largest pages are far below it.
DEFAULT_MAX_RESPONSE_BYTES: int = DEFAULTS["OMI_API_MAX_RESPONSE_BYTES"]
REDACTED = "[redacted]"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How one API call is retried: attempts, the deadline for all of them together, and the waits
    between them."""

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


def header_seconds(raw: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After``-style header as seconds from now, or None when it is absent or unreadable.

    Accepts delta-seconds (ASCII digits, optionally with a fraction) and an HTTP-date; anything
    else, including non-ASCII digits, NaN and infinities, is None rather than an exception.
    """
    if raw is None:
        return None
    text = raw.strip()
    if text and text.isascii() and text.replace(".", "", 1).isdigit():
        value = float(text)
        return value if math.isfinite(value) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def header_int(raw: str | None) -> int | None:
    """An integer header such as ``X-RateLimit-Remaining``; None unless it is plain ASCII digits."""
    if raw is None:
        return None
    return ascii_int(raw.strip())


def redact(value: Any, secret: str) -> Any:
    """``value`` with every occurrence of ``secret`` replaced, through nested JSON structures."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, REDACTED)
    if isinstance(value, list):
        return [redact(item, secret) for item in value]
    if isinstance(value, dict):
        return {redact(k, secret): redact(v, secret) for k, v in value.items()}
    return value


def _detail(body: bytes, secret: str) -> Any:
    try:
        parsed = json_loads(body)
    except (ValueError, RecursionError):
        text = body[:200].decode("utf-8", "replace")
        return redact(text, secret) or None
    return redact(parsed.get("detail") if isinstance(parsed, dict) else parsed, secret)


def _mentions_api_key(detail: Any) -> bool:
    """OMI words a wrong key three ways ("Invalid API key", "Invalid integration API key" and
    "Invalid integrationAPI key"); all of them, and any future one, name the API key."""
    if not isinstance(detail, str):
        return False
    folded = detail.lower().replace("_", " ")
    return "api key" in folded or "apikey" in folded.replace(" ", "")


def error_for(
    status: int, detail: Any, method: str, path: str, *, retry_after: float | None = None
) -> OmiApiError:
    """The exception for one of OMI's error answers; an answer not recognised stays generic."""
    where: dict[str, Any] = {"status": status, "detail": detail, "method": method, "path": path}
    if status == 401 or (status == 403 and _mentions_api_key(detail)):
        return OmiAuthError("OMI refused the app's API key", **where)
    if status == 403 and isinstance(detail, str) and detail in NOT_ENABLED_DETAILS:
        return OmiAppNotEnabled("The user has not enabled this app in OMI", **where)
    if status == 403 and isinstance(detail, str) and detail.startswith(CAPABILITY_DETAIL_PREFIX):
        return OmiPermissionError("The app lacks the capability for this call", **where)
    if status == 404:
        return OmiNotFound("OMI does not know this app or resource", **where)
    if status in (400, 422):
        return OmiValidationError("OMI refused the request's input", **where)
    if status == 429:
        return OmiRateLimited("OMI rate-limited the request", retry_after=retry_after, **where)
    if status >= 500:
        return OmiServerError("OMI failed to answer", **where)
    return OmiApiError(f"Unexpected answer from OMI ({status})", **where)


class _TooLarge(Exception):
    pass


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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._secret = api_key
        self.timeout, self.policy, self.session = timeout, policy, session
        self.max_response_bytes = max_response_bytes
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
        timeout: float | None = None,
    ) -> tuple[Any, requests.Response]:
        """Send, retrying as the module docstring says; returns (parsed JSON, response).

        ``timeout`` overrides the per-attempt timeout (writes wait longer than reads).
        """
        per_attempt = self.timeout if timeout is None else timeout
        ends = self._clock() + (self.policy.deadline if deadline is None else deadline)
        attempt = 0
        while True:
            attempt += 1
            left = ends - self._clock()
            if left <= 0:
                raise self._failure("No time left to call OMI", method, path)
            try:
                response, body = self._send(method, path, params, json, min(per_attempt, left))
            except _TooLarge:
                raise self._failure(
                    f"OMI's answer is larger than {self.max_response_bytes} bytes", method, path
                ) from None
            except requests.RequestException as exc:
                retry = (idempotent and isinstance(exc, (requests.Timeout, requests.ConnectionError))) or (
                    isinstance(exc, requests.ConnectionError) and _never_connected(exc)
                )
                failure = self._failure(f"Could not reach OMI: {type(exc).__name__}", method, path)
                wait = self._backoff(attempt) if retry else None
                if wait is None or not self._can_wait(wait, attempt, ends):
                    raise failure from None
                logger.info(
                    "OMI %s %s: %s, retry %d in %.2fs", method, path, type(exc).__name__, attempt, wait
                )
                self._sleep(wait)
                continue
            status = response.status_code
            if status < 300:
                return self._json(body, status, method, path), response
            retry_after = header_seconds(response.headers.get("Retry-After"))
            error = error_for(status, _detail(body, self._secret), method, path, retry_after=retry_after)
            if status in RETRYABLE_STATUS and (idempotent or status == 429):
                wait = self._backoff(attempt) if retry_after is None else retry_after
                if self._can_wait(wait, attempt, ends):
                    logger.info("OMI %s %s: %d, retry %d in %.2fs", method, path, status, attempt, wait)
                    self._sleep(wait)
                    continue
            raise error

    def _send(
        self, method: str, path: str, params: Mapping[str, Any], json: Any, timeout: float
    ) -> tuple[requests.Response, bytes]:
        """One attempt: the response and its body, read to at most ``max_response_bytes``."""
        response = self.session.request(
            method,
            self.base_url + path,
            params={k: v for k, v in params.items() if v is not None},
            json=json,
            headers=self._auth,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
        limit = self.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            if (header_int(response.headers.get("Content-Length")) or 0) > limit:
                raise _TooLarge()
            # Read to the end, so that the connection goes back to the pool.
            for chunk in response.iter_content(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _TooLarge()
                chunks.append(chunk)
        except BaseException:
            response.close()  # a half-read connection cannot be reused
            raise
        return response, b"".join(chunks)

    def _backoff(self, attempt: int) -> float:
        base = min(self.policy.max_backoff, self.policy.backoff * 2.0 ** (attempt - 1))
        return base * random.uniform(0.5, 1.5)  # noqa: S311 (jitter, not security)

    def _can_wait(self, wait: float, attempt: int, ends: float) -> bool:
        return attempt < self.policy.max_attempts and self._clock() + wait < ends

    @staticmethod
    def _failure(message: str, method: str, path: str, status: int | None = None) -> OmiTransportError:
        return OmiTransportError(message, status=status, detail=None, method=method, path=path)

    def _json(self, body: bytes, status: int, method: str, path: str) -> Any:
        try:
            return json_loads(body)
        except (ValueError, RecursionError):
            raise self._failure("OMI's answer was not JSON", method, path, status) from None
