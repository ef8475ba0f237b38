"""Background handlers with the real parts: redis-server, gunicorn and Celery worker processes.

Each test asserts a promise (every delivery's handler completes exactly once; a delivery the
app could not take is answered with a status OMI retries), never one run's timing: every wait is
"until this is true", bounded by a deadline.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from redis import Redis

from flask_omi.inbound.signing import signature_header
from flask_omi.testing import FakeOmi

from ..helpers import free_port
from .processes import (
    SECRET,
    Process,
    RedisServer,
    redis_server,
    started,
    wait_for,
    web_command,
    worker_command,
    worker_ready,
)

UID = "background-user"


def conversation(**extra: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "structured": {"title": "A walk", "overview": "We walked."}, **extra}


def post(
    session: requests.Session, base: str, body: dict[str, Any], key: str | None, timestamp: int | None = None
) -> requests.Response:
    """One attempt of an OMI conversation delivery (signed anew for each attempt, as OMI does)."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Omi-Signature": signature_header(SECRET, UID, raw, timestamp),
        "X-Omi-Event": "memory_created",
    }
    if key is not None:
        headers["X-Omi-Idempotency-Key"] = headers["X-Omi-Delivery"] = key
    return session.post(f"{base}/omi/webhooks/conversation?uid={UID}", data=raw, headers=headers, timeout=30)


def counts(redis: Redis, name: str) -> dict[str, int]:
    return {key.decode(): int(value) for key, value in redis.hgetall(name).items()}


def drained(redis: Redis) -> bool:
    """Nothing waits in Celery's queue and no worker holds an unacknowledged message."""
    return redis.llen("celery") == 0 and redis.hlen("unacked") == 0


@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def env_for(server: RedisServer, **extra: str) -> dict[str, str]:
    return {"TEST_REDIS_URL": server.url, **extra}


@pytest.fixture(scope="module")
def web(redis_srv: RedisServer) -> Iterator[str]:
    port = free_port()
    with started(web_command(port), env_for(redis_srv)) as process:
        base = f"http://127.0.0.1:{port}"
        wait_answering(base, process)
        yield base


def wait_answering(base: str, process: Process) -> None:
    """Until gunicorn at ``base`` answers; a gunicorn that exited fails at once, with its output."""

    def up() -> bool:
        if process.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{process.output()[-3000:]}")
        return _answers(base)

    wait_for(up, f"gunicorn at {base}", 60)


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/health", timeout=5).ok
    except requests.RequestException:
        return False


def test_a_worker_killed_in_the_middle_of_a_task_loses_nothing_and_runs_it_once(
    redis_srv: RedisServer, web: str
) -> None:
    """Late acknowledgement: the broker hands a dead worker's message out again; the run claim
    (leased for the time limit) keeps a second worker from running it while the first might still
    be, and lets it run once the lease is over."""
    env = env_for(redis_srv, TEST_TIME_LIMIT="4", TEST_VISIBILITY_TIMEOUT="3")
    redis = Redis.from_url(redis_srv.url)
    body = conversation(work_seconds=2)
    with requests.Session() as session:
        with started(worker_command("doomed", concurrency=1), env) as doomed:
            wait_for(lambda: worker_ready(doomed), "the first worker", 60)
            answer = post(session, web, body, f"kill-{body['id']}")
            assert answer.status_code == 200 and answer.json() == {}
            wait_for(lambda: counts(redis, "starts").get(body["id"]) == 1, "the first run to start")
            doomed.kill_hard()
        assert counts(redis, "runs").get(body["id"]) is None  # killed before it completed
        with started(worker_command("survivor", concurrency=1), env) as survivor:
            wait_for(lambda: worker_ready(survivor), "the second worker", 60)
            wait_for(lambda: counts(redis, "runs").get(body["id"]) == 1, "the run after the kill", 90)
            wait_for(lambda: drained(redis), "the queue to drain", 60)
    assert counts(redis, "runs")[body["id"]] == 1
    assert counts(redis, "starts")[body["id"]] == 2  # the killed run, then the one that completed


def test_two_instances_and_two_workers_run_each_of_1000_deliveries_once(redis_srv: RedisServer) -> None:
    """OMI's retries included: every fifth delivery is posted again, re-signed, to the other
    instance, as OMI does after a timeout; every handler still runs exactly once."""
    env = env_for(redis_srv)
    redis = Redis.from_url(redis_srv.url)
    bodies = [conversation() for _ in range(1000)]
    ports = [free_port(), free_port()]
    with (
        started(web_command(ports[0]), env) as web_a,
        started(web_command(ports[1]), env) as web_b,
        started(worker_command("one"), env) as one,
        started(worker_command("two"), env) as two,
    ):
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base, process in zip(bases, (web_a, web_b), strict=True):
            wait_answering(base, process)
        local = [requests.Session() for _ in range(8)]

        def deliver(index: int) -> list[int]:
            session, body = local[index % 8], bodies[index]
            key = f"load-{body['id']}"
            statuses = [post(session, bases[index % 2], body, key).status_code]
            if index % 5 == 0:  # OMI's retry, re-signed a second later, to the other instance
                retry = post(session, bases[(index + 1) % 2], body, key, timestamp=_now() + 1)
                statuses.append(retry.status_code)
            return statuses

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(deliver, range(len(bodies))))
        assert {status for statuses in answers for status in statuses} <= {200, 425}
        for process in (one, two):
            wait_for(lambda p=process: worker_ready(p), "a worker", 60)  # type: ignore[misc]
        wait_for(lambda: redis.hlen("runs") >= 1000 and drained(redis), "1,000 runs", 240)
        runs = counts(redis, "runs")
        # Which worker completed each run, as the handler recorded it: not Celery's log lines,
        # of which a retried task writes two.
        ran_on = {key.decode(): value.decode() for key, value in redis.hgetall("ran_on").items()}
        shares = Counter(ran_on[body["id"]] for body in bodies)
        for session in local:
            session.close()
    assert all(runs[body["id"]] == 1 for body in bodies)
    assert all(counts(redis, "starts")[body["id"]] == 1 for body in bodies)
    assert set(shares) == {"one@127.0.0.1", "two@127.0.0.1"}  # both workers took part


def _now() -> int:
    import time

    return int(time.time())


def test_redis_down_answers_503_which_omi_retries_and_loses_nothing(redis_srv: RedisServer) -> None:
    """With Redis (store and broker) down, a delivery is answered 503, which OMI retries; once
    Redis is back, OMI's retry is queued and run once."""
    server = RedisServer()
    server.start()
    env = env_for(server)
    port = free_port()
    body = conversation()
    key = f"down-{body['id']}"
    try:
        with started(web_command(port), env) as web, requests.Session() as session:
            base = f"http://127.0.0.1:{port}"
            wait_answering(base, web)
            assert web.proc.poll() is None
            server.stop()
            answer = post(session, base, body, key)
            assert answer.status_code == 503 and answer.json()["error"] == "dedup_unavailable"
            server.start()  # the same port: the app's clients reconnect
            redis = Redis.from_url(server.url)
            assert redis.hlen("runs") == 0  # nothing ran while Redis was down
            with started(worker_command("after"), env) as worker:
                wait_for(lambda: worker_ready(worker), "the worker", 60)
                retry = post(session, base, body, key, timestamp=_now() + 1)
                assert retry.status_code == 200
                wait_for(lambda: counts(redis, "runs").get(body["id"]) == 1 and drained(redis), "the run")
                assert post(session, base, body, key, timestamp=_now() + 2).json() == {}  # handled
                wait_for(lambda: drained(redis), "the queue to drain")
            assert counts(redis, "runs") == {body["id"]: 1}
    finally:
        server.stop()


def test_a_failing_handler_is_retried_with_backoff_and_at_last_given_up(
    redis_srv: RedisServer, web: str
) -> None:
    """A handler that raises once runs again (after 2 s) and completes; one that keeps raising is
    retried OMI_WEBHOOK_TASK_RETRIES (2) times, then given up with an error in the worker's log."""
    redis = Redis.from_url(redis_srv.url)
    flaky, broken = conversation(fail_times=1), conversation(fail_times=99)
    with started(worker_command("retrier"), env_for(redis_srv)) as worker, requests.Session() as session:
        wait_for(lambda: worker_ready(worker), "the worker", 60)
        for body in (flaky, broken):
            assert post(session, web, body, f"fail-{body['id']}").status_code == 200
        wait_for(lambda: counts(redis, "runs").get(flaky["id"]) == 1, "the flaky handler's second run")
        wait_for(lambda: "giving up on delivery" in worker.output(), "the last failure to be logged", 90)
        wait_for(lambda: drained(redis), "the queue to drain")
        log = worker.output()
    assert counts(redis, "starts")[flaky["id"]] == 2
    assert counts(redis, "starts")[broken["id"]] == 3  # the first run and 2 retries
    assert broken["id"] not in counts(redis, "runs")
    assert "failed 3 times; giving up on delivery fail-" in log
    assert "retry 1 of 2 in 2 s" in log and "retry 2 of 2 in 4 s" in log


def test_a_background_handler_that_answers_is_refused_with_a_clear_error(
    redis_srv: RedisServer, web: str
) -> None:
    """OMI's request was answered when the delivery was queued: the handler's answer cannot reach
    anyone, so it is refused loudly (and the handler is not run again)."""
    redis = Redis.from_url(redis_srv.url)
    session_id = uuid.uuid4().hex
    raw = json.dumps({"session_id": session_id, "segments": [{"text": "hello"}]}).encode()
    headers = {"Content-Type": "application/json", "X-Omi-Signature": signature_header(SECRET, UID, raw)}
    with started(worker_command("answerer"), env_for(redis_srv)) as worker:
        wait_for(lambda: worker_ready(worker), "the worker", 60)
        answer = requests.post(
            f"{web}/omi/webhooks/transcript?uid={UID}", data=raw, headers=headers, timeout=30
        )
        assert answer.status_code == 200 and answer.json() == {}  # answered at once, nothing to say
        wait_for(lambda: "BackgroundAnswerError" in worker.output(), "the refusal in the worker's log")
        wait_for(lambda: drained(redis), "the queue to drain")
        log = worker.output()
    assert counts(redis, "runs")[f"transcript:{session_id}"] == 1
    assert "a background handler cannot answer OMI" in log and "send_notification" in log


def test_a_background_handler_notifies_the_user_through_omi_from_the_worker(redis_srv: RedisServer) -> None:
    """What the deployment guide tells a background handler to do instead of answering: the worker
    runs it in an app context, so omi_client() reaches OMI (here the fake OMI, over loopback)."""
    with FakeOmi() as fake:
        _, key = fake.register_app("background-app", app_home_url="http://127.0.0.1:9/omi/callback")
        fake.enable_app(UID, "background-app")
        env = env_for(
            redis_srv, TEST_OMI_BASE=fake.url, TEST_OMI_APP_ID="background-app", TEST_OMI_API_KEY=key
        )
        port = free_port()
        body = conversation(notify=True)
        with (
            started(web_command(port), env) as web,
            started(worker_command("notifier"), env) as worker,
            requests.Session() as session,
        ):
            base = f"http://127.0.0.1:{port}"
            wait_answering(base, web)
            assert web.proc.poll() is None
            wait_for(lambda: worker_ready(worker), "the worker", 60)
            assert post(session, base, body, f"notify-{body['id']}").json() == {}
            wait_for(lambda: fake.notifications_for(UID) != [], "the notification", 60)
    assert fake.notifications_for(UID) == ["Your summary of A walk is ready"]


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_a_worker_whose_pool_cannot_stop_a_task_refuses_to_start(redis_srv: RedisServer, pool: str) -> None:
    """With --pool threads no time limit is enforced: a run outlived its claim, the broker handed
    the message out again, and it completed twice. Such a worker no longer starts."""
    with started(worker_command(f"no-{pool}", pool=pool), env_for(redis_srv)) as worker:
        wait_for(lambda: worker.proc.poll() is not None, "the worker to exit", 60)
        output = worker.output()
    assert worker.proc.returncode != 0
    assert f"flask-omi refuses Celery's {pool} pool: use prefork" in output


def test_redis_killed_between_the_handler_and_done_still_completes_once(tmp_path: Any) -> None:
    """Before, "done" was written once, outside any retry: with Redis killed (-9) after the handler
    ran and restarted, it was never written, the claim ran out, the broker handed the message out
    again, and the delivery completed twice. Now the write is sent again until Redis is back."""
    server = RedisServer(aof_dir=str(tmp_path))
    server.start()
    env = env_for(server, TEST_TIME_LIMIT="20", TEST_VISIBILITY_TIMEOUT="8")
    port = free_port()
    release = tmp_path / "release"
    body = conversation(return_when_file_exists=str(release))
    try:
        with (
            started(web_command(port), env) as web,
            started(worker_command("survives", concurrency=1), env) as worker,
            requests.Session() as session,
        ):
            base = f"http://127.0.0.1:{port}"
            wait_answering(base, web)
            wait_for(lambda: worker_ready(worker), "the worker", 60)
            assert post(session, base, body, f"blip-{body['id']}").status_code == 200
            redis = Redis.from_url(server.url)
            wait_for(lambda: counts(redis, "runs").get(body["id"]) == 1, "the handler to run")
            server.kill_hard()  # after the handler's run was counted, before "done"
            release.touch()  # the handler returns now, with Redis gone
            try:
                wait_for(lambda: "'done' not recorded yet" in worker.output(), "the failed write of done")
            except TimeoutError:
                raise AssertionError(worker.output()[-4000:]) from None
            server.start()  # the same port and append-only file: the queue and claims come back
            redis = Redis.from_url(server.url)
            wait_for(lambda: drained(redis), "the queue to drain", 90)
            wait_for(lambda: "succeeded in" in worker.output(), "the task to be acknowledged", 60)
            # Past the visibility timeout: a redelivered message, if any, has been dealt with.
            wait_for(lambda: drained(redis) and redis.llen("celery") == 0, "nothing left", 30)
            assert counts(redis, "runs") == {body["id"]: 1}
            assert counts(redis, "starts") == {body["id"]: 1}
    finally:
        server.stop()


def test_a_message_put_straight_into_the_queue_never_runs() -> None:
    """Before, a message sent to the broker by anyone who can reach it ran the handler for uid
    ``victim-uid``, unsigned; a 3 MB body ran too. A worker now drops both (one unsigned, one larger than a delivery can
    be: 8 MB against the 5 MiB bound), and says so."""
    from celery import Celery

    from flask_omi.inbound.background import message_for, task_name

    class Ids:
        delivery_id = None
        idempotency_key = None

    name = task_name("omi_webhooks")
    forged = message_for("conversation", "victim-uid", b'{"id": "forged-1"}', Ids())
    huge = {
        **message_for("conversation", UID, b'{"id": "forged-2", "x": "' + b"a" * 8_000_000 + b'"}', Ids())
    }
    # A Redis of its own: no other test's messages in the queue this worker serves.
    with redis_server() as server, started(worker_command("guard", concurrency=1), env_for(server)) as worker:
        intruder = Celery("intruder", broker=server.url, set_as_current=False)
        redis = Redis.from_url(server.url)
        wait_for(lambda: worker_ready(worker), "the worker", 60)
        intruder.send_task(name, args=(forged,))
        intruder.send_task(name, args=({**huge, "mac": "0" * 64},))
        # Refused before the handler: once both refusals are logged, neither can run any more.
        wait_for(lambda: worker.output().count("OMI webhook (background): refused") == 2, "both refusals")
        log = worker.output()
        assert "forged-1" not in counts(redis, "starts") and "forged-2" not in counts(redis, "starts")
    assert "not signed" in log and "refused a queued message of" in log, log[-3000:]
