"""The fake OMI's app-facing API (``/v2/integrations/{app_id}/...``), with OMI's error order.

Every request is judged in the order OMI judges it: 401 missing or malformed ``Authorization``,
403 invalid key, 429 rate limited (with ``Retry-After``), 404 app not found, 403 app not enabled for
the uid, 403 missing capability, 422 validation, 400 bad date. Error bodies are ``{"detail": ...}``.
"""

from __future__ import annotations

import hmac
import math
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.wrappers import Response

from .store import LIMITS, FakeOmiStore

api = Blueprint("fake_api", __name__, url_prefix="/v2/integrations/<app_id>")

CONVERSATION_SOURCES = {"audio_transcript", "message", "other_text"}
MEMORY_SOURCES = {"email", "social_post", "other"}
CAPABILITY_TEXT = {
    "create_conversation": "create conversations",
    "create_memories": "create memories",
    "read_memories": "read memories",
    "read_conversations": "read conversations",
    "read_tasks": "read tasks",
}


class ApiError(Exception):
    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


@api.errorhandler(ApiError)
def _render(error: ApiError) -> Response:
    response = jsonify(detail=error.detail)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _store() -> FakeOmiStore:
    store: FakeOmiStore = current_app.extensions["fake_omi"]
    return store


def _invalid(location: str, name: str, message: str) -> ApiError:
    return ApiError(422, [{"loc": [location, name], "msg": message, "type": "value_error"}])


def _gate(app_id: str, action: str | None, limit: str | None = None) -> str:
    """Check a request as OMI does, in OMI's order; returns the uid."""
    store = _store()
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise ApiError(401, "Missing or invalid Authorization header. Must be 'Bearer API_KEY'")
    key_app = store.api_keys.get(header[7:].strip())
    if key_app is None or not hmac.compare_digest(key_app, app_id):
        raise ApiError(403, "Invalid API key")
    uid = request.args.get("uid")
    if not uid:
        raise _invalid("query", "uid", "Field required")
    if limit is not None:
        allowed, remaining, reset = store.take_rate(limit, app_id, uid)
        g.fake_omi_rate = (remaining, reset)
        if not allowed:
            raise ApiError(429, "Rate limit exceeded. Try again later.", {"Retry-After": str(reset)})
    app = store.apps.get(app_id)
    if app is None:
        raise ApiError(404, "App not found")
    if not store.is_enabled(uid, app_id):
        raise ApiError(403, "App is not enabled for this user")
    if action is not None and action not in app.actions:
        raise ApiError(403, f"App does not have the capability to {CAPABILITY_TEXT[action]}")
    return uid


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid("query", name, "Input should be a valid integer") from None
    if not low <= value <= high:
        raise _invalid("query", name, f"Input should be between {low} and {high}")
    return value


def _bool_arg(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise _invalid("query", name, "Input should be a valid boolean")


def _date(raw: Any) -> datetime | None:
    if raw in (None, ""):
        return None
    try:
        value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"Invalid date format: {raw!s:.40}. Use ISO-8601 or YYYY-MM-DD") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _in_range(item: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
    created = datetime.fromisoformat(item["created_at"])
    return (start is None or created >= start) and (end is None or created <= end)


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _invalid("body", "", "Input should be a valid dictionary")
    return body


def _page(items: list[dict[str, Any]], default_limit: int, high: int) -> list[dict[str, Any]]:
    limit = _int_arg("limit", default_limit, 1, high)
    offset = _int_arg("offset", 0, 0, 10**9)
    return items[offset : offset + limit]


@api.post("/user/conversations")
def create_conversation(app_id: str) -> Any:
    uid = _gate(app_id, "create_conversation", "create_conversation")
    body = _json_body()
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _invalid("body", "text", "Field required")
    if body.get("text_source", "audio_transcript") not in CONVERSATION_SOURCES:
        raise _invalid(
            "body", "text_source", "Input should be one of " + ", ".join(sorted(CONVERSATION_SOURCES))
        )
    geolocation = body.get("geolocation")
    if geolocation is not None and not (
        isinstance(geolocation, dict) and {"latitude", "longitude"} <= geolocation.keys()
    ):
        raise _invalid("body", "geolocation", "latitude and longitude are required")
    started = _date(body.get("started_at")) or datetime.fromtimestamp(_store().clock(), tz=timezone.utc)
    finished = _date(body.get("finished_at")) or started + timedelta(seconds=300)
    _store().add_conversation(
        uid,
        text,
        started_at=started.isoformat(),
        finished_at=finished.isoformat(),
        language=body.get("language") or "en",
        geolocation=geolocation,
        text_source=body.get("text_source", "audio_transcript"),
    )
    return jsonify({})


@api.post("/user/memories")
def create_memories(app_id: str) -> Any:
    uid = _gate(app_id, "create_memories", "create_memories")
    body = _json_body()
    text, memories = body.get("text"), body.get("memories")
    if not text and not memories:
        raise _invalid("body", "", "Either text or memories must be provided")
    if body.get("text_source", "other") not in MEMORY_SOURCES:
        raise _invalid("body", "text_source", "Input should be one of " + ", ".join(sorted(MEMORY_SOURCES)))
    if memories is not None and not (
        isinstance(memories, list)
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in memories)
    ):
        raise _invalid("body", "memories", "Each memory needs a content string")
    store = _store()
    for memory in memories or []:
        store.add_memory(uid, memory["content"], tags=list(memory.get("tags") or []))
    if isinstance(text, str) and text:
        store.add_memory(uid, text, source_id=body.get("source_id"), source_url=body.get("source_url"))
    return jsonify({})


@api.get("/memories")
def get_memories(app_id: str) -> Any:
    uid = _gate(app_id, "read_memories")
    with _store().lock:
        items = list(reversed(_store().memories.get(uid, [])))
    return jsonify(memories=_page(items, 100, 1000))


def _conversations(uid: str, include_discarded: bool, start: Any, end: Any) -> list[dict[str, Any]]:
    first, last = _date(start), _date(end)
    with _store().lock:
        items = list(reversed(_store().conversations.get(uid, [])))
    return [c for c in items if (include_discarded or not c.get("discarded")) and _in_range(c, first, last)]


@api.get("/conversations")
def get_conversations(app_id: str) -> Any:
    uid = _gate(app_id, "read_conversations")
    segments = _int_arg("max_transcript_segments", 100, -1, 1000)
    statuses = [s for s in request.args.get("statuses", "").split(",") if s]
    items = _conversations(
        uid,
        _bool_arg("include_discarded", False),
        request.args.get("start_date"),
        request.args.get("end_date"),
    )
    items = [c for c in items if not statuses or c.get("status") in statuses]
    page = _page(items, 25, 1000)
    if segments >= 0:
        page = [{**c, "transcript_segments": c["transcript_segments"][:segments]} for c in page]
    return jsonify(conversations=page)


@api.post("/search/conversations")
def search_conversations(app_id: str) -> Any:
    uid = _gate(app_id, "read_conversations")
    body = _json_body()
    query = str(body.get("query") or "").lower()
    page, per_page = body.get("page", 1), body.get("per_page", 10)
    if not isinstance(page, int) or page < 1:
        raise _invalid("body", "page", "Input should be greater than or equal to 1")
    if not isinstance(per_page, int) or not 1 <= per_page <= 100:
        raise _invalid("body", "per_page", "Input should be between 1 and 100")
    items = _conversations(
        uid, bool(body.get("include_discarded")), body.get("start_date"), body.get("end_date")
    )
    hits = [
        c
        for c in items
        if query in c["structured"]["title"].lower()
        or any(query in s["text"].lower() for s in c["transcript_segments"])
    ]
    return jsonify(
        conversations=hits[(page - 1) * per_page : page * per_page],
        total_pages=math.ceil(len(hits) / per_page),
        current_page=page,
        per_page=per_page,
    )


@api.get("/tasks")
def get_tasks(app_id: str) -> Any:
    uid = _gate(app_id, "read_tasks")
    completed = request.args.get("completed")
    want = None if completed is None else _bool_arg("completed", False)
    first, last = _date(request.args.get("start_date")), _date(request.args.get("end_date"))
    with _store().lock:
        items = list(reversed(_store().tasks.get(uid, [])))
    items = [t for t in items if (want is None or t["completed"] == want) and _in_range(t, first, last)]
    return jsonify(tasks=_page(items, 100, 1000))


@api.post("/notification")
def send_notification(app_id: str) -> Any:
    store = _store()
    uid = _gate(app_id, None, "notification")
    message = request.args.get("message")
    if not message:
        raise _invalid("query", "message", "Field required")
    with store.lock:
        store.notifications.setdefault(uid, []).append(message)
    remaining, reset = g.fake_omi_rate
    response = jsonify(status="Ok")
    response.headers.update(
        {
            "X-RateLimit-Limit": str(LIMITS["notification"][0]),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(store.clock()) + reset),
        }
    )
    return response
