"""The fake OMI's in-memory world: apps, users who enabled them, and their data.

Plain data and bookkeeping, no HTTP: the routes in :mod:`.oauth_routes` and :mod:`.api_routes`
read and change it, and tests seed and inspect it directly.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from flask_omi.testing.fake.rate_limits import RateLimits

ALL_ACTIONS = frozenset(
    {"create_conversation", "create_memories", "read_memories", "read_conversations", "read_tasks"}
)


@dataclass
class Fault:
    """A scripted misbehaviour for the next ``times`` requests whose path contains ``path``.

    ``delay`` seconds pass first (at most 30); then, with a ``status``, that answer is sent instead
    of the real one (``body`` as is, so it may be invalid JSON); without one, the request is served
    normally, late.
    """

    path: str = ""
    method: str | None = None
    status: int | None = None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1
    hits: int = 0


@dataclass
class FakeApp:
    """An app as OMI stores it: its URLs, key, signing secret, triggers, capabilities and chat tools."""

    app_id: str
    name: str
    app_home_url: str | None
    setup_completed_url: str | None = None
    auth_steps: list[dict[str, str]] = field(default_factory=list)
    private: bool = False
    owner_uid: str | None = None
    testers: set[str] = field(default_factory=set)
    paid: bool = False
    buyers: set[str] = field(default_factory=set)
    actions: frozenset[str] = ALL_ACTIONS
    webhook_url: str | None = None
    triggers_on: str | None = None
    #: A test's shortcut past OMI's one trigger per app: the app's webhook URL for each trigger, so
    #: that ``trigger(..., trigger="transcript_processed")`` reaches that receiver.
    webhook_urls: dict[str, str] = field(default_factory=dict)
    #: OMI's one signing secret per app (``whsec_...``), for webhooks (``v1``) and tool calls
    #: (``v2``); while it is rotated the previous one stays valid 24 h and both sign
    #: (``backend/database/webhook_signing.py`` 7b4b3cb2).
    signing_secret: str | None = None
    previous_signing_secret: str | None = None
    previous_valid_until: float = 0.0
    #: False makes OMI fail to read the secret: it then sends deliveries unsigned, as OMI does.
    webhook_secret_readable: bool = True
    #: Where OMI reads the app's chat tools.
    chat_tools_manifest_url: str | None = None
    #: The tools and chat-message settings read from the manifest by ``fetch_tools``.
    chat_tools: list[dict[str, Any]] = field(default_factory=list)
    chat_messages: dict[str, Any] | None = None
    #: OMI capabilities beyond the API actions, e.g. ``{"proactive_notification"}``, and the
    #: scopes the app may use in proactive prompts.
    capabilities: frozenset[str] = frozenset()
    proactive_scopes: tuple[str, ...] = ()

    def secrets_at(self, now: float) -> list[str]:
        """The secrets OMI signs with now: the current one, and the previous one for 24 h."""
        current = [self.signing_secret] if self.signing_secret else []
        if self.previous_signing_secret and now < self.previous_valid_until:
            return [*current, self.previous_signing_secret]
        return current


@dataclass
class CircuitBreaker:
    """OMI's breaker for one endpoint (``backend/database/webhook_health.py``, used by
    ``get_webhook_circuit_breaker``): ``failures`` in a row open it for ``seconds``."""

    failures: int = 5
    seconds: float = 30.0
    in_a_row: int = 0
    open_until: float = 0.0

    def allows(self, now: float) -> bool:
        """Whether OMI would call the endpoint now (the breaker is closed, or its 30 s are over)."""
        return now >= self.open_until

    def record(self, success: bool, now: float) -> None:
        """Count one call's outcome: 5 failures in a row open the breaker."""
        self.in_a_row = 0 if success else self.in_a_row + 1
        if self.in_a_row >= self.failures:
            self.open_until, self.in_a_row = now + self.seconds, 0


def utc_iso(ts: float) -> str:
    """A timestamp as OMI writes it: ISO 8601 in UTC."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


class FakeOmiStore:
    """Everything the fake OMI knows. Thread-safe: the fake server answers from several threads."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        rate_limits: dict[str, tuple[int, int]] | None = None,
        notifications_per_hour: int = 10,
    ) -> None:
        """``rate_limits`` replaces OMI's app-API policies (``{"integration:conversations": (10,
        3600), "integration:memories": (60, 3600)}``), which OMI raises in production."""
        self.clock = clock
        self.lock = threading.RLock()
        self.apps: dict[str, FakeApp] = {}
        self.api_keys: dict[str, str] = {}  # key -> app id; a deleted app's key stays, as at OMI
        self.enabled: dict[str, set[str]] = {}  # app id -> uids
        self.memories: dict[str, list[dict[str, Any]]] = {}
        self.conversations: dict[str, list[dict[str, Any]]] = {}
        self.tasks: dict[str, list[dict[str, Any]]] = {}
        self.notifications: dict[str, list[str]] = {}
        self.rate_limits = RateLimits(lambda: self.clock(), rate_limits, notifications_per_hour)
        #: How many coming sign-ins fail to enable the app (OMI's 500), for tests of that path.
        self.enable_failures = 0
        self.faults: list[Fault] = []
        self.requests_seen: list[tuple[str, str]] = []
        #: Every webhook event ``trigger`` delivered, with its attempts.
        self.deliveries: list[Any] = []
        #: Chat: messages apps posted (uid -> [{app_id, message, target}]), tool calls OMI made,
        #: proactive notifications OMI wrote, and the names OMI knows users by.
        self.chat_messages: dict[str, list[dict[str, Any]]] = {}
        self.tool_calls: list[Any] = []
        self.proactive_notifications: dict[str, list[dict[str, Any]]] = {}
        self.user_names: dict[str, str] = {}
        #: Where OMI last saw each user (``get_cached_user_geolocation``), added to tool calls.
        self.geolocations: dict[str, dict[str, Any]] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._page_tokens: deque[str] = deque(maxlen=100)
        self._proactive_sent: dict[tuple[str, str], float] = {}
        self._ids = itertools.count(1)

    def issue_page_token(self) -> str:
        """A single-use token for a form of the fake's own pages (the last 100 stay valid)."""
        token = secrets.token_urlsafe(16)
        with self.lock:
            self._page_tokens.append(token)
        return token

    def take_page_token(self, token: str) -> bool:
        """Use up a token :meth:`issue_page_token` gave; False for any other."""
        with self.lock:
            if token and token in self._page_tokens:
                self._page_tokens.remove(token)
                return True
        return False

    def breaker(self, endpoint: str) -> CircuitBreaker:
        """OMI's circuit breaker for one tool or webhook endpoint."""
        with self.lock:
            return self._breakers.setdefault(endpoint, CircuitBreaker())

    # -- apps ---------------------------------------------------------------------------------------
    def register_app(
        self,
        app_id: str,
        *,
        app_home_url: str | None,
        name: str = "Test app",
        api_key: str | None = None,
        **options: Any,
    ) -> tuple[FakeApp, str]:
        """Add an app; returns it and its API key (``sk_...``, generated unless given)."""
        key = api_key or "sk_" + secrets.token_hex(16)
        app = FakeApp(app_id=app_id, name=name, app_home_url=app_home_url, **options)
        with self.lock:
            self.apps[app_id] = app
            self.api_keys[key] = app_id
        return app, key

    def rotate_signing_secret(self, app_id: str) -> str:
        """Issue a new signing secret (``POST /v1/apps/{id}/webhook-signing-secret``); the old one
        keeps signing for 24 h beside it."""
        app = self.apps[app_id]
        new = "whsec_" + secrets.token_urlsafe(24)
        with self.lock:
            app.previous_signing_secret, app.signing_secret = app.signing_secret, new
            app.previous_valid_until = self.clock() + 24 * 3600
        return new

    def enable_app(self, uid: str, app_id: str) -> None:
        """``uid`` enables the app, as after a sign-in on OMI's page."""
        with self.lock:
            self.enabled.setdefault(app_id, set()).add(uid)

    def disable_app(self, uid: str, app_id: str) -> None:
        """``uid`` disables the app in OMI."""
        with self.lock:
            self.enabled.get(app_id, set()).discard(uid)

    def is_enabled(self, uid: str, app_id: str) -> bool:
        """Whether ``uid`` has enabled the app."""
        with self.lock:
            return uid in self.enabled.get(app_id, set())

    # -- data ---------------------------------------------------------------------------------------
    def next_id(self) -> str:
        """A fresh id for a memory, conversation or task."""
        return f"fake-{next(self._ids)}"

    def add_memory(self, uid: str, content: str, **extra: Any) -> dict[str, Any]:
        """Store a memory for ``uid`` as OMI would return it; ``extra`` sets more fields."""
        memory = {
            "id": self.next_id(),
            "content": content,
            "category": extra.pop("category", "other"),
            "tags": extra.pop("tags", []),
            "created_at": utc_iso(self.clock()),
            **extra,
        }
        with self.lock:
            self.memories.setdefault(uid, []).append(memory)
        return memory

    def add_conversation(
        self, uid: str, text: str, *, started_at: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Store a conversation for ``uid`` (see :meth:`make_conversation`)."""
        conversation = self.make_conversation(text, started_at=started_at, **extra)
        with self.lock:
            self.conversations.setdefault(uid, []).append(conversation)
        return conversation

    def make_conversation(self, text: str, *, started_at: str | None = None, **extra: Any) -> dict[str, Any]:
        """A conversation shaped as OMI stores and sends it (also the ``memory_creation`` body)."""
        now = utc_iso(self.clock())
        words = text.split()
        conversation = {
            "id": self.next_id(),
            "created_at": now,
            "started_at": started_at or now,
            "finished_at": extra.pop("finished_at", None) or now,
            "source": extra.pop("source", "external_integration"),
            "language": extra.pop("language", "en"),
            "status": extra.pop("status", "completed"),
            "discarded": extra.pop("discarded", False),
            "geolocation": extra.pop("geolocation", None),
            "structured": {
                "title": " ".join(words[:6]) or "Untitled",
                "overview": text[:280],
                "emoji": "🧠",
                "category": "other",
                "action_items": [],
                "events": [],
            },
            "transcript_segments": [
                {"text": text, "speaker": "SPEAKER_0", "is_user": True, "start": 0.0, "end": 1.0}
            ],
            **extra,
        }
        return conversation

    def add_task(
        self, uid: str, description: str, *, completed: bool = False, **extra: Any
    ) -> dict[str, Any]:
        """A task (OMI's action item): ``due_at``, ``conversation_id``, ``completed_at`` may be given."""
        now = utc_iso(self.clock())
        task = {
            "id": self.next_id(),
            "description": description,
            "completed": completed,
            "created_at": now,
            "updated_at": now,
            "due_at": extra.pop("due_at", None),
            "completed_at": extra.pop("completed_at", now if completed else None),
            "conversation_id": extra.pop("conversation_id", None),
            **extra,
        }
        with self.lock:
            self.tasks.setdefault(uid, []).append(task)
        return task

    def seed(self, uid: str, *, memories: Iterable[str] = (), conversations: Iterable[str] = ()) -> None:
        """Store several memories and conversations for ``uid`` at once."""
        for content in memories:
            self.add_memory(uid, content)
        for text in conversations:
            self.add_conversation(uid, text)

    # -- faults ---------------------------------------------------------------------------------------
    def inject_fault(self, path: str = "", **options: Any) -> Fault:
        """Make matching requests misbehave; see :class:`Fault`. Returns it, to read ``hits``."""
        fault = Fault(path=path, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The next scripted fault for this request, if any (counted as used)."""
        with self.lock:
            self.requests_seen.append((method, path))
            for fault in self.faults:
                if fault.path in path and fault.method in (None, method) and fault.hits < fault.times:
                    fault.hits += 1
                    return fault
        return None
