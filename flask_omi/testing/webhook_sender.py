"""The fake OMI's side of webhooks: post events to an app as OMI does, signed or not."""

from __future__ import annotations

import json
import secrets
from typing import Any

import requests

from ..signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature_header
from ..webhooks import TRIGGER_ENDPOINTS

#: OMI's trigger names.
TRIGGERS = tuple(TRIGGER_ENDPOINTS)


def webhook_url(url: str, uid: str, sample_rate: int | None = None) -> str:
    """``url?uid=UID`` (``&uid=`` when the URL has a query); audio puts ``sample_rate`` first."""
    query = f"sample_rate={sample_rate}&uid={uid}" if sample_rate is not None else f"uid={uid}"
    return url + ("&" if "?" in url else "?") + query


def send_webhook(
    url: str,
    trigger: str,
    uid: str,
    payload: Any,
    *,
    secret: str | None = None,
    sample_rate: int = 16000,
    timestamp: int | None = None,
    timeout: float = 10.0,
) -> requests.Response:
    """POST one event to ``url`` as OMI would; ``payload`` is JSON data, or bytes for audio."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    if trigger == "audio_bytes":
        body = bytes(payload)
        target = webhook_url(url, uid, sample_rate)
        content_type = "application/octet-stream"
    else:
        body = json.dumps(payload).encode()
        target = webhook_url(url, uid)
        content_type = "application/json"
    headers = {"Content-Type": content_type}
    if secret:
        headers[SIGNATURE_HEADER] = signature_header(secret, uid, body, timestamp)
        headers[EVENT_HEADER] = trigger
        headers[DELIVERY_HEADER] = secrets.token_hex(8)
    return requests.post(target, data=body, headers=headers, timeout=timeout, allow_redirects=False)
