"""Production state: every promise that rests on server-side memory holds with several workers, a
full store and a Redis blip, or the app refuses loudly. With real gunicorn and redis-server.

Each test asserts the promise (a handler ran once; an honest sign-in was not refused; a live
transcript was not lost), never one run's timing.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from flask import Flask

from flask_omi import OmiBlueprint, OmiWebhooks, TranscriptBatch
from flask_omi.config import STORE_SETTINGS
from flask_omi.inbound.signing import signature_header
from flask_omi.keystore import MemoryStore

from ..conftest import make_app, start_login
from .servers import RedisServer, gunicorn

SECRET = "whsec_production_state"
DELIVERIES, ATTEMPTS = 50, 3


def post_conversation(base: str, key: str) -> requests.Response:
    body = json.dumps({"id": key, "structured": {"title": "t"}}).encode()
    return requests.post(
        f"{base}/omi/webhooks/conversation?uid=u1",
        data=body,
        headers={"Content-Type": "application/json", "X-Omi-Idempotency-Key": key},
        timeout=30,
    )


def deliver_each_three_times(base: str) -> list[requests.Response]:
    """50 deliveries, each sent 3 times (OMI's retries), 8 at a time, to one gunicorn."""
    answers: list[requests.Response] = []
    lock = threading.Lock()
    keys = [f"d{n}-{secrets.token_hex(4)}" for n in range(DELIVERIES)]

    def send(key: str) -> None:
        for _ in range(ATTEMPTS):
            answer = post_conversation(base, key)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=send, args=(key,)) for key in keys]
    for start in range(0, len(threads), 8):  # bounded: 8 at a time
        for thread in threads[start : start + 8]:
            thread.start()
        for thread in threads[start : start + 8]:
            thread.join(timeout=120)
    return answers


def handled(counter: redis.Redis) -> dict[str, int]:
    return {key.decode(): int(counter.get(key) or 0) for key in counter.scan_iter("handled:*")}


# -- 1. several workers --------------------------------------------------------------------------------
def under_four_workers(redis_url: str, store: str) -> tuple[list[requests.Response], redis.Redis]:
    """The deliveries sent to the counting app under gunicorn -w 4, its webhook store set as
    ``store`` says (``default``: nothing set; ``omi_store``: OMI_STORE only); and the counter."""
    counter = redis.from_url(redis_url)
    counter.flushdb()
    env = {"TEST_SECRET_KEY": "s" * 40, "TEST_REDIS_URL": redis_url, "TEST_WEBHOOKS": "1",
           "TEST_WEBHOOK_STORE": store, "TEST_SESSIONS": "cookie"}  # fmt: skip
    with gunicorn(env, workers=4) as server:
        return deliver_each_three_times(server.url), counter


def test_the_defaults_under_four_workers_refuse_loudly_and_name_omi_store(redis_url: str) -> None:
    """Before, 50 deliveries sent 3 times each ran their handlers 89 to 150 times under gunicorn
    -w 4 with the in-process defaults, without a word. Now every such request is refused with 500
    (which OMI retries) naming the one setting, and no handler runs twice: none runs at all."""
    answers, counter = under_four_workers(redis_url, "default")
    assert len(answers) == DELIVERIES * ATTEMPTS
    assert {a.status_code for a in answers} == {500}
    assert all(a.json()["error"] == "store_not_shared" and "OMI_STORE" in a.text for a in answers)
    assert handled(counter) == {}


def test_with_omi_store_alone_each_delivery_runs_once_under_four_workers(redis_url: str) -> None:
    answers, counter = under_four_workers(redis_url, "omi_store")
    assert {a.status_code for a in answers} <= {200, 425}
    runs = handled(counter)
    assert len(runs) == DELIVERIES and set(runs.values()) == {1}


# -- 2. a full in-process de-duplication store ---------------------------------------------------------
def test_a_full_in_process_ledger_lets_its_oldest_go_logged_once_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, a full ledger answered 503 to every later delivery until keys expired (3 h): an
    outage. De-duplication now forgets its oldest handled deliveries; replay refusal still refuses."""
    monkeypatch.setitem(STORE_SETTINGS["OMI_WEBHOOK_STORE"], "max_entries", 10)
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET)
    ran: list[str] = []
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: ran.append(event.id))
    app.register_blueprint(hooks)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="flask_omi"):
        answers = [signed_conversation(client, f"c{n}").status_code for n in range(40)]
    assert answers == [200] * 40 and len(ran) == 40
    ledger = app.extensions["omi"].webhooks.ledger
    assert isinstance(ledger, MemoryStore) and ledger.forgotten == 30 and len(ledger) == 10
    said = [r for r in caplog.records if "oldest are forgotten" in r.getMessage()]
    assert len(said) == 1 and "OMI_WEBHOOK_STORE" in said[0].getMessage()
    # The newest are still known: OMI's retry of the last delivery does not run it again.
    assert signed_conversation(client, "c39", timestamp_offset=-1).get_json() == {}
    assert len(ran) == 40


def signed_conversation(client: Any, key: str, timestamp_offset: int = 0) -> Any:
    import time

    body = json.dumps({"id": key}).encode()
    timestamp = int(time.time()) + timestamp_offset
    headers = {
        "X-Omi-Signature": signature_header(SECRET, "u1", body, timestamp),
        "X-Omi-Idempotency-Key": key,
    }
    return client.post("/omi/webhooks/conversation?uid=u1", data=body, headers=headers)


# -- 3. Redis blips ----------------------------------------------------------------------------------
@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop."""
    from ..background.processes import redis_server

    with redis_server() as server:
        yield server


def test_a_redis_stall_shorter_than_the_budget_refuses_no_honest_sign_in(own_redis: RedisServer) -> None:
    """One 0.8 s stall with a 0.5 s socket timeout refused an honest sign-in (503
    state_check_unavailable). Redis is paused for 1.2 s (CLIENT PAUSE: in force when it answers);
    the claim is sent again within the store's 2 s budget and the sign-in goes through."""
    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    app = make_app(OmiBlueprint(), OMI_STATE_REGISTRY=client)
    browser = app.test_client()
    state = start_login(browser)
    redis.Redis.from_url(own_redis.url).execute_command("CLIENT", "PAUSE", 1200, "ALL")
    answer = browser.get(f"/omi/callback?uid=u1&state={state}")
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    assert browser.get("/dashboard").get_data(as_text=True) == "hello u1"


def transcript_app(store: Any) -> tuple[Flask, list[str]]:
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET, OMI_WEBHOOK_STORE=store)
    seen: list[str] = []
    hooks = OmiWebhooks()

    @hooks.on_transcript
    def live(batch: TranscriptBatch) -> None:
        seen.append(batch.segments[0].text)

    @hooks.on_conversation_created
    def conversation(event: Any) -> None:
        seen.append(f"conversation {event.id}")

    app.register_blueprint(hooks)
    return app, seen


def test_a_redis_outage_loses_no_live_transcript_and_still_refuses_replays(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """OMI never sends a live transcript batch again: refusing it (503) lost it. With Redis down,
    live batches are checked against replays in this process, within the signature's lifetime,
    and logged; a conversation delivery (which OMI retries) is answered 503."""
    store = redis.Redis.from_url(own_redis.url, socket_timeout=0.3, socket_connect_timeout=0.3)
    app, seen = transcript_app(store)
    client = app.test_client()
    own_redis.stop()
    with caplog.at_level(logging.ERROR, logger="flask_omi.webhooks"):
        answers = []
        for n in range(12):
            body = json.dumps({"session_id": "u1", "segments": [{"text": f"batch {n}"}]}).encode()
            headers = {"X-Omi-Signature": signature_header(SECRET, "u1", body)}
            answers.append(client.post("/omi/webhooks/transcript?uid=u1", data=body, headers=headers))
        replayed = client.post("/omi/webhooks/transcript?uid=u1", data=body, headers=headers)
        durable = signed_conversation(client, "c1")
    assert [a.status_code for a in answers] == [200] * 12
    assert seen == [f"batch {n}" for n in range(12)]
    assert replayed.status_code == 409
    assert durable.status_code == 503 and durable.get_json()["error"] == "dedup_unavailable"
    assert "replays refused in this process only" in caplog.text


# -- 5. what only the running Redis can tell --------------------------------------------------------
def online_check(app: Flask) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(
        args=["omi", "check", "--base-url", "http://127.0.0.1:5000", "--online"]
    )
    return result.exit_code, result.output


def test_check_online_reads_persistence_and_eviction_of_the_store_and_the_broker(
    own_redis: RedisServer,
) -> None:
    """Redis without persistence lost 5 of 5 queued deliveries that OMI had been answered 200 for;
    the deployment guide asked for noeviction but nothing checked either."""
    from celery import Celery

    app = make_app(
        OmiBlueprint(),
        OMI_STORE=own_redis.url,
        SECRET_KEY=secrets.token_hex(32),
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.extensions["celery"] = Celery("online", broker=own_redis.url, set_as_current=False)
    code, out = online_check(app)
    assert code == 1
    assert "reachable, appendonly no, maxmemory-policy noeviction" in out
    assert "(must fix)" in out and "runs without appendonly: a restart loses the deliveries queued" in out
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("appendonly", "yes")
    admin.config_set("maxmemory-policy", "allkeys-lru")
    code, out = online_check(app)
    assert code == 1 and "maxmemory-policy allkeys-lru: when full it drops keys" in out
    admin.config_set("maxmemory-policy", "noeviction")
    code, out = online_check(app)
    assert code == 0, out
    assert "reachable, appendonly yes, maxmemory-policy noeviction" in out


def test_check_online_fails_on_a_redis_it_cannot_reach() -> None:
    from ..helpers import free_port

    app = make_app(OmiBlueprint(), OMI_STORE=f"redis://127.0.0.1:{free_port()}/0")
    code, out = online_check(app)
    assert code == 1 and "cannot be reached" in out and "unreachable" in out
