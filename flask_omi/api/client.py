"""``OmiClient``: act for a user through OMI's app API, with the app's secret key.

Framework-neutral: it imports no Flask (``flask_omi.omi_client()`` returns a Flask app's shared
client, built from its settings by :mod:`flask_omi.extension`). One method per
endpoint, named after what it does; ``iter_*`` page through everything with bounded page sizes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any, cast

import requests
from requests.adapters import HTTPAdapter

from flask_omi.api.models import (
    Conversation,
    ConversationSearch,
    Geolocation,
    Memory,
    NewMemory,
    NotificationResult,
    Task,
    date_param,
    iso_datetime,
)
from flask_omi.api.transport import RetryPolicy, Transport, header_int
from flask_omi.config import DEFAULTS
from flask_omi.errors import OmiAppNotEnabled, OmiConfigError, OmiPermissionError, OmiTransportError

DEFAULT_BASE_URL: str = DEFAULTS["OMI_API_BASE"]
MAX_PAGE_SIZE = 1000
#: ``GET .../conversations`` refuses more (400 "statuses accepts at most 20 values", 0def44eb).
MAX_STATUSES = 20
#: Upper bound on pages an ``iter_*`` call fetches, so a misbehaving server cannot loop it forever.
MAX_PAGES = 10_000

DateLike = date | datetime | str | None


class OmiClient:
    """A client for one OMI app. Thread-safe: share one per app (``omi_client()`` does)."""

    def __init__(
        self,
        app_id: str,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULTS["OMI_API_TIMEOUT"],
        write_timeout: float = DEFAULTS["OMI_API_WRITE_TIMEOUT"],
        max_attempts: int = DEFAULTS["OMI_API_MAX_ATTEMPTS"],
        deadline: float = DEFAULTS["OMI_API_DEADLINE"],
        max_response_bytes: int = DEFAULTS["OMI_API_MAX_RESPONSE_BYTES"],
        session: requests.Session | None = None,
    ) -> None:
        if not app_id or not api_key:
            raise OmiConfigError("OmiClient needs an app id and the app's API key (sk_...).")
        self.app_id = app_id
        if session is None:
            session = _pooled_session(base_url)
        self._transport = Transport(
            base_url,
            api_key,
            timeout=timeout,
            policy=RetryPolicy(max_attempts=max(1, max_attempts), deadline=deadline),
            session=session,
            max_response_bytes=max_response_bytes,
        )
        self._prefix = f"/v2/integrations/{app_id}"
        # OMI answers a write only after its LLM processing and webhook fan-out: a reply can take
        # far longer than a read, and giving up early makes the app believe a write failed that
        # OMI then performs.
        self._write_timeout = write_timeout
        self._write_deadline = max(deadline, write_timeout)

    def __repr__(self) -> str:
        return f"OmiClient(app_id={self.app_id!r}, base_url={self._transport.base_url!r})"

    @property
    def session(self) -> requests.Session:
        """The pooled ``requests.Session`` the client sends with."""
        return self._transport.session

    def close(self) -> None:
        """Close the pooled connections."""
        self._transport.session.close()

    def _get(self, path: str, params: dict[str, Any], *, deadline: float | None = None) -> Any:
        body, _ = self._transport.request(
            "GET", self._prefix + path, params=params, idempotent=True, deadline=deadline
        )
        return body

    def _post(self, path: str, params: dict[str, Any], json: Any = None, *, idempotent: bool = False) -> Any:
        return self._transport.request(
            "POST", self._prefix + path, params=params, json=json, idempotent=idempotent
        )

    def _write(self, path: str, uid: str, body: dict[str, Any]) -> None:
        """A write that OMI processes before answering: its own, longer timeout and deadline."""
        self._transport.request(
            "POST",
            self._prefix + path,
            params={"uid": uid},
            json=body,
            idempotent=False,
            timeout=self._write_timeout,
            deadline=self._write_deadline,
        )

    # -- writes ---------------------------------------------------------------------------------------
    def create_conversation(
        self,
        uid: str,
        text: str,
        *,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        text_source: str = "audio_transcript",
        text_source_spec: str | None = None,
        language: str | None = None,
        geolocation: Geolocation | None = None,
    ) -> None:
        """Create a conversation from text (OMI processes it as if recorded). 10 per hour per user.

        OMI answers once the conversation is processed, so this waits up to ``write_timeout``.
        """
        body: dict[str, Any] = {"text": text, "text_source": text_source}
        if started_at is not None:
            body["started_at"] = iso_datetime(started_at, "started_at")
        if finished_at is not None:
            body["finished_at"] = iso_datetime(finished_at, "finished_at")
        if geolocation is not None:
            _check_geolocation(geolocation)
        optional = {"text_source_spec": text_source_spec, "language": language, "geolocation": geolocation}
        body.update({k: v for k, v in optional.items() if v is not None})
        self._write("/user/conversations", uid, body)

    def create_memories(
        self,
        uid: str,
        *,
        text: str | None = None,
        memories: Sequence[NewMemory] | None = None,
        text_source: str = "other",
        text_source_spec: str | None = None,
        source_id: str | None = None,
        source_url: str | None = None,
        artifact_ref: dict[str, Any] | None = None,
    ) -> None:
        """Add memories, given directly or as text for OMI to extract them from. 60 per hour.

        Either is enough: ``text`` is optional in OMI's published spec (0def44eb). It is still sent,
        as null when absent, because OMI deployments before that declared it without a default and
        refused a body without the key (422).
        """
        if not (text and text.strip()) and not memories:
            raise ValueError("create_memories needs text, memories, or both")
        body: dict[str, Any] = {"text": text, "text_source": text_source}
        optional = {
            "memories": list(memories) if memories else None,
            "text_source_spec": text_source_spec,
            "source_id": source_id,
            "source_url": source_url,
            "artifact_ref": artifact_ref,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        self._write("/user/memories", uid, body)

    def send_notification(self, uid: str, message: str) -> NotificationResult:
        """Push a notification to the user's phone. 10 per user per UTC hour get through."""
        return _notification_result(*self._post("/notification", {"uid": uid, "message": message}))

    def send_chat_message(self, uid: str, message: str) -> NotificationResult:
        """Post ``message`` into the user's OMI chat (``POST /v1/integrations/notification``).

        It lands in the app's chat (or OMI's main chat), as the manifest's ``chat_messages`` says,
        with a push notification. It shares the notification limit: 10 per user per UTC hour get
        through, then :class:`OmiRateLimited`. Not retried except after a 429 or a failed connect.
        """
        return _notification_result(
            *self._transport.request(
                "POST",
                "/v1/integrations/notification",
                params={},
                json={"uid": uid, "aid": self.app_id, "message": message},
                idempotent=False,
            )
        )

    # -- reads ----------------------------------------------------------------------------------------
    def get_memories(self, uid: str, *, limit: int = 100, offset: int = 0) -> list[Memory]:
        """One page of the user's memories (``read_memories``), newest first; ``limit`` 1 to 1000."""
        _check_page(limit, offset)
        body = self._get("/memories", {"uid": uid, "limit": limit, "offset": offset})
        return cast(list[Memory], _items(body, "memories"))

    def get_conversations(
        self,
        uid: str,
        *,
        limit: int = 100,
        offset: int = 0,
        include_discarded: bool = False,
        statuses: Sequence[str] | None = None,
        start_date: DateLike = None,
        end_date: DateLike = None,
        max_transcript_segments: int = 100,
    ) -> list[Conversation]:
        """One page of the user's conversations (``read_conversations``), newest first. ``statuses`` (at most
        20) and the dates filter them; ``max_transcript_segments`` bounds each transcript (-1: all).
        """
        _check_page(limit, offset)
        if not -1 <= max_transcript_segments <= 1000:
            raise ValueError("max_transcript_segments must be from -1 (all) to 1000")
        if statuses and len(statuses) > MAX_STATUSES:
            raise ValueError(f"OMI accepts at most {MAX_STATUSES} statuses")
        params = {
            "uid": uid,
            "limit": limit,
            "offset": offset,
            "include_discarded": str(include_discarded).lower(),
            # Repeated, ?statuses=a&statuses=b: OMI reads a list; "a,b" would be one status.
            "statuses": list(statuses) if statuses else None,
            "start_date": date_param(start_date, "start_date"),
            "end_date": date_param(end_date, "end_date"),
            "max_transcript_segments": max_transcript_segments,
        }
        return cast(list[Conversation], _items(self._get("/conversations", params), "conversations"))

    def search_conversations(
        self,
        uid: str,
        query: str,
        *,
        page: int = 1,
        per_page: int = 10,
        include_discarded: bool = True,
        start_date: DateLike = None,
        end_date: DateLike = None,
        speaker_id: str | None = None,
        max_transcript_segments: int = 100,
    ) -> ConversationSearch:
        """Search titles and overviews. OMI's defaults: discarded conversations included; OMI
        caps ``per_page`` at 250. ``speaker_id`` is ``"user"`` (the account owner) or a person id."""
        if not -1 <= max_transcript_segments <= 1000:
            raise ValueError("max_transcript_segments must be from -1 (all) to 1000")
        body = {
            "query": query,
            "page": page,
            "per_page": per_page,
            "include_discarded": include_discarded,
            "start_date": date_param(start_date, "start_date"),
            "end_date": date_param(end_date, "end_date"),
            "speaker_id": speaker_id,
        }
        body = {k: v for k, v in body.items() if v is not None}
        params = {"uid": uid, "max_transcript_segments": max_transcript_segments}
        # A search changes nothing, so it may be retried like a read.
        answer, _ = self._post("/search/conversations", params, body, idempotent=True)
        return cast(ConversationSearch, answer)

    def get_tasks(
        self,
        uid: str,
        *,
        limit: int = 100,
        offset: int = 0,
        completed: bool | None = None,
        conversation_id: str | None = None,
        start_date: DateLike = None,
        end_date: DateLike = None,
        due_start_date: DateLike = None,
        due_end_date: DateLike = None,
    ) -> list[Task]:
        """Tasks (OMI's action items), newest first; created and due dates filter separately."""
        _check_page(limit, offset)
        params = {
            "uid": uid,
            "limit": limit,
            "offset": offset,
            "completed": None if completed is None else str(completed).lower(),
            "conversation_id": conversation_id,
            "start_date": date_param(start_date, "start_date"),
            "end_date": date_param(end_date, "end_date"),
            "due_start_date": date_param(due_start_date, "due_start_date"),
            "due_end_date": date_param(due_end_date, "due_end_date"),
        }
        return cast(list[Task], _items(self._get("/tasks", params), "tasks"))

    def iter_memories(self, uid: str, *, page_size: int = 100) -> Iterator[Memory]:
        """Every memory of the user, page by page (at most ``MAX_PAGES`` pages)."""
        yield from _paged(lambda limit, offset: self.get_memories(uid, limit=limit, offset=offset), page_size)

    def iter_conversations(self, uid: str, *, page_size: int = 25, **filters: Any) -> Iterator[Conversation]:
        """Every conversation of the user, page by page; ``filters`` as for :meth:`get_conversations`."""
        yield from _paged(
            lambda limit, offset: self.get_conversations(uid, limit=limit, offset=offset, **filters),
            page_size,
        )

    def iter_tasks(self, uid: str, *, page_size: int = 100, **filters: Any) -> Iterator[Task]:
        """Every task of the user, page by page; ``filters`` as for :meth:`get_tasks`."""
        yield from _paged(
            lambda limit, offset: self.get_tasks(uid, limit=limit, offset=offset, **filters), page_size
        )

    # -- uid verification -------------------------------------------------------------------------------
    def is_app_enabled(self, uid: str, *, deadline: float | None = None) -> bool:
        """Whether ``uid`` has enabled this app in OMI.

        OMI has no endpoint for this; it checks "enabled" before the capability, so a one-item
        memories read answers 403 "App is not enabled for this user" exactly when it has not.

        Fails closed: True only for a memories page or OMI's own missing-capability 403, False
        only for OMI's not-enabled 403; every other answer raises an :class:`OmiApiError`.
        """
        try:
            body = self._get("/memories", {"uid": uid, "limit": 1, "offset": 0}, deadline=deadline)
        except OmiAppNotEnabled:
            return False
        except OmiPermissionError:
            return True  # enabled, but the app may not read memories
        if not isinstance(body, dict) or not isinstance(body.get("memories"), list):
            raise OmiTransportError(
                "OMI's answer is not a memories page",
                status=200,
                detail=None,
                method="GET",
                path=self._prefix + "/memories",
            )
        return True


def _pooled_session(base_url: str) -> requests.Session:
    """A session that keeps connections open and reads the environment once, here.

    With ``trust_env`` on, requests looks up proxy variables and reads ``~/.netrc`` on every
    call; that is a third of a small call's time. The proxies and CA bundle the environment sets
    now are applied once instead.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    session.trust_env = False
    return session


def _notification_result(body: Any, response: requests.Response) -> NotificationResult:
    status = body.get("status", "") if isinstance(body, dict) else ""
    return {
        "status": str(status),
        "rate_limit_remaining": header_int(response.headers.get("X-RateLimit-Remaining")),
    }


def _check_geolocation(geolocation: Geolocation) -> None:
    """OMI's bounds (422 otherwise, openapi 0def44eb), checked before a write that then fails."""
    latitude, longitude = geolocation.get("latitude"), geolocation.get("longitude")
    for name, value, bound in (("latitude", latitude, 90), ("longitude", longitude, 180)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -bound <= value <= bound:
            raise ValueError(f"geolocation {name} must be a number from -{bound} to {bound}")


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be from 1 to {MAX_PAGE_SIZE}")
    if offset < 0:
        raise ValueError("offset must not be negative")


def _items(body: Any, key: str) -> list[Any]:
    items = body.get(key) if isinstance(body, dict) else None
    return items if isinstance(items, list) else []


def _paged(fetch: Any, page_size: int) -> Iterator[Any]:
    _check_page(page_size, 0)
    for page in range(MAX_PAGES):
        items = fetch(page_size, page * page_size)
        yield from items
        if len(items) < page_size:
            return
