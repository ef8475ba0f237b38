"""The fake OMI's side of webhooks: post events to an app as OMI does, signed or not.

From OMI's ``backend/utils/app_integrations.py`` and ``backend/utils/webhook_signing.py``:

- ``memory_creation``: ``POST url?uid=`` (``&uid=`` when the URL has a query) with the conversation
  JSON. A durable delivery carries ``X-Omi-Idempotency-Key``, the same on every retry, and is
  retried on 5xx, 408, 425, 429 and timeouts; any other 4xx drops it.
- ``transcript_processed``: ``POST url?uid=`` with ``{"session_id": uid, "segments": [...]}``.
- ``audio_bytes``: ``POST url?sample_rate=N&uid=`` with raw PCM16 as ``application/octet-stream``.
- Signed deliveries add ``X-Omi-Signature``, ``X-Omi-Event`` (``memory_created``,
  ``realtime_transcript``, ``audio_bytes``) and ``X-Omi-Delivery`` (a UUID; for a durable delivery
  the idempotency key). JSON is sent compact, as signed. When OMI cannot read the secret it sends
  the delivery unsigned, with none of those three headers.
- OMI waits 2 s to connect and 30 s for an answer.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from flask_omi.inbound.protocol import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TRIGGERS,
)
from flask_omi.inbound.signing import signature_header

#: OMI's trigger names.
#: ``X-Omi-Event`` for each trigger.
EVENT_NAMES = {
    "memory_creation": "memory_created",
    "transcript_processed": "realtime_transcript",
    "audio_bytes": "audio_bytes",
}
#: Answers after which OMI tries a durable delivery again (``_delivery_failure_is_retryable``).
RETRIED_STATUSES = frozenset({408, 425, 429})
TIMEOUT = (2.0, 30.0)


def webhook_url(url: str, uid: str, sample_rate: int | None = None) -> str:
    """``url?uid=UID`` (``&uid=`` when the URL has a query); audio puts ``sample_rate`` first."""
    query = f"sample_rate={sample_rate}&uid={uid}" if sample_rate is not None else f"uid={uid}"
    return url + ("&" if "?" in url else "?") + query


def is_retried(status: int | None) -> bool:
    """Whether OMI retries a durable delivery after this answer (None: a timeout or no answer)."""
    return status is None or status >= 500 or status in RETRIED_STATUSES


@dataclass
class Delivery:
    """One event and every attempt OMI made to deliver it."""

    trigger: str
    uid: str
    delivery_id: str
    idempotency_key: str | None
    #: Each attempt's status, None for a timeout or a refused connection.
    statuses: list[int | None] = field(default_factory=list)
    response: requests.Response | None = None

    @property
    def delivered(self) -> bool:
        """Whether an attempt was answered with a 2xx."""
        return bool(self.statuses) and self.statuses[-1] is not None and 200 <= self.statuses[-1] < 300


def _body(trigger: str, uid: str, payload: Any) -> tuple[bytes, str]:
    if trigger == "audio_bytes":
        return bytes(payload), "application/octet-stream"
    if trigger == "transcript_processed" and isinstance(payload, list):
        payload = {"session_id": uid, "segments": payload}
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode(), "application/json"


def deliver_webhook(
    url: str,
    trigger: str,
    uid: str,
    payload: Any,
    *,
    secret: str | list[str] | None = None,
    sample_rate: int = 16000,
    timestamp: int | None = None,
    durable: bool | None = None,
    attempts: int = 3,
    retry_wait: float = 0.05,
    timeout: float | tuple[float, float] = TIMEOUT,
) -> Delivery:
    """Deliver one event as OMI does, retrying a durable one; ``payload`` is JSON data, bytes for
    audio, or a list of segments for a transcript. Conversations are durable unless told not."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    durable = trigger == "memory_creation" if durable is None else durable
    body, content_type = _body(trigger, uid, payload)
    target = webhook_url(url, uid, sample_rate if trigger == "audio_bytes" else None)
    delivery = Delivery(trigger, uid, str(uuid.uuid4()), None)
    headers = {"Content-Type": content_type}
    if durable:
        delivery.idempotency_key = delivery.delivery_id
        headers[IDEMPOTENCY_HEADER] = delivery.delivery_id
    for attempt in range(max(1, attempts) if durable else 1):  # bounded: at most `attempts` posts
        if attempt:
            time.sleep(retry_wait)
        if secret:  # signed anew for each attempt, with the time it is sent
            headers[SIGNATURE_HEADER] = signature_header(secret, uid, body, timestamp)
            headers[EVENT_HEADER] = EVENT_NAMES[trigger]
            headers[DELIVERY_HEADER] = delivery.delivery_id
        try:
            delivery.response = requests.post(
                target, data=body, headers=headers, timeout=timeout, allow_redirects=False
            )
            status: int | None = delivery.response.status_code
        except requests.RequestException:
            status = None
        delivery.statuses.append(status)
        if not is_retried(status):
            break
    return delivery


def send_webhook(url: str, trigger: str, uid: str, payload: Any, **options: Any) -> requests.Response:
    """One attempt of :func:`deliver_webhook`, returning OMI's view of the answer."""
    delivery = deliver_webhook(url, trigger, uid, payload, attempts=1, **options)
    if delivery.response is None:
        raise requests.ConnectionError(f"the app did not answer the {trigger} webhook")
    return delivery.response
