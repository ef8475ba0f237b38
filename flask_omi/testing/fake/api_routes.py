"""The fake OMI's app-facing API (``/v2/integrations/{app_id}/...``), as OMI's backend answers it.

Each behaviour is OMI's own, from ``backend/routers/integration.py`` unless said otherwise:

1. FastAPI validates the query and the body first: 422 with every problem (see
   :mod:`.request_checks`).
2. ``Authorization`` must start with ``Bearer `` (401); the rest, even empty, must be the app's key
   (403, worded per endpoint: OMI spells it three ways).
3. The writes are rate-limited (429, :mod:`.rate_limits`), before anything else is looked up.
4. 404 ``App not found``; 403 ``App is not enabled for this user``; 403 ``App does not have the
   capability to ...``.
5. Then the endpoint's own checks (create-memories' empty input, 400 for an unreadable date).

Answers leave out null fields (``response_model_exclude_none``) and write datetimes with ``Z``
(``backend/models/integrations.py``, ``json_encoders``).
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from flask_omi.testing.fake.rate_limits import Verdict
from flask_omi.testing.fake.request_checks import ApiError, Problems, render_api_error
from flask_omi.testing.fake.store import FakeOmiStore
from flask_omi.testing.fake.wire import conversation_item, iso_z, memory_item, task_item, without_nulls

api = Blueprint("fake_api", __name__, url_prefix="/v2/integrations/<app_id>")

CONVERSATION_TEXT_SOURCES = ("audio_transcript", "message", "other_text")
MEMORY_TEXT_SOURCES = ("email", "social_post", "other")
CAPABILITY_TEXT = {
    "create_conversation": "create conversations",
    "create_memories": "create memories",
    "read_memories": "read memories",
    "read_conversations": "read conversations",
    "read_tasks": "read tasks",
}
#: The wrong-key answer of each endpoint, as OMI words it.
WRONG_KEY = {
    "create_conversation": "Invalid integration API key",
    "create_memories": "Invalid integrationAPI key",
    "get_memories": "Invalid integrationAPI key",
}
DEFAULT_WRONG_KEY = "Invalid API key"
MISSING_AUTH = "Missing or invalid Authorization header. Must be 'Bearer API_KEY'"


api.register_error_handler(ApiError, render_api_error)


def _store() -> FakeOmiStore:
    store: FakeOmiStore = current_app.extensions["fake_omi"]
    return store


def check_key(app_id: str, endpoint: str) -> None:
    """OMI's key check for ``app_id`` and the error it answers for a missing or wrong key (the wording
    differs per endpoint, as in OMI)."""
    header = request.headers.get("Authorization")
    if not header or not header.startswith("Bearer "):
        raise ApiError(401, MISSING_AUTH)
    key_app = _store().api_keys.get(header.replace("Bearer ", ""))
    if key_app is None or not hmac.compare_digest(key_app, app_id):
        raise ApiError(403, WRONG_KEY.get(endpoint, DEFAULT_WRONG_KEY))


def _rate_limited(verdict: Verdict) -> ApiError:
    """``backend/utils/other/endpoints.py`` ``_enforce_rate_limit``."""
    headers = {"X-RateLimit-Limit": str(verdict.limit), "X-RateLimit-Remaining": "0"}
    headers["Retry-After"] = str(verdict.reset)
    return ApiError(429, f"Rate limit exceeded. Try again in {verdict.reset}s.", headers)


def _gate(app_id: str, uid: str, endpoint: str, action: str, policy: str | None = None) -> None:
    """Steps 2 to 4 of the module docstring, in OMI's order."""
    store = _store()
    check_key(app_id, endpoint)
    if policy is not None:
        verdict = store.rate_limits.take(policy, f"{app_id}:{uid}")
        if not verdict.allowed:
            raise _rate_limited(verdict)
    app = store.apps.get(app_id)
    if app is None:
        raise ApiError(404, "App not found")
    if not store.is_enabled(uid, app_id):
        raise ApiError(403, "App is not enabled for this user")
    if action not in app.actions:
        raise ApiError(403, f"App does not have the capability to {CAPABILITY_TEXT[action]}")


def parse_date(raw: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """OMI's date parameters: ``YYYY-MM-DD`` is the start (or, for an end, the last microsecond)
    of that UTC day; anything else is ISO-8601 with ``Z`` allowed; unreadable is a 400."""
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            return day + timedelta(days=1, microseconds=-1) if end_of_day else day
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, f"Invalid {name} format. Use ISO format (YYYY-MM-DDTHH:MM:SS.sssZ) or YYYY-MM-DD"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _dates(*names: str) -> dict[str, datetime | None]:
    return {
        name: parse_date(request.args.get(name), name, end_of_day=name.endswith("end_date")) for name in names
    }


def _between(stamp: Any, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    if not stamp:
        return False
    when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return (start is None or when >= start) and (end is None or when <= end)


def _newest_first(kind: str, uid: str) -> list[dict[str, Any]]:
    store = _store()
    with store.lock:
        return list(reversed(getattr(store, kind).get(uid, [])))


# -- writes -------------------------------------------------------------------------------------
@api.post("/user/conversations")
def create_conversation(app_id: str) -> Any:
    """``POST /v2/integrations/{app_id}/user/conversations`` as OMI checks and answers it."""
    checks = Problems()
    uid = checks.query_str("uid", required=True)
    body = checks.json_object()
    text = checks.field(body, "text", str, required=True, nullable=False)
    text_source = checks.choice(body, "text_source", CONVERSATION_TEXT_SOURCES, "audio_transcript")
    started, finished = checks.datetime_field(body, "started_at"), checks.datetime_field(body, "finished_at")
    geolocation = checks.field(body, "geolocation", dict)
    if geolocation is not None:
        # latitude -90..90, longitude -180..180 (integration-public-openapi.json 0def44eb)
        for coordinate, bound in (("latitude", 90), ("longitude", 180)):
            value = checks.field(
                geolocation,
                coordinate,
                float,
                loc=("body", "geolocation"),
                required=True,
                nullable=False,
            )
            where = ("body", "geolocation", coordinate)
            if isinstance(value, (int, float)) and value < -bound:
                checks.add(
                    "greater_than_equal", where, f"Input should be greater than or equal to {-bound}", value
                )
            elif isinstance(value, (int, float)) and value > bound:
                checks.add("less_than_equal", where, f"Input should be less than or equal to {bound}", value)
    for name in ("text_source_spec", "language", "app_id", "client_device_id", "client_platform"):
        checks.field(body, name, str)
    checks.check()
    assert uid is not None
    _gate(app_id, uid, "create_conversation", "create_conversation", "integration:conversations")
    store = _store()
    started = started or datetime.fromtimestamp(store.clock(), tz=timezone.utc)
    store.add_conversation(
        uid,
        text,
        started_at=started.isoformat(),
        finished_at=(finished or started + timedelta(seconds=300)).isoformat(),
        language=body.get("language") or "en",
        geolocation=geolocation,
        text_source=text_source,
    )
    return jsonify({})


@api.post("/user/memories")
def create_memories(app_id: str) -> Any:
    """``POST /v2/integrations/{app_id}/user/memories`` as OMI checks and answers it."""
    checks = Problems()
    uid = checks.query_str("uid", required=True)
    body = checks.json_object()
    # ``text: Optional[str]`` with no default: the key is required, null is allowed.
    text = checks.field(body, "text", str, required=True)
    checks.choice(body, "text_source", MEMORY_TEXT_SOURCES, "other")
    for name in ("text_source_spec", "source_id", "source_url", "app_id"):
        checks.field(body, name, str)
    checks.field(body, "artifact_ref", dict)
    memories = checks.field(body, "memories", list) or []
    for index, memory in enumerate(memories):
        where: tuple[str | int, ...] = ("body", "memories", index)
        if not isinstance(memory, dict):
            checks.add("model_type", where, "Input should be a valid dictionary or object", memory)
            continue
        checks.field(memory, "content", str, loc=where, required=True, nullable=False)
        tags = checks.field(memory, "tags", list, loc=where)
        for position, tag in enumerate(tags or []):
            if not isinstance(tag, str):
                checks.add("string_type", (*where, "tags", position), "Input should be a valid string", tag)
        checks.field(memory, "artifact_ref", dict, loc=where)
    checks.check()
    assert uid is not None
    _gate(app_id, uid, "create_memories", "create_memories", "integration:memories")
    if (not text or not text.strip()) and not memories:
        raise ApiError(422, "Either text or explicit memories(facts) are required and cannot be empty")
    store = _store()
    for memory in memories:
        extra = {
            k: memory[k] for k in ("source_id", "source_url", "artifact_ref") if memory.get(k) is not None
        }
        store.add_memory(uid, memory["content"], tags=list(memory.get("tags") or []), **extra)
    if text and text.strip():
        extra = {k: body[k] for k in ("source_id", "source_url", "artifact_ref") if body.get(k) is not None}
        store.add_memory(uid, text, **extra)
    return jsonify({})


# -- reads --------------------------------------------------------------------------------------
@api.get("/memories")
def get_memories(app_id: str) -> Any:
    """``GET /v2/integrations/{app_id}/memories`` as OMI checks and answers it."""
    checks = Problems()
    uid = checks.query_str("uid", required=True)
    limit, offset = checks.query_int("limit", 100, ge=1, le=1000), checks.query_int("offset", 0, ge=0)
    checks.check()
    assert uid is not None
    _gate(app_id, uid, "get_memories", "read_memories")
    page = _newest_first("memories", uid)[offset : offset + limit]
    return jsonify(memories=[memory_item(uid, m) for m in page])


def _segments_limit(checks: Problems) -> int:
    return checks.query_int("max_transcript_segments", 100, ge=-1, le=1000)


@api.get("/conversations")
def get_conversations(app_id: str) -> Any:
    """``GET /v2/integrations/{app_id}/conversations`` with OMI's filters and bounds."""
    checks = Problems()
    uid = checks.query_str("uid", required=True)
    limit, offset = checks.query_int("limit", 100, ge=1, le=1000), checks.query_int("offset", 0, ge=0)
    include_discarded = checks.query_bool("include_discarded", False)
    segments = _segments_limit(checks)
    statuses = request.args.getlist("statuses")  # repeated: ?statuses=a&statuses=b
    checks.check()
    assert uid is not None
    _gate(app_id, uid, "get_conversations", "read_conversations")
    if len(statuses) > 20:  # backend/routers/integration.py 0def44eb
        raise ApiError(400, "statuses accepts at most 20 values")
    dates = _dates("start_date", "end_date")
    items = [
        c
        for c in _newest_first("conversations", uid)
        if (include_discarded or not c.get("discarded"))
        and (not statuses or c.get("status") in statuses)
        and _between(c.get("created_at"), dates["start_date"], dates["end_date"])
    ]
    return jsonify(conversations=[conversation_item(c, segments) for c in items[offset : offset + limit]])


@api.post("/search/conversations")
def search_conversations(app_id: str) -> Any:
    """Also ``backend/utils/conversations/search.py``: page and per_page are clamped (per_page to
    250), an empty query with no filter finds nothing, matches are by title and overview, newest
    first, and ``total_pages`` is one more than the page while a page comes back full."""
    checks = Problems()
    uid = checks.query_str("uid", required=True)
    segments = _segments_limit(checks)
    body = checks.json_object()
    query = checks.field(body, "query", str, nullable=False, default="")
    page = max(1, checks.field(body, "page", int) or 1)
    per_page = max(1, min(checks.field(body, "per_page", int) or 10, 250))
    include_discarded = checks.field(body, "include_discarded", bool, default=True)
    speaker_id = checks.field(body, "speaker_id", str)
    raw_start, raw_end = checks.field(body, "start_date", str), checks.field(body, "end_date", str)
    checks.check()
    assert uid is not None
    _gate(app_id, uid, "search_conversations", "read_conversations")
    start = parse_date(raw_start, "start_date")
    end = parse_date(raw_end, "end_date", end_of_day=True)
    words = query.strip().lower()
    hits: list[dict[str, Any]] = []
    if words or speaker_id or start or end:
        hits = [
            c
            for c in _newest_first("conversations", uid)
            if (include_discarded is not False or not c.get("discarded"))
            and _between(c.get("created_at"), start, end)
            and (not words or words in (c["structured"]["title"] + " " + c["structured"]["overview"]).lower())
            and _speaker_matches(c, speaker_id)
        ]
    shown = hits[(page - 1) * per_page : page * per_page]
    return jsonify(
        conversations=[conversation_item(c, segments) for c in shown],
        total_pages=page + 1 if len(shown) >= per_page else page,
        current_page=page,
        per_page=per_page,
    )


def _speaker_matches(conversation: dict[str, Any], speaker_id: str | None) -> bool:
    """``user`` is the account owner (``is_user``); anything else is a ``person_id``."""
    if not speaker_id:
        return True
    segments = conversation.get("transcript_segments") or []
    if speaker_id == "user":
        return any(s.get("is_user") for s in segments)
    return any(s.get("person_id") == speaker_id for s in segments)


@api.get("/tasks")
def get_tasks(app_id: str) -> Any:
    """``GET /v2/integrations/{app_id}/tasks`` with OMI's filters."""
    checks = Problems()
    uid = checks.query_str("uid", required=True)
    limit, offset = checks.query_int("limit", 100, ge=1, le=1000), checks.query_int("offset", 0, ge=0)
    completed = checks.query_bool("completed", None)
    conversation_id = request.args.get("conversation_id")
    checks.check()
    assert uid is not None
    _gate(app_id, uid, "get_tasks", "read_tasks")
    dates = _dates("start_date", "end_date", "due_start_date", "due_end_date")
    items = [
        t
        for t in _newest_first("tasks", uid)
        if (completed is None or t["completed"] == completed)
        and (conversation_id is None or t.get("conversation_id") == conversation_id)
        and _between(t.get("created_at"), dates["start_date"], dates["end_date"])
        and _between(t.get("due_at"), dates["due_start_date"], dates["due_end_date"])
    ]
    return jsonify(tasks=[task_item(t) for t in items[offset : offset + limit]])


# -- notifications ------------------------------------------------------------------------------
@api.post("/notification")
def send_notification(app_id: str) -> Any:
    """Its own order: key, app, installed (worded differently), then the clock-hour limit."""
    checks = Problems()
    message = checks.query_str("message", required=True)
    uid = checks.query_str("uid", required=True)
    checks.check()
    assert uid is not None and message is not None
    store = _store()
    check_key(app_id, "send_notification")
    headers = installed_and_within_limit(store, app_id, uid)
    with store.lock:
        store.notifications.setdefault(uid, []).append(message)
    response = jsonify(status="Ok")
    response.headers.update(headers)
    return response


def installed_and_within_limit(store: FakeOmiStore, app_id: str, uid: str) -> dict[str, str]:
    """What both of OMI's notification endpoints check after the key: 404 for an unknown app, 403
    when the user lacks the app, then the shared clock-hour limit. Returns the rate headers."""
    if app_id not in store.apps:
        raise ApiError(404, "App not found")
    if not store.is_enabled(uid, app_id):
        raise ApiError(403, "User does not have this app installed")
    verdict = store.rate_limits.take_notification(app_id, uid)
    headers = {
        "X-RateLimit-Limit": str(verdict.limit),
        "X-RateLimit-Remaining": str(verdict.remaining),
        "X-RateLimit-Reset": str(verdict.reset),
    }
    if not verdict.allowed:
        detail = f"Rate limit exceeded. Maximum {verdict.limit} notifications per hour."
        raise ApiError(429, detail, {**headers, "Retry-After": str(verdict.reset)})
    return headers


__all__ = ["api", "check_key", "installed_and_within_limit", "iso_z", "parse_date", "without_nulls"]
