"""Typed views of what OMI's webhooks carry.

Each object keeps the decoded JSON in ``raw``, so fields OMI adds later are never lost; missing
optional fields become None or empty. A body of the wrong shape raises ``InboundPayloadError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, overload

from flask_omi.errors import InboundPayloadError

T = TypeVar("T")
#: The classes :func:`fast_new` builds, with their field names, checked once per class.
_FAST_FIELDS: dict[type, frozenset[str]] = {}


def fast_new(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the frozen dataclass ``cls`` holding exactly ``values``, made without its
    ``__init__``.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which is most
    of the cost of typing a live transcript (many segments, many times a minute). Filling the
    instance's ``__dict__`` gives the same object, as long as ``values`` names every field and the
    class has no ``__post_init__`` or slots: both are checked, so a later change to a class fails
    loudly here instead of building a broken object.
    """
    names = _FAST_FIELDS.get(cls)
    if names is None:
        names = _fast_fields(cls)
    if values.keys() != names:
        raise TypeError(f"{cls.__name__} has the fields {sorted(names)}, not {sorted(values)}")
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


def _fast_fields(cls: type) -> frozenset[str]:
    if not dataclasses.is_dataclass(cls) or "__slots__" in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} cannot be built by fast_new: it needs its own __init__")
    fields = dataclasses.fields(cls)
    if not all(f.init for f in fields):
        raise TypeError(f"{cls.__name__} cannot be built by fast_new: a field is not set by __init__")
    names = _FAST_FIELDS[cls] = frozenset(f.name for f in fields)
    return names


def _invalid(reason: str) -> InboundPayloadError:
    return InboundPayloadError("payload_invalid", reason)


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"'{key}' must be a string")
    return value


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"'{key}' must be a number")
    return float(value)


def _datetime(data: dict[str, Any], key: str) -> datetime | None:
    value = _str(data, key)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"'{key}' is not an ISO-8601 date-time") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{what} must be a JSON object")
    return value


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(f"'{key}' must be a list")
    return value


_PLAIN_NUMBERS = (float, int, type(None))  # type() is exact: a bool is not taken as a number


def _is_plain_segment(value: Any) -> bool:
    """The usual, well-formed segment: an object with a text, an optional speaker, plain numbers."""
    if type(value) is not dict:
        return False
    speaker = value.get("speaker")
    return (
        type(value.get("text")) is str
        and (speaker is None or type(speaker) is str)
        and type(value.get("start")) in _PLAIN_NUMBERS
        and type(value.get("end")) in _PLAIN_NUMBERS
    )


@dataclass(frozen=True)
class TranscriptSegment:
    """One segment of a transcript as OMI sends it: text, speaker, times."""

    text: str
    speaker: str | None
    is_user: bool
    start: float | None
    end: float | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, value: Any) -> TranscriptSegment:
        # Live transcripts arrive many times a minute with several segments each: the usual,
        # well-formed segment is taken in one step; anything else goes through the full checks.
        """Type one transcript segment as OMI sends it."""
        if _is_plain_segment(value):
            start, end = value.get("start"), value.get("end")
            return fast_new(
                cls,
                {
                    "text": value["text"],
                    "speaker": value.get("speaker"),
                    "is_user": bool(value.get("is_user", False)),
                    "start": None if start is None else float(start),
                    "end": None if end is None else float(end),
                    "raw": value,
                },
            )
        data = _object(value, "a transcript segment")
        return cls(
            text=_str(data, "text") or "",
            speaker=_str(data, "speaker"),
            is_user=bool(data.get("is_user", False)),
            start=_number(data, "start"),
            end=_number(data, "end"),
            raw=data,
        )


class Segments(Sequence[TranscriptSegment]):
    """A delivery's transcript segments, typed when first read.

    A live transcript arrives every few seconds per user with up to hundreds of segments, and many
    handlers read none of them (they queue the batch, or look at the session only): typing every
    segment up front cost more than parsing the JSON. So the list is checked when the delivery
    arrives, and its segments when they are first read: one of the wrong shape then raises
    :class:`~flask_omi.InboundPayloadError`, which the receiver answers 400 (the handler has begun
    by then). A delivery for a background handler is checked whole before it is queued. Compares
    equal to any sequence of the same segments.
    """

    __slots__ = ("_raw", "_typed")
    _raw: list[Any]
    _typed: list[TranscriptSegment] | None

    def __init__(self, raw: list[Any]) -> None:
        self._raw, self._typed = raw, None

    def check(self) -> None:
        """Check every segment now (:class:`~flask_omi.InboundPayloadError` for a wrong shape),
        typing only those of an unusual shape."""
        if self._typed is None and not all(map(_is_plain_segment, self._raw)):
            self.typed()

    def typed(self) -> list[TranscriptSegment]:
        """Every segment, typed now (and once)."""
        if self._typed is None:
            self._typed = [TranscriptSegment.from_json(item) for item in self._raw]
        return self._typed

    @overload
    def __getitem__(self, index: int) -> TranscriptSegment: ...
    @overload
    def __getitem__(self, index: slice) -> list[TranscriptSegment]: ...
    def __getitem__(self, index: int | slice) -> TranscriptSegment | list[TranscriptSegment]:
        return self.typed()[index]

    def __len__(self) -> int:
        return len(self._raw)

    def __iter__(self) -> Iterator[TranscriptSegment]:
        return iter(self.typed())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Segments, list, tuple)):
            return self.typed() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.typed())


@dataclass(frozen=True)
class Structured:
    """A conversation's structured part, as OMI's model wrote it: title, overview, emoji, category,
    action items, events."""

    title: str
    overview: str
    emoji: str | None
    category: str | None
    action_items: list[Any]
    events: list[Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, value: Any) -> Structured:
        """Type a conversation's ``structured`` object (None or missing reads as empty)."""
        data = _object(value if value is not None else {}, "'structured'")
        return fast_new(  # as for segments: a frozen dataclass's __init__ costs a call per field
            cls,
            {
                "title": _str(data, "title") or "",
                "overview": _str(data, "overview") or "",
                "emoji": _str(data, "emoji"),
                "category": _str(data, "category"),
                "action_items": _list(data, "action_items"),
                "events": _list(data, "events"),
                "raw": data,
            },
        )


@dataclass(frozen=True)
class ConversationCreated:
    """``memory_creation``: a conversation OMI has just finished processing."""

    uid: str
    id: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    structured: Structured
    transcript_segments: Segments
    language: str | None
    status: str | None
    raw: dict[str, Any] = field(repr=False)
    #: ``X-Omi-Delivery``: this delivery's id (OMI sends it with signed deliveries).
    delivery_id: str | None = None
    #: ``X-Omi-Idempotency-Key``: the same on every retry of one durable conversation delivery.
    idempotency_key: str | None = None

    @classmethod
    def from_json(
        cls, uid: str, value: Any, *, delivery_id: str | None = None, idempotency_key: str | None = None
    ) -> ConversationCreated:
        """Type a ``memory_creation`` body (``InboundPayloadError`` for a wrong shape)."""
        data = _object(value, "the conversation")
        return fast_new(
            cls,
            {
                "uid": uid,
                "id": _str(data, "id"),
                "created_at": _datetime(data, "created_at"),
                "started_at": _datetime(data, "started_at"),
                "finished_at": _datetime(data, "finished_at"),
                "structured": Structured.from_json(data.get("structured")),
                "transcript_segments": Segments(_list(data, "transcript_segments")),
                "language": _str(data, "language"),
                "status": _str(data, "status"),
                "raw": data,
                "delivery_id": delivery_id,
                "idempotency_key": idempotency_key,
            },
        )


@dataclass(frozen=True)
class TranscriptBatch:
    """``transcript_processed``: new live transcript segments of a session."""

    uid: str
    session_id: str | None
    segments: Segments
    raw: dict[str, Any] = field(repr=False)
    delivery_id: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def from_json(
        cls, uid: str, value: Any, *, delivery_id: str | None = None, idempotency_key: str | None = None
    ) -> TranscriptBatch:
        """Type a ``transcript_processed`` body; ``segments`` is required."""
        data = _object(value, "the transcript batch")
        if "segments" not in data:
            raise _invalid("'segments' is required")
        return fast_new(  # as for segments: a transcript arrives many times a minute
            cls,
            {
                "uid": uid,
                "session_id": _str(data, "session_id"),
                "segments": Segments(_list(data, "segments")),
                "raw": data,
                "delivery_id": delivery_id,
                "idempotency_key": idempotency_key,
            },
        )


@dataclass(frozen=True)
class AudioChunk:
    """``audio_bytes``: raw PCM16 little-endian mono audio at ``sample_rate`` Hz."""

    uid: str
    sample_rate: int
    data: bytes = field(repr=False)
    delivery_id: str | None = None
    idempotency_key: str | None = None

    @property
    def samples(self) -> int:
        """Number of 16-bit samples in ``data``."""
        return len(self.data) // 2

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples / self.sample_rate


#: What OMI can put into a proactive prompt (``backend/models/app.py`` scopes): the user's name,
#: facts (memories), conversations matching ``context``, and recent chat.
PROACTIVE_SCOPES = ("user_name", "user_facts", "user_context", "user_chat")
#: OMI refuses longer prompts (and tells the user so): ``_process_proactive_notification``.
MAX_PROMPT_CHARS = 128_000


@dataclass(frozen=True)
class Notify:
    """A transcript handler's answer asking OMI for a *proactive notification*.

    OMI fills the scopes named in ``params`` into the prompt (``{{user_name}}``,
    ``{{user_facts}}``, ``{{user_context}}``, ``{{user_chat}}``), has its language model write the
    notification, and pushes it, if the app has the ``proactive_notification`` capability with
    those scopes. OMI sends at most one per user and app every 30 s, and counts it against the
    user's daily budget. ``context`` (``{"question": ..., "filters": {"people", "topics",
    "entities", "dates"}}``) chooses the conversations for ``user_context``. ``message`` is sent
    beside it as a plain notification (OMI pushes messages longer than 5 characters).
    """

    prompt: str
    params: tuple[str, ...] = ()
    context: dict[str, Any] | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("Notify needs a prompt")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"OMI refuses prompts over {MAX_PROMPT_CHARS} characters")
        unknown = [p for p in self.params if p not in PROACTIVE_SCOPES]
        if unknown:
            raise ValueError(f"unknown scope {unknown[0]!r}; OMI knows {', '.join(PROACTIVE_SCOPES)}")
        object.__setattr__(self, "params", tuple(self.params))

    def as_answer(self) -> dict[str, Any]:
        """The JSON a transcript webhook answers OMI with."""
        notification: dict[str, Any] = {"prompt": self.prompt, "params": list(self.params)}
        if self.context is not None:
            notification["context"] = self.context
        answer: dict[str, Any] = {"notification": notification}
        if self.message is not None:
            answer["message"] = self.message
        return answer
