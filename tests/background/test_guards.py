"""The receiving side of background handlers, and the guards bounded by time, in one process.

Celery is real here (its app, its task, its publisher); only the broker is missing where a test
says so. The Redis tests run a real redis-server and count the commands it executed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from redis import Redis

from flask_omi import ConversationCreated, OmiBlueprint, OmiConfigError, OmiWebhooks, omi_client
from flask_omi.config import DEFAULTS, STORE_SETTINGS
from flask_omi.inbound.background import event_from, message_for, sign_message, task_name
from flask_omi.inbound.payloads import AudioChunk
from flask_omi.inbound.request import _nesting_exceeds
from flask_omi.inbound.signing import signature_header
from flask_omi.keystore import _CLAIM_SCRIPT
from flask_omi.stores import MemoryStore, RedisStore

from ..helpers import assert_refused, free_port
from .processes import SECRET, RedisServer, redis_server

UID = "guard-user"


def app_with(celery: Celery | None, **config: Any) -> tuple[Flask, list[Any]]:
    ran: list[Any] = []
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET, **config)
    if celery is not None:
        app.extensions["celery"] = celery
    hooks = OmiWebhooks()

    @hooks.on_conversation_created(background=True)
    def conversation(event: ConversationCreated) -> None:
        ran.append(event)

    app.register_blueprint(hooks)
    return app, ran


def delivery(client: Any, body: dict[str, Any], key: str | None = "k1", timestamp: int | None = None) -> Any:
    raw = json.dumps(body).encode()
    headers = {"X-Omi-Signature": signature_header(SECRET, UID, raw, timestamp)}
    if key:
        headers["X-Omi-Idempotency-Key"] = key
    return client.post(f"/omi/webhooks/conversation?uid={UID}", data=raw, headers=headers)


def test_a_background_handler_needs_a_celery_app_registered_first() -> None:
    with pytest.raises(OmiConfigError, match=r"no Celery app.*celery_init_app"):
        app_with(None)


def test_both_decorator_forms_register_and_only_background_kinds_get_a_task() -> None:
    hooks = OmiWebhooks()

    @hooks.on_transcript
    def inline(batch: Any) -> None: ...

    @hooks.on_conversation_created(background=True)
    def later(event: Any) -> None: ...

    assert hooks.handlers.transcript is inline and hooks.handlers.conversation is later
    assert hooks.handlers.background == {"conversation"}
    celery = Celery("forms", set_as_current=False)
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "k" * 40  # queued messages are signed with it (no signing secret)
    app.extensions["celery"] = celery
    app.register_blueprint(hooks)
    assert task_name("omi_webhooks") in celery.tasks


def test_eager_celery_runs_the_handler_with_the_event_it_was_given() -> None:
    """With Celery's eager mode (for tests), the task runs in the request: the typed event the
    worker rebuilds from the queued message equals the one the receiver checked."""
    celery = Celery("eager", set_as_current=False)
    celery.conf.task_always_eager = True
    app, ran = app_with(celery)
    body = {"id": "c1", "structured": {"title": "Tea"}, "transcript_segments": [{"text": "hi"}]}
    answer = delivery(app.test_client(), body)
    assert answer.status_code == 200 and answer.get_json() == {}
    (event,) = ran
    assert event == ConversationCreated.from_json(UID, body, delivery_id=None, idempotency_key="k1")


def test_audio_travels_through_the_queue_unchanged() -> None:
    chunk = AudioChunk(
        uid=UID, sample_rate=16000, data=bytes(range(256)) * 2, delivery_id="d", idempotency_key=None
    )
    assert event_from(json.loads(json.dumps(message_for("audio", UID, chunk.data, chunk)))) == chunk


def test_a_broker_that_cannot_take_the_delivery_is_a_503_and_nothing_is_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OMI retries a 503; the delivery's claims are released, so the retry is queued, not taken
    for already handled."""
    celery = Celery("down", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    celery.conf.update(broker_connection_timeout=1, task_publish_retry=False, broker_connection_retry=False)
    app, ran = app_with(celery)
    client = app.test_client()
    body = {"id": "c2"}
    with caplog.at_level(logging.ERROR, logger="flask_omi.webhooks"):
        assert_refused(delivery(client, body, timestamp=int(time.time()) - 1), 503, "Please retry")
        # OMI's retry, re-signed: refused again the same way, not answered 200 "already handled".
        assert_refused(delivery(client, body), 503, "Please retry")
    assert "could not queue the delivery" in caplog.text and ran == []


# -- guards bounded by time ------------------------------------------------------------------------
#: OMI's retry horizon, the default OMI_WEBHOOK_DEDUP_TTL (config.py says how it is derived).
HORIZON = DEFAULTS["OMI_WEBHOOK_DEDUP_TTL"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_in_process_ledger_remembers_a_delivery_for_omis_retry_horizon_whatever_else_arrives() -> None:
    """In 0.2 it forgot a handled delivery after 10,000 others, and OMI's retry then ran the
    handler a second time. Now it keeps it until the horizon has passed."""
    clock = Clock()
    ledger = MemoryStore(STORE_SETTINGS["OMI_WEBHOOK_STORE"]["max_entries"], when_full="refuse", clock=clock)
    assert ledger.claim("first", 60) == "new"
    ledger.finish("first", HORIZON)
    for number in range(50_000):  # five times the old bound, all within the horizon
        ledger.claim(f"other-{number}", 60)
        ledger.finish(f"other-{number}", HORIZON)
    clock.now += HORIZON - 1
    assert ledger.claim("first", 60) == "done"
    clock.now += 2
    assert ledger.claim("first", 60) == "new"


def test_a_full_in_process_ledger_refuses_with_a_status_omi_retries_instead_of_forgetting() -> None:
    from flask_omi.stores import MemoryStore as Store

    app = Flask(__name__)
    # Room for one delivery: its idempotency key and its signature.
    app.config.update(OMI_SIGNING_SECRET=SECRET, OMI_WEBHOOK_STORE=Store(2, when_full="refuse"))
    ran: list[Any] = []
    hooks = OmiWebhooks()
    hooks.on_conversation_created(ran.append)
    app.register_blueprint(hooks)
    client = app.test_client()
    assert delivery(client, {"id": "a"}, key="a").status_code == 200
    assert_refused(delivery(client, {"id": "b"}, key="b"), 503, "Please retry")
    # OMI's retry of the handled delivery, re-signed: still known, not run again.
    assert delivery(client, {"id": "a"}, key="a", timestamp=int(time.time()) - 1).get_json() == {}
    assert [event.id for event in ran] == ["a"]


def test_the_default_keeps_signatures_apart_from_deliveries() -> None:
    """A burst of signed live transcripts (never retried by OMI) cannot push handled
    conversation deliveries out: they are kept in stores of their own."""
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET)
    app.register_blueprint(OmiWebhooks())
    state = app.extensions["omi"].webhooks
    assert isinstance(state.ledger, MemoryStore) and isinstance(state.replays, MemoryStore)
    assert state.ledger is not state.replays
    assert app.config["OMI_WEBHOOK_DEDUP_TTL"] == DEFAULTS["OMI_WEBHOOK_DEDUP_TTL"] == 10_800


# -- Redis: one round trip per check ---------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


class Counting(Redis):
    """A real client that notes each command it sends: one command, one round trip."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


def test_a_delivery_costs_one_round_trip_to_admit_and_one_to_record(redis_srv: RedisServer) -> None:
    """The idempotency key and the signature are claimed together by one script (EVALSHA),
    then the delivery is recorded as done (SET): two commands, where 0.2 sent three."""
    redis = Counting.from_url(redis_srv.url)
    redis.sent = []
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET, OMI_WEBHOOK_STORE=redis)
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: None)
    app.register_blueprint(hooks)
    client = app.test_client()
    delivery(client, {"id": "warm"}, key="warm")  # loads the script once (EVALSHA, then EVAL)
    redis.sent.clear()
    assert delivery(client, {"id": "c3"}, key="c3").status_code == 200
    assert redis.sent == ["EVALSHA", "SET"]
    redis.sent.clear()
    assert delivery(client, {"id": "c3"}, key="c3", timestamp=int(time.time()) - 1).get_json() == {}
    assert redis.sent == ["EVALSHA"]  # OMI's retry: known in one round trip


def test_claims_in_redis_are_all_or_nothing_and_a_clients_own_retry_is_not_a_replay(
    redis_srv: RedisServer,
) -> None:
    store = RedisStore(Redis.from_url(redis_srv.url), prefix="together:")
    assert store.claim_all([("a", 60), ("b", 60)]) == (-1, "new")
    other = RedisStore(Redis.from_url(redis_srv.url), prefix="together:")
    assert other.claim_all([("c", 60), ("b", 60)]) == (1, "running")
    assert other.claim("c", 60) == "new"  # released when b was found taken
    store.finish("a", 60)
    assert other.claim_all([("a", 60)]) == (0, "done")
    # The script run twice with one value (a client retrying a command whose answer was lost).
    script = Redis.from_url(redis_srv.url).register_script(_CLAIM_SCRIPT)
    assert script(keys=["together:d"], args=[b"running:mine", 60]) == [0]
    assert script(keys=["together:d"], args=[b"running:mine", 60]) == [0]
    assert script(keys=["together:d"], args=[b"running:other", 60])[0] == 1


def test_flask_omi_check_fails_background_handlers_without_a_shared_store() -> None:
    """The workers are other processes than the web one, even when OMI_SINGLE_PROCESS is set:
    their run claims must be in Redis."""
    celery = Celery("check", set_as_current=False)
    app, _ = app_with(celery, OMI_SINGLE_PROCESS=True, SECRET_KEY="x" * 40, OMI_APP_ID="check-app")
    app.register_blueprint(OmiBlueprint())  # the one that brings `flask omi`
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 1
    assert "background=True but OMI_WEBHOOK_STORE is kept in each process" in result.output


# -- what a live transcript costs: the nesting check and segments typed when read -------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{"\\k', max_size=3), inner, max_size=4)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(value=json_values, wrap=st.integers(0, 8), limit=st.integers(0, 6))
def test_the_nesting_check_agrees_with_the_parsed_depth(value: Any, wrap: int, limit: int) -> None:
    """Brackets, quotes and backslashes inside strings included: the fast check says "too deep"
    exactly when the parsed JSON nests deeper than the limit."""
    for _ in range(wrap):
        value = [value]
    body = json.dumps(value).encode()
    assert _nesting_exceeds(body, limit) == (depth(value) > limit)


def live_app(read: bool) -> tuple[Flask, list[Any]]:
    seen: list[Any] = []
    app = Flask(__name__)
    hooks = OmiWebhooks()

    @hooks.on_transcript
    def transcript(batch: Any) -> None:
        seen.append(batch.session_id)
        if read:
            seen.extend(segment.text for segment in batch.segments)

    app.register_blueprint(hooks)
    return app, seen


def test_a_live_transcripts_segments_are_typed_when_read_and_a_bad_one_is_a_400() -> None:
    bad = {"session_id": "s1", "segments": [{"text": "fine"}, {"text": 5}]}
    app, seen = live_app(read=False)
    assert app.test_client().post("/omi/webhooks/transcript?uid=u1", json=bad).status_code == 200
    assert seen == ["s1"]  # the handler never read the segments: nothing was typed
    app, seen = live_app(read=True)
    answer = app.test_client().post("/omi/webhooks/transcript?uid=u1", json=bad)
    assert answer.status_code == 400 and answer.get_json()["error"] == "payload_invalid"
    assert "'text' must be a string" in answer.get_json()["error_description"]
    good = {"session_id": "s2", "segments": [{"text": "one"}, {"text": "two"}]}
    assert app.test_client().post("/omi/webhooks/transcript?uid=u1", json=good).status_code == 200
    assert seen[-3:] == ["s2", "one", "two"]


def test_a_queued_delivery_is_checked_whole_before_it_is_queued() -> None:
    celery = Celery("whole", set_as_current=False)
    celery.conf.task_always_eager = True
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "k" * 40
    app.extensions["celery"] = celery
    hooks = OmiWebhooks()
    ran: list[Any] = []
    hooks.on_transcript(ran.append, background=True)
    app.register_blueprint(hooks)
    bad = {"session_id": "s1", "segments": [{"text": 5}]}
    answer = app.test_client().post("/omi/webhooks/transcript?uid=u1", json=bad)
    assert answer.status_code == 400 and answer.get_json()["error"] == "payload_invalid" and ran == []


def test_used_signatures_are_kept_in_their_own_store_in_process() -> None:
    """The two in-process stores are used as such: a delivery's signature lands in the replay
    store, its idempotency key in the ledger (an empty store is still a store)."""
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET)
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: None)
    app.register_blueprint(hooks)
    state = app.extensions["omi"].webhooks
    assert delivery(app.test_client(), {"id": "c1"}, key="c1").status_code == 200
    assert (len(state.ledger), len(state.replays)) == (1, 1)


def test_an_app_that_only_receives_webhooks_has_an_api_client() -> None:
    """A background handler notifies users through omi_client(): it works without the sign-in
    blueprint, and an app with no flask-omi blueprint at all is still told what is missing."""
    app = Flask(__name__)
    app.config.update(OMI_APP_ID="hooks-only", OMI_API_KEY="sk_" + "0" * 32)
    app.register_blueprint(OmiWebhooks())
    with app.app_context():
        client = omi_client()
        assert client is omi_client() and client.app_id == "hooks-only"
    with Flask(__name__).app_context(), pytest.raises(OmiConfigError, match="not set up"):
        omi_client()


def test_each_app_runs_its_own_handlers_on_its_own_celery_app() -> None:
    """Two apps in one process (an app factory under test): each Celery app's task runs that
    app's handler. Celery shares tasks between its apps by default, which would have sent the
    second app's deliveries to the first app's handler."""
    seen: list[str] = []
    for name in ("first", "second"):
        celery = Celery(name, set_as_current=False)
        celery.conf.task_always_eager = True
        app = Flask(name)
        app.config.update(OMI_SIGNING_SECRET=SECRET)
        app.extensions["celery"] = celery
        hooks = OmiWebhooks()
        hooks.on_conversation_created(lambda event, name=name: seen.append(name), background=True)
        app.register_blueprint(hooks)
        assert delivery(app.test_client(), {"id": name}, key=name).status_code == 200
    assert seen == ["first", "second"]


def test_one_celery_app_for_two_flask_apps_is_refused() -> None:
    celery = Celery("shared", set_as_current=False)
    app_with(celery)
    with pytest.raises(OmiConfigError, match="already has a task"):
        app_with(celery)


# -- forged queue messages, and settings Celery must have -----------------------------------------
def test_a_background_app_without_any_key_to_sign_its_queue_is_refused() -> None:
    celery = Celery("nokey", set_as_current=False)
    app = Flask(__name__)
    app.extensions["celery"] = celery
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: None, background=True)
    with pytest.raises(OmiConfigError, match="queued deliveries are signed"):
        app.register_blueprint(hooks)


def test_a_forged_or_oversized_queue_message_never_runs_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    """Anyone who can write to the broker could queue a task naming any uid: before, it ran (a 3 MB
    body too). A worker now runs only messages this app signed, within the size bound."""
    celery = Celery("forged", set_as_current=False)
    celery.conf.task_always_eager = True
    app, ran = app_with(celery, OMI_WEBHOOK_MAX_BYTES=1024 * 1024)
    task = celery.tasks[task_name("omi_webhooks")]
    unsigned = message_for("conversation", "victim-uid", b'{"id": "x"}', _Ids())
    with caplog.at_level(logging.ERROR, logger="flask_omi.webhooks"):
        task.apply(args=(unsigned,))
        task.apply(args=({**unsigned, "mac": "0" * 64},))
        huge = sign_message(
            app, message_for("conversation", UID, b'{"id": "' + b"a" * 3_000_000 + b'"}', _Ids())
        )
        task.apply(args=(huge,))
    assert ran == []
    assert "not signed" in caplog.text and "signature is wrong" in caplog.text
    assert "refused a queued message of" in caplog.text
    signed = sign_message(app, message_for("conversation", UID, b'{"id": "ok"}', _Ids()))
    task.apply(args=(signed,))
    assert [event.id for event in ran] == ["ok"]


class _Ids:
    delivery_id = None
    idempotency_key = None


def test_flask_omi_check_names_celery_settings_that_break_run_once() -> None:
    celery = Celery("settings", set_as_current=False)
    celery.conf.update(worker_pool="threads", broker_transport_options={"visibility_timeout": 60})
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET, SECRET_KEY="k" * 40, OMI_APP_ID="01APP")
    app.extensions["celery"] = celery
    app.register_blueprint(OmiBlueprint())
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: None, background=True)
    app.register_blueprint(hooks)
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 1
    assert "worker_pool is 'threads', which cannot stop a task at its time limit" in result.output
    assert "visibility_timeout (60 s) is shorter than a run may take" in result.output
