"""OMI's names on the wire for what it sends to apps: headers, events and webhook triggers.

Shared by the receivers (:mod:`.webhooks`, :mod:`.tools`) and the fake OMI that sends to them, so
the two sides can never disagree on a spelling. Framework-neutral.
(``backend/utils/webhook_signing.py`` and ``backend/utils/app_integrations.py`` in OMI's code.)
"""

from __future__ import annotations

SIGNATURE_HEADER = "X-Omi-Signature"
EVENT_HEADER = "X-Omi-Event"
DELIVERY_HEADER = "X-Omi-Delivery"
#: Sent with durable conversation deliveries only; the same on every retry of one delivery.
IDEMPOTENCY_HEADER = "X-Omi-Idempotency-Key"

#: ``X-Omi-Event`` of a chat-tool call.
TOOL_EVENT = "chat_tool"

#: OMI's webhook triggers (``triggers_on``), each with the name of the receiver that takes it.
TRIGGER_RECEIVERS = {
    "memory_creation": "conversation",
    "transcript_processed": "transcript",
    "audio_bytes": "audio",
}
TRIGGERS = tuple(TRIGGER_RECEIVERS)
