"""Replays under concurrency, across gunicorn instances: with ``OMI_STATE_REGISTRY`` backed by
Redis, exactly one of N simultaneous callbacks carrying the same cookie and state signs in, and a
callback replayed later with a session cookie copied before it is refused, whatever the session
store. Without a registry the race is real (the first test shows it), as SECURITY.md says.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import Counter
from typing import Any

import pytest
import requests

from flask_omi import OmiBlueprint, OmiConfigError
from flask_omi.keystore import MemoryStore

from ..conftest import make_app, start_login
from .load import finish, start, whoami
from .servers import gunicorn

RACERS = 20
VERIFY_DELAY = "0.5"


def race(bases: list[str], cookie: str, state: str, uid: str) -> Counter[str]:
    """RACERS callbacks with the same cookie and state, released together, spread over ``bases``."""
    barrier = threading.Barrier(RACERS, timeout=30)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one(n: int) -> None:
        browser = requests.Session()
        browser.cookies.set("session", cookie, domain="127.0.0.1")
        barrier.wait()
        answer = finish(browser, bases[n % len(bases)], uid, state)
        outcome = "signed_in" if answer.status_code == 302 else f"{answer.status_code}"
        code = re.search(r">(state_[a-z]+)<", answer.text)
        if answer.status_code == 400 and code:
            outcome = code.group(1)
        with lock:
            outcomes[outcome] += 1

    threads = [threading.Thread(target=one, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def run_race(redis_url: str, sessions: str, registry: str | None) -> tuple[Counter[str], str, str]:
    env = {
        "TEST_SECRET_KEY": secrets.token_hex(32),
        "TEST_REDIS_URL": redis_url,
        "TEST_SESSIONS": sessions,
        "TEST_VERIFY_DELAY": VERIFY_DELAY,
        **({"TEST_STATE_REGISTRY": registry} if registry else {}),
    }
    with gunicorn(env) as a, gunicorn(env) as b:
        browser = requests.Session()
        state = start(browser, a.url)
        cookie = browser.cookies.get("session")
        outcomes = race([a.url, b.url], cookie, state, "racer")
        # Later, a thief who copied the cookie from before the callback replays it.
        thief = requests.Session()
        thief.cookies.set("session", cookie, domain="127.0.0.1")
        replay = finish(thief, b.url, "racer", state)
        late = "signed_in" if replay.status_code == 302 else replay.text
        signed_in_as = whoami(thief, a.url) or ""
    return outcomes, late, signed_in_as


def test_without_a_registry_concurrent_callbacks_race(
    redis_url: str, record_property: pytest.RecordProperty
) -> None:
    """The gap the registry closes: the session is read by every callback before any writes it."""
    outcomes, _, _ = run_race(redis_url, "redis", None)
    record_property("cases", RACERS)
    assert outcomes["signed_in"] > 1, outcomes


@pytest.mark.parametrize("sessions", ["redis", "cookie"])
def test_with_a_redis_registry_exactly_one_wins(
    redis_url: str, sessions: str, record_property: pytest.RecordProperty
) -> None:
    outcomes, late, signed_in_as = run_race(redis_url, sessions, "redis")
    record_property("cases", RACERS + 1)
    # The promise is exactly one sign-in, every other racer refused for its state. Which state
    # error a loser sees depends on when it reads the session: before the winner wrote it back
    # (the registry answers state_reused) or after (the state is gone from the session, or a
    # server-side session was renewed: state_mismatch). Both refuse; the mix is timing.
    assert outcomes["signed_in"] == 1, outcomes
    refused = {outcome: n for outcome, n in outcomes.items() if outcome != "signed_in"}
    assert set(refused) <= {"state_reused", "state_mismatch"}, outcomes
    assert sum(refused.values()) == RACERS - 1, outcomes
    assert "state_reused" in late or "state_mismatch" in late, late
    assert signed_in_as == ""


@pytest.mark.parametrize("registry", [MemoryStore, lambda: True], ids=["MemoryStore", "True"])
def test_a_memory_registry_refuses_a_replay_with_an_old_cookie(registry: Any) -> None:
    """One process, cookie sessions: the copied cookie still holds the state, the registry does not."""
    app = make_app(OmiBlueprint(), OMI_STATE_REGISTRY=registry())
    browser = app.test_client()
    state = start_login(browser)
    old_cookie = browser.get_cookie("session")
    assert old_cookie is not None
    assert browser.get(f"/omi/callback?uid=u1&state={state}").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", old_cookie.value)
    replay = thief.get(f"/omi/callback?uid=u1&state={state}")
    assert replay.status_code == 400 and ">state_reused<" in replay.get_data(as_text=True)
    assert thief.get("/dashboard").status_code == 302


def test_memory_registry_expires_claims_and_refuses_when_full() -> None:
    now = [0.0]
    registry = MemoryStore(max_entries=2, when_full="refuse", clock=lambda: now[0])
    assert registry.claim("a", 10) == "new" and registry.claim("a", 10) == "running"
    assert registry.claim("b", 10) == "new"
    with pytest.raises(RuntimeError):
        registry.claim("c", 10)  # full: never forget a live claim
    now[0] = 11.0
    assert registry.claim("a", 10) == "new" and len(registry) == 1


class BrokenRegistry:
    def claim(self, key: str, ttl: int) -> str:
        raise ConnectionError("redis is down")

    def finish(self, key: str, ttl: int) -> None:
        raise ConnectionError("redis is down")

    def abandon(self, key: str) -> None:
        raise ConnectionError("redis is down")


def test_a_failing_registry_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(OmiBlueprint(), OMI_STATE_REGISTRY=BrokenRegistry())
    client = app.test_client()
    state = start_login(client)
    response = client.get(f"/omi/callback?uid=u1&state={state}")
    assert response.status_code == 503
    assert ">state_check_unavailable<" in response.get_data(as_text=True)
    assert state not in caplog.text
    assert client.get("/dashboard").status_code == 302


def test_the_registry_stores_a_digest_with_the_states_lifetime(redis_url: str) -> None:
    import redis

    store = redis.from_url(redis_url)
    app = make_app(OmiBlueprint(), OMI_STATE_REGISTRY=store, OMI_STATE_MAX_AGE=120)
    client = app.test_client()
    state = start_login(client)
    assert client.get(f"/omi/callback?uid=u1&state={state}").status_code == 302
    keys = [key.decode() for key in store.scan_iter("omi:state:*")]
    assert not any(state in key for key in keys)
    digest = hashlib.sha256(state.encode()).hexdigest()
    assert 120 < store.ttl(f"omi:state:{digest}") <= 180


def test_an_unusable_registry_setting_fails_at_start_up() -> None:
    with pytest.raises(OmiConfigError, match="OMI_STATE_REGISTRY"):
        make_app(OmiBlueprint(), OMI_STATE_REGISTRY="127.0.0.1:6379")  # not a URL: no scheme
