"""Several instances behind one domain, shared sessions in Redis, and a bounded load run.

Everything runs for real: gunicorn processes and a redis-server on loopback.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from . import LOAD_RESULTS
from .servers import gunicorn, redis_server

CLIENTS, SIGN_INS_PER_CLIENT = 50, 40


def start(browser: requests.Session, base: str, next_path: str = "/whoami") -> str:
    answer = browser.get(f"{base}/omi/login?next={next_path}", allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)["state"][0]


def finish(browser: requests.Session, base: str, uid: str, state: str) -> requests.Response:
    # What OMI's page does: APP_HOME_URL + "?uid=" + uid + "&state=" + state, unencoded.
    return browser.get(f"{base}/omi/callback?uid={uid}&state={state}", allow_redirects=False, timeout=10)


def whoami(browser: requests.Session, base: str) -> str | None:
    answer = browser.get(f"{base}/whoami", allow_redirects=False, timeout=10)
    return answer.text if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def shared_key() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="module")
def two_cookie_instances(shared_key: str) -> Iterator[tuple[str, str]]:
    with gunicorn({"TEST_SECRET_KEY": shared_key}) as a, gunicorn({"TEST_SECRET_KEY": shared_key}) as b:
        yield a, b


@pytest.fixture(scope="module")
def two_redis_instances(shared_key: str) -> Iterator[tuple[str, str]]:
    with redis_server() as redis_url:
        env = {"TEST_SECRET_KEY": shared_key, "TEST_REDIS_URL": redis_url}
        with gunicorn(env) as a, gunicorn(env) as b:
            yield a, b


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
    counts = {"sign_ins": 0, "failures": 0, "mix_ups": 0}
    lock = threading.Lock()

    with gunicorn({"TEST_SECRET_KEY": shared_key}, workers=4) as base:

        def client(number: int) -> None:
            browser = requests.Session()
            for attempt in range(SIGN_INS_PER_CLIENT):
                uid = f"load_{number}_{attempt}"
                outcome = "sign_ins"
                try:
                    answer = finish(browser, base, uid, start(browser, base))
                    seen = whoami(browser, base) if answer.status_code == 302 else None
                    if seen is None:
                        outcome = "failures"
                    elif seen != uid:
                        outcome = "mix_ups"
                except (requests.RequestException, AssertionError, KeyError):
                    outcome = "failures"
                with lock:
                    counts[outcome] += 1

        began = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        elapsed = time.perf_counter() - began

    total = CLIENTS * SIGN_INS_PER_CLIENT
    LOAD_RESULTS.append(
        f"load: {CLIENTS} clients x {SIGN_INS_PER_CLIENT} sign-ins against gunicorn (4 workers): "
        f"{counts['sign_ins']} signed in as themselves, {counts['failures']} failures, "
        f"{counts['mix_ups']} mix-ups, {elapsed:.1f} s ({total / elapsed:.0f} sign-ins/s incl. checks)"
    )
    record_property("cases", total)
    assert counts == {"sign_ins": total, "failures": 0, "mix_ups": 0}
