"""State and uid attacks: each refusal has its code, is a 400, leaves the session as it was, and
sends ``omi_login_failed``; nothing an attacker typed is reflected unescaped."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import OmiBlueprint, omi_login_failed
from flask_omi.signin.state import PENDING_KEY, RETIRED_KEY

from ..conftest import Clock, make_app, start_login


@pytest.fixture
def app() -> Flask:
    app = make_app(OmiBlueprint())
    app.extensions["omi"].signin.clock = Clock()
    return app


@pytest.fixture
def failures(app: Flask) -> Iterator[list[str]]:
    codes: list[str] = []

    def record(sender: Flask, error_code: str, **extra: Any) -> None:
        codes.append(error_code)

    omi_login_failed.connect(record, app)
    yield codes
    omi_login_failed.disconnect(record, app)


def snapshot(client: FlaskClient) -> dict[str, Any]:
    with client.session_transaction() as session:
        return dict(session)


def refused(
    client: FlaskClient, query: str, code: str, failures: list[str], *, consumed: bool = False
) -> None:
    """The callback is refused with ``code``, and the session is what it was before it.

    ``consumed``: the state matched a pending sign-in, which is then used up (single use) and so
    leaves the pending list; nothing else in the session changes.
    """
    before = snapshot(client)
    response = client.get(f"/omi/callback?{query}")
    after = snapshot(client)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f'<code id="omi-error-code">{code}</code>' in body
    assert failures[-1:] == [code]
    if consumed:
        assert len(after.get(PENDING_KEY, [])) == len(before[PENDING_KEY]) - 1
        before, after = (
            {k: v for k, v in d.items() if k not in (PENDING_KEY, RETIRED_KEY)} for d in (before, after)
        )
    assert after == before
    assert "_omi_uid" not in after or after["_omi_uid"] == before.get("_omi_uid")


def with_a_signed_in_user(client: FlaskClient) -> None:
    state = start_login(client)
    assert client.get(f"/omi/callback?uid=owner&state={state}").status_code == 302
    with client.session_transaction() as session:
        session["cart"] = ["kept"]


def tamper(state: str) -> str:
    """The same state with its last character changed (always changed: never the original)."""
    return state[:-1] + ("B" if state.endswith("A") else "A")


CASES: list[tuple[str, Callable[[FlaskClient, Flask], str], str, bool]] = [
    ("missing", lambda c, a: "uid=u1&state=", "state_missing", False),
    ("literal None", lambda c, a: "uid=u1&state=None", "state_missing", False),
    ("wrong", lambda c, a: "uid=u1&state=" + "x" * 43, "state_mismatch", False),
    (
        "another browser's",
        lambda c, a: "uid=u1&state=" + start_login(a.test_client()),
        "state_mismatch",
        False,
    ),
    ("tampered", lambda c, a: "uid=u1&state=" + tamper(start_login(c)), "state_mismatch", False),
    ("oversize", lambda c, a: "uid=u1&state=" + "A" * 100_000, "state_mismatch", False),
    ("non-ASCII", lambda c, a: "uid=u1&state=" + quote("é" * 43), "state_mismatch", False),
    (
        "HTML-escaped",
        lambda c, a: "uid=u1&state=" + start_login(c)[:10] + "&amp;b=c",
        "state_mismatch",
        False,
    ),
    (
        "repeated",
        lambda c, a: "uid=u1&state=" + (s := start_login(c)) + "&state=" + s,
        "state_mismatch",
        False,
    ),
]


@pytest.mark.parametrize(("name", "make_query", "code", "consumed"), CASES, ids=[c[0] for c in CASES])
def test_state_refusals(
    app: Flask,
    failures: list[str],
    name: str,
    make_query: Callable[[FlaskClient, Flask], str],
    code: str,
    consumed: bool,
) -> None:
    client = app.test_client()
    with_a_signed_in_user(client)
    start_login(client)
    query = make_query(client, app)
    refused(client, query, code, failures, consumed=consumed)
    assert client.get("/dashboard").get_data(as_text=True) == "hello owner"


def test_replayed(app: Flask, failures: list[str]) -> None:
    client = app.test_client()
    state = start_login(client)
    client.get(f"/omi/callback?uid=owner&state={state}")
    refused(client, f"uid=owner&state={state}", "state_reused", failures)


def test_expired_without_sleeping(app: Flask, failures: list[str]) -> None:
    client = app.test_client()
    with_a_signed_in_user(client)
    state = start_login(client)
    app.extensions["omi"].signin.clock.now += 601
    refused(client, f"uid=u1&state={state}", "state_expired", failures, consumed=True)


def test_expiry_keeps_sub_second_precision() -> None:
    """Issued at x.9 s and used 1.2 s later with a 2 s lifetime: valid. A whole-second issue time
    would have made it 2.1 s old."""
    app = make_app(OmiBlueprint(), OMI_STATE_MAX_AGE=2)
    clock = app.extensions["omi"].signin.clock = Clock(1_800_000_000.9)
    client = app.test_client()
    state = start_login(client)
    clock.now += 1.2
    assert client.get(f"/omi/callback?uid=u1&state={state}").status_code == 302
    late = start_login(client)
    clock.now += 2.001
    expired = client.get(f"/omi/callback?uid=u1&state={late}")
    assert expired.status_code == 400 and ">state_expired<" in expired.get_data(as_text=True)


def test_a_uid_with_dots_inside_still_signs_in(app: Flask) -> None:
    client = app.test_client()
    assert client.get(f"/omi/callback?uid=a.b&state={start_login(client)}").status_code == 302


def test_beyond_the_pending_cap(app: Flask, failures: list[str]) -> None:
    client = app.test_client()
    with_a_signed_in_user(client)
    first = start_login(client)
    for _ in range(5):
        start_login(client)
    refused(client, f"uid=u1&state={first}", "state_superseded", failures)


UIDS = [
    ("empty", "", "uid_missing"),
    ("too long", "a" * 129, "uid_invalid"),
    ("control", "a%01b", "uid_invalid"),
    ("CR/LF header injection", "a%0d%0aSet-Cookie:%20pwned=1", "uid_invalid"),
    ("LF only", "a%0aLocation:%20//evil.com", "uid_invalid"),
    ("unicode", quote("üser"), "uid_invalid"),
    ("homoglyph", quote("\u0430dmin"), "uid_invalid"),  # Cyrillic a
    ("HTML", quote("<img src=x onerror=alert(1)>"), "uid_invalid"),
    ("script", quote('"><script>alert(1)</script>'), "uid_invalid"),
    ("SQL", quote("1' OR '1'='1"), "uid_invalid"),
    ("SQL comment", quote("admin'--"), "uid_invalid"),
    ("path", quote("../../etc/passwd"), "uid_invalid"),
    ("dot", ".", "uid_invalid"),
    ("dot dot", "..", "uid_invalid"),
    ("three dots", "...", "uid_invalid"),
    ("encoded dot dot", "%2E%2E", "uid_invalid"),
    ("space", "a%20b", "uid_invalid"),
    ("NUL", "a%00", "uid_invalid"),
    ("repeated", "u1&uid=u2", "uid_invalid"),
]


@pytest.mark.parametrize(("name", "uid", "code"), UIDS, ids=[u[0] for u in UIDS])
def test_uid_refusals(app: Flask, failures: list[str], name: str, uid: str, code: str) -> None:
    client = app.test_client()
    with_a_signed_in_user(client)
    state = start_login(client)
    before = snapshot(client)
    response = client.get(f"/omi/callback?uid={uid}&state={state}")
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f'<code id="omi-error-code">{code}</code>' in body
    assert failures == [code]
    after = snapshot(client)
    assert after["_omi_uid"] == before["_omi_uid"] == "owner" and after["cart"] == ["kept"]
    from urllib.parse import unquote

    raw = unquote(uid)
    if raw and raw not in ("a" * 129,):
        assert raw not in body or html.escape(raw) == raw  # never reflected unescaped
    for name_, value in response.headers:
        assert "pwned" not in value and "evil.com" not in value and "\n" not in value, name_
    assert [c.split("=", 1)[0] for c in response.headers.getlist("Set-Cookie")] in ([], ["session"])
