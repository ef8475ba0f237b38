"""OmiClient against the fake OMI over real loopback HTTP: every endpoint, every error, retries."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest
import requests

from flask_omi import (
    OmiApiError,
    OmiAppNotEnabled,
    OmiAuthError,
    OmiClient,
    OmiConfigError,
    OmiNotFound,
    OmiPermissionError,
    OmiRateLimited,
    OmiServerError,
    OmiTransportError,
    OmiValidationError,
)
from flask_omi.testing import FakeOmi

UTC = timezone.utc


@pytest.fixture
def world(fake_omi: FakeOmi) -> Iterator[tuple[FakeOmi, OmiClient, str]]:
    _, key = fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    fake_omi.enable_app("u1", "app1")
    client = OmiClient("app1", key, base_url=fake_omi.url, timeout=2, deadline=10)
    yield fake_omi, client, key
    client.close()


def test_conversations_round_trip(world: tuple[FakeOmi, OmiClient, str]) -> None:
    _, client, _ = world
    start = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert (
        client.create_conversation(
            "u1",
            "Planning the garden party",
            started_at=start,
            language="en",
            geolocation={"latitude": 52.5, "longitude": 13.4},
            text_source="message",
            text_source_spec="chat",
            finished_at=start + timedelta(minutes=20),
        )
        is None
    )
    client.create_conversation("u1", "Second talk about budgets")
    conversations = client.get_conversations("u1", limit=10, max_transcript_segments=-1)
    assert [c["structured"]["title"] for c in conversations] == [
        "Second talk about budgets",
        "Planning the garden party",
    ]
    oldest = conversations[1]
    assert oldest["started_at"] == "2026-03-01T09:30:00Z"  # OMI writes UTC with Z
    assert oldest["finished_at"] == "2026-03-01T09:50:00Z"
    assert oldest["geolocation"] == {"latitude": 52.5, "longitude": 13.4}
    assert oldest["transcript_segments"][0]["text"] == "Planning the garden party"
    assert (
        client.get_conversations("u1", start_date=date(2000, 1, 1), end_date=datetime(2000, 1, 2, tzinfo=UTC))
        == []
    )
    assert (
        client.get_conversations("u1", statuses=["completed"], include_discarded=True, offset=1)[0]["id"]
        == oldest["id"]
    )
    found = client.search_conversations("u1", "garden", per_page=5, start_date="2000-01-01")
    assert (found["total_pages"], found["current_page"], found["per_page"]) == (1, 1, 5)
    assert [c["id"] for c in found["conversations"]] == [oldest["id"]]


def test_memories_round_trip_and_iteration(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    client.create_memories("u1", memories=[{"content": "likes jazz", "tags": ["music"]}])
    client.create_memories(
        "u1",
        text="Works at a bakery",
        text_source="email",
        text_source_spec="gmail",
        source_id="m-1",
        source_url="https://mail.example/m-1",
    )
    newest = client.get_memories("u1", limit=1)
    assert newest[0]["content"] == "Works at a bakery"
    assert client.get_memories("u1", limit=1, offset=1)[0]["tags"] == ["music"]
    for i in range(23):
        fake.add_memory("u1", f"memory {i}")
    assert len(list(client.iter_memories("u1", page_size=5))) == 25
    with pytest.raises(ValueError, match="text, memories"):
        client.create_memories("u1")


def test_tasks_and_iteration(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    for i in range(7):
        fake.add_task("u1", f"task {i}", completed=i % 2 == 0)
    assert [t["description"] for t in client.get_tasks("u1", completed=False)] == [
        "task 5",
        "task 3",
        "task 1",
    ]
    assert len(list(client.iter_tasks("u1", page_size=2))) == 7
    assert len(list(client.iter_tasks("u1", page_size=3, completed=True))) == 4
    assert client.get_tasks("u1", start_date=datetime.now(UTC) + timedelta(days=1)) == []
    for i in range(3):
        fake.add_conversation("u1", f"talk {i}")
    assert len(list(client.iter_conversations("u1", page_size=2))) == 3


def test_notification(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    assert client.send_notification("u1", "Your summary is ready") == {
        "status": "Ok",
        "rate_limit_remaining": 9,  # OMI counts the first call of an hour twice
    }
    assert fake.notifications["u1"] == ["Your summary is ready"]


def test_local_argument_errors(world: tuple[FakeOmi, OmiClient, str]) -> None:
    _, client, _ = world
    with pytest.raises(ValueError, match="naive datetime"):
        client.create_conversation("u1", "x", started_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        client.get_tasks("u1", start_date=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="limit"):
        client.get_memories("u1", limit=1001)
    with pytest.raises(ValueError, match="offset"):
        client.get_memories("u1", offset=-1)
    with pytest.raises(ValueError, match="max_transcript_segments"):
        client.get_conversations("u1", max_transcript_segments=-2)
    with pytest.raises(OmiConfigError):
        OmiClient("app1", "")


def test_every_error_class(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    fake.clock = lambda: 1_800_000_000.0  # all in one rate-limit hour, whenever the test runs
    with pytest.raises(OmiAuthError) as auth:
        OmiClient("app1", "sk_wrong", base_url=fake.url).get_memories("u1")
    assert (auth.value.status, auth.value.detail, auth.value.method) == (
        403,
        "Invalid integrationAPI key",
        "GET",
    )
    assert auth.value.path == "/v2/integrations/app1/memories"
    fake.inject_fault("/memories", status=401, body='{"detail": "Missing or invalid Authorization header"}')
    with pytest.raises(OmiAuthError):
        client.get_memories("u1")
    with pytest.raises(OmiAppNotEnabled) as not_enabled:
        client.get_memories("stranger")
    assert not_enabled.value.status == 403
    _, limited_key = fake.register_app("limited", app_home_url="http://x/cb", actions=frozenset())
    fake.enable_app("u1", "limited")
    limited = OmiClient("limited", limited_key, base_url=fake.url)
    with pytest.raises(OmiPermissionError, match="capability"):
        limited.get_tasks("u1")
    del fake.apps["limited"]
    with pytest.raises(OmiNotFound):
        limited.get_tasks("u1")
    with pytest.raises(OmiValidationError) as invalid:
        client.create_conversation("u1", "x", text_source="fax")
    assert invalid.value.status == 422 and isinstance(invalid.value.detail, list)
    with pytest.raises(OmiValidationError) as bad_date:
        client.get_tasks("u1", start_date="yesterday")
    assert bad_date.value.status == 400
    for i in range(10):  # the refused "fax" call above was refused by validation, before counting
        client.create_conversation("u1", f"talk {i}")
    began = time.monotonic()
    with pytest.raises(OmiRateLimited) as limited_error:
        client.create_conversation("u1", "one too many")
    assert time.monotonic() - began < 2  # an hour-long Retry-After is not waited for
    assert limited_error.value.retry_after is not None and limited_error.value.retry_after > 60
    fake.inject_fault("/tasks", status=500, body='{"detail": "boom"}')
    with pytest.raises(OmiServerError) as server_error:
        client.get_tasks("u1")
    assert server_error.value.detail == "boom"
    fake.inject_fault("/tasks", status=200, body="<html>not json", times=1)
    with pytest.raises(OmiTransportError, match="not JSON"):
        client.get_tasks("u1")
    fake.inject_fault("/tasks", status=418, body="{}", times=1)
    with pytest.raises(OmiApiError, match="Unexpected"):
        client.get_tasks("u1")


def test_read_is_retried_after_503_then_succeeds(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    fault = fake.inject_fault("/memories", status=503, body='{"detail": "busy"}', times=2)
    fake.add_memory("u1", "kept")
    assert [m["content"] for m in client.get_memories("u1")] == ["kept"]
    assert fault.hits == 2


def test_retry_after_is_honoured_for_writes_on_429(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    fault = fake.inject_fault(
        "/user/memories", status=429, body='{"detail": "slow down"}', headers={"Retry-After": "0"}
    )
    client.create_memories("u1", text="after a 429")
    assert fault.hits == 1
    assert [m["content"] for m in fake.memories["u1"]] == ["after a 429"]


def test_write_is_not_retried_after_a_5xx(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    fault = fake.inject_fault("/notification", status=503, body='{"detail": "busy"}', times=3)
    with pytest.raises(OmiServerError):
        client.send_notification("u1", "once")
    assert fault.hits == 1


def test_write_is_not_retried_after_a_read_timeout(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, _, key = world
    slow = OmiClient("app1", key, base_url=fake.url, timeout=0.3, write_timeout=0.3, deadline=5)
    fake.inject_fault("/user/conversations", delay=0.8)  # OMI does the work, but too late
    with pytest.raises(OmiTransportError, match="ReadTimeout"):
        slow.create_conversation("u1", "must exist once")
    time.sleep(0.8)  # let the slow request finish on the server side
    assert [c["structured"]["title"] for c in fake.conversations["u1"]] == ["must exist once"]


def test_writes_wait_longer_than_reads(world: tuple[FakeOmi, OmiClient, str]) -> None:
    """OMI answers a write after processing it (LLM calls, webhook fan-out): it gets its own
    timeout, so a write that takes longer than a read may is not reported as failed."""
    fake, _, key = world
    client = OmiClient(
        "app1", key, base_url=fake.url, timeout=0.3, write_timeout=3, deadline=1, max_attempts=1
    )
    fake.inject_fault("/user/conversations", delay=1.2)
    fake.inject_fault("/user/memories", delay=1.2)
    client.create_conversation("u1", "slow to process")
    client.create_memories("u1", text="slow to extract")
    assert [c["structured"]["title"] for c in fake.conversations["u1"]] == ["slow to process"]
    fake.inject_fault("/memories", method="GET", delay=1.2)
    with pytest.raises(OmiTransportError, match="ReadTimeout"):
        client.get_memories("u1")


def test_read_timeout_is_retried_within_the_deadline(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, _, key = world
    slow = OmiClient("app1", key, base_url=fake.url, timeout=0.3, deadline=5)
    fault = fake.inject_fault("/tasks", delay=0.6)
    assert slow.get_tasks("u1") == []
    assert fault.hits == 1


def test_deadline_bounds_all_attempts(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, _, key = world
    client = OmiClient("app1", key, base_url=fake.url, timeout=0.4, deadline=1.0, max_attempts=10)
    fake.inject_fault("/tasks", delay=0.6, times=10)
    began = time.monotonic()
    with pytest.raises(OmiTransportError):
        client.get_tasks("u1")
    assert time.monotonic() - began < 2.5


def test_connection_refused_is_a_transport_error() -> None:
    with FakeOmi() as fake:
        dead_url = fake.url
    client = OmiClient("app1", "sk_x", base_url=dead_url, timeout=1, deadline=3)
    with pytest.raises(OmiTransportError) as refused:
        client.create_conversation("u1", "nobody home")
    assert refused.value.status is None and refused.value.method == "POST"


def test_is_app_enabled(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    assert client.is_app_enabled("u1") is True
    assert client.is_app_enabled("stranger") is False
    _, key = fake.register_app("no-read", app_home_url="http://x/cb", actions=frozenset({"read_tasks"}))
    fake.enable_app("u1", "no-read")
    assert OmiClient("no-read", key, base_url=fake.url).is_app_enabled("u1") is True


def test_shared_client_from_threads(world: tuple[FakeOmi, OmiClient, str]) -> None:
    fake, client, _ = world
    for i in range(5):
        fake.add_memory("u1", f"m{i}")
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                results.append(len(client.get_memories("u1")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and results == [5] * 80


def test_api_key_never_leaks(world: tuple[FakeOmi, OmiClient, str], caplog: pytest.LogCaptureFixture) -> None:
    fake, client, key = world
    texts: list[str] = [repr(client), str(client.__dict__)]
    fake.inject_fault("/memories", status=503, body='{"detail": "busy"}', times=1)
    fake.inject_fault("/tasks", status=500, body='{"detail": "boom"}', times=3)
    with caplog.at_level(logging.DEBUG):
        client.get_memories("u1")
        for call in (
            lambda: client.get_tasks("u1"),
            lambda: OmiClient("app1", key, base_url=fake.url).get_memories("stranger"),
            lambda: OmiClient("app1", key, base_url="http://127.0.0.1:9", deadline=1).get_memories("u1"),
            lambda: OmiClient("app1", key, base_url=fake.url, timeout=0.2).create_conversation(
                "u1", "x", started_at=datetime(2026, 1, 1)
            ),
        ):
            try:
                call()
            except (OmiApiError, ValueError, requests.RequestException) as exc:
                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    texts += [record.getMessage() for record in caplog.records]
    texts += [repr(record.args) for record in caplog.records]
    assert len(texts) > 8
    leaked = [t for t in texts if key in t or key[3:] in t]
    assert leaked == []


def test_parameters_as_omi_reads_them(world: tuple[FakeOmi, OmiClient, str]) -> None:
    """Each parameter in the form OMI's endpoint declares it (backend/routers/integration.py)."""
    fake, client, _ = world
    fake.add_conversation("u1", "draft", status="in_progress")
    fake.add_conversation("u1", "done talk", status="completed")
    fake.add_conversation("u1", "ignored", status="failed")
    both = client.get_conversations("u1", statuses=["in_progress", "completed"])
    assert [c["structured"]["title"] for c in both] == ["done talk", "draft"]  # repeated, not joined
    client.create_memories("u1", memories=[{"content": "likes tea", "artifact_ref": {"note": "n1"}}])
    assert fake.memories["u1"][0]["artifact_ref"] == {"note": "n1"}  # sent with "text": null
    fake.add_conversation("u1", "Lisbon old", discarded=True)
    fake.add_conversation(
        "u1",
        "Lisbon new",
        transcript_segments=[{"text": "a", "is_user": True}, {"text": "b", "is_user": False}],
    )
    found = client.search_conversations("u1", "lisbon")
    assert [c["structured"]["title"] for c in found["conversations"]] == ["Lisbon new", "Lisbon old"]
    trimmed = client.search_conversations("u1", "lisbon", include_discarded=False, max_transcript_segments=1)
    assert [len(c["transcript_segments"]) for c in trimmed["conversations"]] == [1]
    assert client.search_conversations("u1", "", speaker_id="user")["conversations"][0]["structured"][
        "title"
    ] == ("Lisbon new")
    fake.add_task("u1", "water plants", conversation_id="c9", due_at="2027-03-01T10:00:00+00:00")
    fake.add_task("u1", "other")
    (task,) = client.get_tasks(
        "u1", conversation_id="c9", due_start_date=date(2027, 3, 1), due_end_date="2027-03-01"
    )
    assert task["description"] == "water plants" and task["updated_at"].endswith("Z")
    with pytest.raises(ValueError, match="max_transcript_segments"):
        client.search_conversations("u1", "x", max_transcript_segments=2000)
