"""Shapes of what OMI's API returns to :class:`~flask_omi.OmiClient`, as TypedDicts.

They describe the fields OMI documents; the dicts keep every field OMI sends, known or not, so
nothing is lost when OMI adds one. All fields are optional because OMI omits some on older records.
The two shapes that webhooks carry too end in ``Dict`` here; the webhook side has typed objects of
the same names without it (:class:`flask_omi.TranscriptSegment`, :class:`flask_omi.Structured`).
Imports no Flask.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypedDict


class Memory(TypedDict, total=False):
    """A memory (fact) OMI keeps about the user, as ``get_memories`` returns it."""

    id: str
    uid: str
    content: str
    category: str
    tags: list[str]
    created_at: str
    updated_at: str
    conversation_id: str
    #: A source-specific pointer to where the memory came from, as the app that made it gave it.
    artifact_ref: dict[str, Any]


class NewMemory(TypedDict, total=False):
    """One explicit memory for ``create_memories``; only ``content`` is required."""

    content: str
    tags: list[str]
    source_id: str
    source_url: str
    artifact_ref: dict[str, Any]


class TranscriptSegmentDict(TypedDict, total=False):
    """One piece of a conversation's transcript, as the API returns it."""

    text: str
    speaker: str
    is_user: bool
    person_id: str
    start: float
    end: float


class StructuredDict(TypedDict, total=False):
    """OMI's summary of a conversation, as the API returns it."""

    title: str
    overview: str
    emoji: str
    category: str
    action_items: list[Any]
    events: list[Any]


class Geolocation(TypedDict, total=False):
    """Where a conversation happened: latitude -90..90, longitude -180..180 (openapi 0def44eb)."""

    latitude: float
    longitude: float
    accuracy: float
    altitude: float
    capture_source: str
    captured_at: str


class Conversation(TypedDict, total=False):
    """A conversation, as ``get_conversations`` returns it."""

    id: str
    created_at: str
    started_at: str
    finished_at: str
    source: str
    structured: StructuredDict
    transcript_segments: list[TranscriptSegmentDict]
    language: str
    geolocation: Geolocation
    status: str
    discarded: bool
    app_id: str
    external_data: dict[str, Any]


class ConversationSearch(TypedDict):
    """A page of ``search_conversations`` results."""

    conversations: list[Conversation]
    total_pages: int
    current_page: int
    per_page: int


class Task(TypedDict, total=False):
    """An action item OMI extracted, as ``get_tasks`` returns it."""

    id: str
    description: str
    completed: bool
    created_at: str
    updated_at: str
    due_at: str
    completed_at: str
    conversation_id: str


class NotificationResult(TypedDict):
    """What ``send_notification`` and ``send_chat_message`` return."""

    status: str
    rate_limit_remaining: int | None


def iso_datetime(value: datetime, name: str) -> str:
    """ISO-8601 with a timezone; a naive datetime is refused rather than guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} is a naive datetime; OMI needs a timezone. Pass an aware one, "
            "e.g. datetime.now(timezone.utc)."
        )
    return value.isoformat()


def date_param(value: date | datetime | str | None, name: str) -> str | None:
    """A date filter as OMI accepts it: ISO-8601 with a timezone, or ``YYYY-MM-DD``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return iso_datetime(value, name)
    return value.isoformat()
