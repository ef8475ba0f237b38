"""Stored records as OMI's response models put them on the wire.

OMI answers through Pydantic response models (``backend/models/integrations.py``): only the
model's fields are sent, null ones are left out (``exclude_none``), and datetimes are written in
UTC with a ``Z``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

CONVERSATION_FIELDS = (
    "id", "created_at", "started_at", "finished_at", "source", "structured", "transcript_segments",
    "discarded", "app_id", "language", "external_data", "geolocation", "status",
)  # fmt: skip
SEGMENT_FIELDS = ("text", "speaker", "is_user", "person_id", "start", "end")
TASK_FIELDS = (
    "id", "description", "completed", "created_at", "updated_at", "due_at", "completed_at", "conversation_id",
)  # fmt: skip
_DATETIME_FIELDS = {"created_at", "started_at", "finished_at", "updated_at", "due_at", "completed_at"}


def iso_z(value: Any) -> Any:
    """An ISO-8601 date-time string in UTC with ``Z``; anything else unchanged."""
    if not isinstance(value, str):
        return value
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        return when.isoformat() + "Z"
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def without_nulls(value: Any) -> Any:
    """A dict without its None values, as OMI's serialiser leaves them out."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _dates_as_z(record: dict[str, Any]) -> dict[str, Any]:
    return {k: iso_z(v) if k in _DATETIME_FIELDS else v for k, v in record.items()}


def conversation_item(conversation: dict[str, Any], max_segments: int) -> dict[str, Any]:
    """A stored conversation as OMI's API returns it."""
    item = {k: conversation.get(k) for k in CONVERSATION_FIELDS}
    segments = [{k: s.get(k) for k in SEGMENT_FIELDS} for s in conversation.get("transcript_segments") or []]
    item["transcript_segments"] = segments if max_segments < 0 else segments[:max_segments]
    return without_nulls(_dates_as_z(item))  # type: ignore[no-any-return]


def memory_item(uid: str, memory: dict[str, Any]) -> dict[str, Any]:
    """A stored memory as OMI's API returns it."""
    item = {"uid": uid, "updated_at": memory.get("created_at"), **memory}
    return without_nulls(_dates_as_z(item))  # type: ignore[no-any-return]


def task_item(task: dict[str, Any]) -> dict[str, Any]:
    """A stored task as OMI's API returns it."""
    return without_nulls(_dates_as_z({k: task.get(k) for k in TASK_FIELDS}))  # type: ignore[no-any-return]
