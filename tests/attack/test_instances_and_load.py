"""Several instances behind one domain, shared sessions in Redis, and a bounded load run.

Everything runs for real: gunicorn processes and a redis-server on loopback.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import requests

from .load import finish, run_load, start, whoami
from .servers import gunicorn, redis_server

CLIENTS, SIGN_INS_PER_CLIENT = 50, 40


@pytest.fixture(scope="module")
def shared_key() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="module")
def two_cookie_instances(shared_key: str) -> Iterator[tuple[str, str]]:
    with gunicorn({"TEST_SECRET_KEY": shared_key}) as a, gunicorn({"TEST_SECRET_KEY": shared_key}) as b:
        yield a.url, b.url


@pytest.fixture(scope="module")
def two_redis_instances(shared_key: str) -> Iterator[tuple[str, str]]:
    with redis_server() as redis_url:
        env = {"TEST_SECRET_KEY": shared_key, "TEST_REDIS_URL": redis_url}
        with gunicorn(env) as a, gunicorn(env) as b:
            yield a.url, b.url


def test_sign_in_starts_on_one_instance_and_finishes_on_the_other(
    two_cookie_instances: tuple[str, str],
) -> None:
    a, b = two_cookie_instances
    browser = requests.Session()
    state = start(browser, a)
    assert finish(browser, b, "multi_uid", state).headers["Location"] == "/whoami"
    assert whoami(browser, a) == whoami(browser, b) == "multi_uid"


def test_cookie_sessions_document_their_replay_limit(two_cookie_instances: tuple[str, str]) -> None:
    """With cookie sessions, "used" is recorded in the cookie itself: whoever holds both the cookie
    from before the callback and the callback URL can replay them until the state expires. This is
    the limit SECURITY.md describes; server-side sessions (next test) close it."""
    a, b = two_cookie_instances
    browser = requests.Session()
    state = start(browser, a)
    old_cookie = browser.cookies.get("session")
    assert finish(browser, a, "u1", state).status_code == 302
    assert finish(browser, b, "u1", state).status_code == 400  # same browser: reused
    thief = requests.Session()
    thief.cookies.set("session", old_cookie, domain="127.0.0.1")
    assert finish(thief, b, "u1", state).status_code == 302


def test_redis_sessions_start_on_one_finish_on_other_and_refuse_replays(
    two_redis_instances: tuple[str, str],
) -> None:
    a, b = two_redis_instances
    browser = requests.Session()
    state = start(browser, a)
    old_cookie = browser.cookies.get("session")
    assert finish(browser, b, "redis_uid", state).status_code == 302
    assert whoami(browser, a) == "redis_uid"
    new_cookie = browser.cookies.get("session")
    assert new_cookie != old_cookie  # a new session id at sign-in
    replay_same = finish(browser, a, "redis_uid", state)
    assert replay_same.status_code == 400 and "state_reused" in replay_same.text
    thief = requests.Session()
    thief.cookies.set("session", old_cookie, domain="127.0.0.1")
    replay_old = finish(thief, a, "redis_uid", state)
    assert replay_old.status_code == 400 and "state_mismatch" in replay_old.text
    assert whoami(thief, b) is None
    assert whoami(browser, b) == "redis_uid"


def test_load_every_client_is_signed_in_as_itself(
    shared_key: str, record_property: pytest.RecordProperty
) -> None:
    with gunicorn({"TEST_SECRET_KEY": shared_key}, workers=4) as server:
        result = run_load(server.url, CLIENTS, SIGN_INS_PER_CLIENT)
    total = CLIENTS * SIGN_INS_PER_CLIENT
    counts = result.counts
    # Reported through the test's properties, which reach the summary from any xdist worker.
    record_property(
        "load",
        f"load: {CLIENTS} clients x {SIGN_INS_PER_CLIENT} sign-ins against gunicorn (4 workers): "
        f"{counts['sign_ins']} signed in as themselves, {counts['failures']} failures, "
        f"{counts['mix_ups']} mix-ups, {result.seconds:.1f} s",
    )
    record_property("cases", total)
    assert counts == {"sign_ins": total, "failures": 0, "mix_ups": 0}
