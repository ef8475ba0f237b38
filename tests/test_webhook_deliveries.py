"""Webhooks as OMI delivers them, and what flask-omi answers so that OMI retries or drops.

OMI's side comes from ``backend/utils/app_integrations.py`` (URLs, bodies, the idempotency key,
which answers are retried) and ``backend/utils/webhook_signing.py`` (the event names, the delivery
id, unsigned sends when the secret cannot be read).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from flask_omi import OmiConfigError, OmiWebhooks
from flask_omi.keystore import MemoryStore, RedisStore
from flask_omi.testing import FakeOmi, LiveServer, deliver_webhook, send_webhook

SECRET = "whsec_deliveries_secret"


class Capture:
    """A stand-in receiver that records what arrives and answers as told, in order."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.delay = 0.0
        self.app = Flask("capture")
        self.app.add_url_rule("/hook", "hook", self.hook, methods=["POST"])

    def hook(self) -> tuple[str, int]:
        self.seen.append(
            {
                "query": request.query_string.decode(),
                "headers": dict(request.headers),
                "body": request.get_data(),
            }
        )
        time.sleep(self.delay)
        return "{}", self.answers.pop(0) if self.answers else 200


@pytest.fixture
def capture() -> Iterator[tuple[Capture, str]]:
    target = Capture()
    with LiveServer(target.app) as server:
        yield target, f"{server.url}/hook"


@pytest.mark.parametrize(
    ("trigger", "event", "payload", "query"),
    [
        ("memory_creation", "memory_created", {"id": "c1", "title": "café"}, "uid=u1"),
        ("transcript_processed", "realtime_transcript", [{"text": "hi"}], "uid=u1"),
        ("audio_bytes", "audio_bytes", b"\x00\x01" * 4, "sample_rate=8000&uid=u1"),
    ],
)
def test_app_integrations_headers_and_bodies(
    capture: tuple[Capture, str], trigger: str, event: str, payload: Any, query: str
) -> None:
    target, url = capture
    delivery = deliver_webhook(url, trigger, "u1", payload, secret=SECRET, sample_rate=8000)
    (seen,) = target.seen
    headers = seen["headers"]
    assert seen["query"] == query
    assert headers["X-Omi-Event"] == event
    assert str(uuid.UUID(headers["X-Omi-Delivery"])) == headers["X-Omi-Delivery"] == delivery.delivery_id
    assert headers["X-Omi-Signature"].startswith("t=")
    if trigger == "memory_creation":  # durable: the idempotency key is the delivery id
        assert headers["X-Omi-Idempotency-Key"] == headers["X-Omi-Delivery"]
        assert seen["body"] == '{"id":"c1","title":"café"}'.encode()  # compact, as signed
    else:
        assert "X-Omi-Idempotency-Key" not in headers
    if trigger == "transcript_processed":
        assert json.loads(seen["body"]) == {"session_id": "u1", "segments": [{"text": "hi"}]}
    if trigger == "audio_bytes":
        assert headers["Content-Type"] == "application/octet-stream"


def test_webhook_signing_unsigned_when_the_secret_cannot_be_read(capture: tuple[Capture, str]) -> None:
    target, url = capture
    with FakeOmi() as fake:
        fake.register_app(
            "a1", app_home_url="http://127.0.0.1:9/cb", webhook_url=url, triggers_on="memory_creation",
            signing_secret=SECRET, webhook_secret_readable=False,
        )  # fmt: skip
        fake.trigger("a1", "u1", {"id": "c1"})
        assert fake.deliveries[0].statuses == [200]
    headers = target.seen[0]["headers"]
    assert not {"X-Omi-Signature", "X-Omi-Event", "X-Omi-Delivery"} & set(headers)
    assert "X-Omi-Idempotency-Key" in headers


@pytest.mark.parametrize(
    ("answers", "statuses"),
    [
        ([503, 500, 200], [503, 500, 200]),
        ([408, 425, 429], [408, 425, 429]),  # retried each time, up to the bound
        ([400], [400]),  # other 4xx: dropped
        ([401], [401]),
        ([404], [404]),
        ([200], [200]),
    ],
)
def test_app_integrations_which_answers_are_retried(
    capture: tuple[Capture, str], answers: list[int], statuses: list[int]
) -> None:
    target, url = capture
    target.answers = list(answers)
    delivery = deliver_webhook(url, "memory_creation", "u1", {"id": "c1"}, attempts=3)
    assert delivery.statuses == statuses
    keys = {seen["headers"]["X-Omi-Idempotency-Key"] for seen in target.seen}
    assert len(keys) == 1  # every retry carries the same key


def test_app_integrations_a_timeout_is_retried(capture: tuple[Capture, str]) -> None:
    target, url = capture
    target.delay = 0.6
    delivery = deliver_webhook(url, "memory_creation", "u1", {"id": "c1"}, attempts=2, timeout=(2.0, 0.2))
    assert delivery.statuses == [None, None] and not delivery.delivered


def test_realtime_deliveries_are_not_retried(capture: tuple[Capture, str]) -> None:
    target, url = capture
    target.answers = [503, 503]
    assert deliver_webhook(url, "transcript_processed", "u1", [], attempts=3).statuses == [503]


# -- the receiving side: ids, de-duplication, answers ------------------------------------------------
class Counter:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.failures = 0
        self.delay = 0.0

    def __call__(self, event: Any) -> str:
        time.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database down")
        self.events.append(event)
        return "saved"


def receiver(counter: Counter, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    hooks = OmiWebhooks()
    hooks.on_conversation_created(counter)
    hooks.on_transcript(counter)
    app.register_blueprint(hooks)
    return app


def post(
    client: Any, key: str | None = "key-1", delivery: str | None = "d-1", kind: str = "conversation"
) -> Any:
    headers = {k: v for k, v in (("X-Omi-Idempotency-Key", key), ("X-Omi-Delivery", delivery)) if v}
    body = {"id": "c1"} if kind == "conversation" else {"session_id": "u1", "segments": []}
    return client.post(f"/omi/webhooks/{kind}?uid=u1", json=body, headers=headers)


def test_handlers_get_the_delivery_id_and_idempotency_key() -> None:
    counter = Counter()
    client = receiver(counter).test_client()
    assert post(client, key="k-9", delivery="d-9").get_json() == {"message": "saved"}
    assert (counter.events[0].delivery_id, counter.events[0].idempotency_key) == ("d-9", "k-9")
    post(client, key=None, delivery=None)
    assert (counter.events[1].delivery_id, counter.events[1].idempotency_key) == (None, None)


def test_a_retried_delivery_runs_the_handler_once() -> None:
    counter = Counter()
    client = receiver(counter).test_client()
    first, again = post(client), post(client, delivery="d-2")  # a retry: same key, new delivery
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.get_json() == {}
    assert len(counter.events) == 1
    assert post(client, key="key-2").status_code == 200 and len(counter.events) == 2


def test_a_failed_handler_is_500_and_its_retry_runs_again() -> None:
    counter = Counter()
    counter.failures = 1
    client = receiver(counter).test_client()
    failed = post(client)
    assert failed.status_code == 500 and failed.get_json()["error"] == "handler_failed"
    assert post(client).status_code == 200 and len(counter.events) == 1


def test_a_duplicate_during_the_first_attempt_is_425_which_omi_retries() -> None:
    counter = Counter()
    counter.delay = 0.5
    client_app = receiver(counter)
    answers: list[int] = []
    first = threading.Thread(target=lambda: answers.append(post(client_app.test_client()).status_code))
    first.start()
    time.sleep(0.15)
    during = post(client_app.test_client())
    first.join(timeout=10)
    assert during.status_code == 425 and during.get_json()["error"] == "delivery_in_progress"
    assert answers == [200] and len(counter.events) == 1


def test_only_deliveries_with_an_idempotency_key_are_deduplicated() -> None:
    """OMI retries only durable deliveries, which carry the key; a live transcript's delivery id
    is not signed and never retried, so two posts with one id both run."""
    counter = Counter()
    client = receiver(counter).test_client()
    for _ in range(2):
        post(client, key=None, delivery="rt-1", kind="transcript")
    assert len(counter.events) == 2


def test_dedup_can_be_turned_off() -> None:
    counter = Counter()
    client = receiver(counter, OMI_WEBHOOK_STORE=False).test_client()
    post(client), post(client)
    assert len(counter.events) == 2


class BrokenLedger:
    def claim(self, key: str, ttl: int) -> str:
        raise ConnectionError("redis is down")

    def finish(self, key: str, ttl: int) -> None:  # pragma: no cover - never reached
        pass

    def abandon(self, key: str) -> None:  # pragma: no cover - never reached
        pass


def test_a_failing_ledger_answers_503_so_omi_retries() -> None:
    counter = Counter()
    answer = post(receiver(counter, OMI_WEBHOOK_STORE=BrokenLedger()).test_client())
    assert answer.status_code == 503 and counter.events == []


@pytest.mark.parametrize("value", ["x" * 201, "k\x01y", "clé"])
def test_unusable_delivery_headers_are_400(value: str) -> None:
    counter = Counter()
    client = receiver(counter).test_client()
    answer = client.post(
        "/omi/webhooks/conversation?uid=u1",
        data=b'{"id": "c1"}',
        headers={"X-Omi-Idempotency-Key": value.encode().decode("latin-1")},
        content_type="application/json",
    )
    assert answer.status_code == 400 and answer.get_json()["error"] == "delivery_header_invalid"
    assert counter.events == []


def test_memory_ledger_expires_and_is_bounded() -> None:
    now = [0.0]
    ledger = MemoryStore(max_entries=2, when_full="forget_oldest", clock=lambda: now[0])
    assert ledger.claim("a", 100) == "new" and ledger.claim("a", 100) == "running"
    ledger.finish("a", 100)
    assert ledger.claim("a", 100) == "done"
    ledger.claim("b", 100), ledger.claim("c", 100)
    assert len(ledger) == 2 and ledger.claim("a", 100) == "new"  # the oldest was forgotten
    assert ledger.forgotten == 2
    now[0] = 1000.0
    assert ledger.claim("b", 100) == "new"  # expired


def test_an_unusable_dedup_setting_fails_at_start_up() -> None:
    with pytest.raises(OmiConfigError, match="OMI_WEBHOOK_STORE"):
        receiver(Counter(), OMI_WEBHOOK_STORE="127.0.0.1:6379")  # not a URL: no scheme


def test_the_fake_retries_into_flask_omi_until_the_handler_succeeds() -> None:
    """End to end: a handler that fails once; OMI's retry is handled, once."""
    counter = Counter()
    counter.failures = 1
    app = receiver(counter, OMI_SIGNING_SECRET=SECRET)
    with LiveServer(app) as server, FakeOmi() as fake:
        fake.register_app(
            "a1", app_home_url="http://127.0.0.1:9/cb", webhook_url=f"{server.url}/omi/webhooks/conversation",
            triggers_on="memory_creation", signing_secret=SECRET,
        )  # fmt: skip
        delivery = fake.trigger("a1", "u1", fake.make_conversation("retry me"))
        again = send_webhook(
            f"{server.url}/omi/webhooks/conversation", "memory_creation", "u1", {"id": "x"}, secret=SECRET
        )
    assert delivery.statuses == [500, 200]
    assert len(counter.events) == 2 and counter.events[0].idempotency_key == delivery.idempotency_key
    assert again.status_code == 200


def test_a_retried_delivery_runs_once_across_gunicorn_instances() -> None:
    """With OMI_WEBHOOK_STORE set to the app's Redis: the same delivery posted to two instances,
    at once and again later, runs the handler once."""
    import redis

    from .attack.servers import gunicorn, redis_server

    with redis_server() as redis_url:
        env = {"TEST_SECRET_KEY": "e" * 8 + uuid.uuid4().hex, "TEST_REDIS_URL": redis_url, "TEST_WEBHOOKS": "1",
               "TEST_HANDLER_DELAY": "0.3"}  # fmt: skip
        with gunicorn(env) as a, gunicorn(env) as b:
            key = str(uuid.uuid4())
            statuses: list[int] = []

            def deliver(base: str) -> None:
                answer = requests_post(f"{base}/omi/webhooks/conversation?uid=u1", key)
                statuses.append(answer)

            threads = [
                threading.Thread(target=deliver, args=(base,)) for base in (a.url, b.url, a.url, b.url)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            statuses.append(requests_post(f"{b.url}/omi/webhooks/conversation?uid=u1", key))
            handled = redis.from_url(redis_url).get(f"handled:{key}")
    assert handled == b"1"
    assert sorted(statuses).count(200) >= 2 and set(statuses) <= {200, 425}


def requests_post(url: str, key: str) -> int:
    import requests

    return requests.post(
        url, json={"id": "c1"}, headers={"X-Omi-Idempotency-Key": key}, timeout=10
    ).status_code


def test_the_redis_ledger_in_process() -> None:
    import redis

    from .attack.servers import redis_server

    with redis_server() as redis_url:
        store = redis.from_url(redis_url)
        ledger = RedisStore(store, "omi:delivery:")
        assert ledger.claim("k", 100) == "new" and ledger.claim("k", 100) == "running"
        assert 0 < store.ttl("omi:delivery:k") <= 100
        ledger.finish("k", 1000)
        assert ledger.claim("k", 100) == "done" and store.ttl("omi:delivery:k") > 300
        ledger.abandon("k")
        assert ledger.claim("k", 100) == "new"
        counter = Counter()
        client = receiver(counter, OMI_WEBHOOK_STORE=store).test_client()
        post(client, key="shared"), post(client, key="shared")
        assert len(counter.events) == 1


class ForgetfulLedger(MemoryStore):
    def finish(self, key: str, ttl: int) -> None:
        raise ConnectionError("redis went away after the handler ran")


def test_a_ledger_that_fails_after_the_handler_keeps_the_handlers_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counter = Counter()
    answer = post(receiver(counter, OMI_WEBHOOK_STORE=ForgetfulLedger()).test_client())
    assert answer.get_json() == {"message": "saved"} and len(counter.events) == 1
    assert "could not record the delivery" in caplog.text


def test_a_full_ledger_does_not_sweep_every_key_on_every_write() -> None:
    """At its bound, a ledger forgets its oldest key per write; it sweeps for expired keys at most
    once a second, not on every write (which read all 10,000 keys each time)."""
    from flask_omi.stores import MemoryStore

    now = [0.0]
    store = MemoryStore(3, when_full="forget_oldest", clock=lambda: now[0])
    swept: list[float] = []
    real_sweep = store._drop_expired

    def counting_sweep(at: float) -> None:
        swept.append(at)
        real_sweep(at)

    store._drop_expired = counting_sweep  # type: ignore[method-assign]
    for n in range(50):
        assert store.claim(f"k{n}", 100) == "new"
    assert len(store) == 3 and swept == [0.0]
    now[0] = 1.5
    store.claim("later", 100)
    assert swept == [0.0, 1.5]
