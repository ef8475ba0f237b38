"""The framework-neutral core: state records and input validation, without Flask."""

from __future__ import annotations

import pytest

from flask_omi.errors import StateExpired, StateMismatch, StateMissing, StateReused, StateSuperseded
from flask_omi.signin.state import PENDING_KEY, PendingSignIns, carried_over, new_state
from flask_omi.validation import is_valid_uid, safe_next_path


def pending(store: dict[str, object], now: float = 1000.0, max_pending: int = 5) -> PendingSignIns:
    return PendingSignIns(store, max_pending=max_pending, max_age=600, now=now)


def test_new_state_is_random_and_url_safe() -> None:
    states = {new_state() for _ in range(200)}
    assert len(states) == 200
    assert all(len(s) == 43 and s.replace("-", "").replace("_", "").isalnum() for s in states)


def test_round_trip_and_single_use() -> None:
    store: dict[str, object] = {}
    state = pending(store).begin("/next")
    assert pending(store).complete(state) == "/next"
    with pytest.raises(StateReused):
        pending(store).complete(state)


def test_expiry_boundary() -> None:
    store: dict[str, object] = {}
    a, b = pending(store).begin(None), pending(store).begin(None)
    assert pending(store, now=1600).complete(a) is None
    with pytest.raises(StateExpired):
        pending(store, now=1601).complete(b)
    assert PENDING_KEY not in store  # an empty list is not kept in the cookie


def test_superseded_and_unknown() -> None:
    store: dict[str, object] = {}
    states = [pending(store, max_pending=2).begin(None) for _ in range(3)]
    with pytest.raises(StateSuperseded):
        pending(store).complete(states[0])
    with pytest.raises(StateMismatch):
        pending(store).complete(new_state())
    with pytest.raises(StateMissing):
        pending(store).complete(None)


def test_corrupt_records_are_ignored() -> None:
    store: dict[str, object] = {PENDING_KEY: "junk", "_omi_retired": "junk"}
    state = pending(store).begin(None)
    store[PENDING_KEY] = [*store[PENDING_KEY], ["x"], "y"]  # type: ignore[misc]
    assert pending(store).complete(state) is None
    assert carried_over(store).keys() == {"_omi_retired"}  # no pending left: the key is gone
    with pytest.raises(StateMismatch):
        pending(store).complete(new_state())


@pytest.mark.parametrize("uid", ["a", "Zx9_-.~", "a" * 128, "vF3b8uXq1ZP0Yd2lT7wKcR9sHj42"])
def test_valid_uids(uid: str) -> None:
    assert is_valid_uid(uid)


@pytest.mark.parametrize("uid", ["", "a" * 129, "a b", "a/b", "a&b", "ü", "a\nb", None, 5])
def test_invalid_uids(uid: object) -> None:
    assert not is_valid_uid(uid)


@pytest.mark.parametrize("target", ["/", "/a", "/a/b?c=d&e=%2F", "/a//b", "/~x"])
def test_safe_next(target: str) -> None:
    assert safe_next_path(target) == target


@pytest.mark.parametrize(
    "target",
    ["", "a", "//evil.com", "/\\evil.com", "/a\\b", "https://evil.com", "/\tx", "/ x", "/\u2215x", None],
)
def test_unsafe_next(target: object) -> None:
    assert safe_next_path(target) is None
