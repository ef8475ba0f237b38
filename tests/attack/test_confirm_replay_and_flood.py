"""Confirmed sign-in under attack over real HTTP: every limit lives on the server, in the store.

A cookie session is a value the client can keep and send again, so a budget kept in it is no
budget. These attacks broke the first design (a guessing budget and "used once" kept in the
cookie): each is replayed here, in one process with the in-process store and across gunicorn
workers with Redis, cookie sessions and server-side ones.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import OmiBlueprint, OmiConfigError, omi_confirm_flooded
from flask_omi.testing import FakeOmi, LiveServer, connect_app

from ..conftest import APP_ID, make_app
from ..helpers import assert_refused, free_port
from .load import finish, start
from .servers import gunicorn
from .test_confirmed_signin import (
    SITE,
    callback,
    confirming_app,
    form_token,
    latest_code,
    signed_in_as,
    type_code,
)

GUESSES = 300
SIMULTANEOUS = 24
NOT_RIGHT = re.compile(r"That code is not right\. (\d) tries left")


def wrong_guesses(code: str, count: int) -> Iterator[str]:
    """``count`` codes that are not ``code``."""
    n = 0
    for guess in range(count + 1):  # bounded: at most one of them is skipped
        text = f"{guess:08d}"
        if text != code and n < count:
            n += 1
            yield text


# -- 1. the guessing budget, with the cookie replayed --------------------------------------------------
def test_300_wrong_guesses_with_a_replayed_cookie_then_the_right_code_is_refused(
    fake_omi: FakeOmi, record_property: pytest.RecordProperty
) -> None:
    """The attacker keeps the session cookie from just after the code was sent and posts every guess
    with it. At most 5 guesses are compared, and the right code is refused afterwards."""
    record_property("cases", GUESSES + 1)
    app = confirming_app(fake_omi)
    attacker = app.test_client()
    callback(attacker, "victim")
    token, kept = form_token(attacker), cookie(attacker)
    code = latest_code(fake_omi, "victim")
    compared: list[str] = []
    for guess in wrong_guesses(code, GUESSES):
        attacker.set_cookie("session", kept)
        answer = attacker.post("/omi/confirm", data={"code": guess, "form_token": token})
        assert answer.status_code == 400
        compared += NOT_RIGHT.findall(answer.get_data(as_text=True))
    assert compared == ["4", "3", "2", "1"]  # the fifth wrong code ended the code
    attacker.set_cookie("session", kept)
    assert_refused(type_code(attacker, code), 400, "code_tries_exhausted")
    assert signed_in_as(attacker) is None


def test_the_right_code_signs_in_once_even_with_the_cookie_copied_before(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    owner = app.test_client()
    callback(owner, "owner")
    kept, code = cookie(owner), latest_code(fake_omi, "owner")
    assert type_code(owner, code).status_code == 302 and signed_in_as(owner) == "owner"
    thief = app.test_client()
    thief.set_cookie("session", kept)
    assert_refused(type_code(thief, code), 400, "confirmation_missing")
    assert signed_in_as(thief) is None


def test_step_up_codes_are_bounded_in_the_store_too(fake_omi: FakeOmi) -> None:
    """Step-up had the same hole: a signed-in attacker asks for a code, keeps the cookie, guesses."""
    app = confirming_app(fake_omi, "step-up")
    attacker = app.test_client()
    assert callback(attacker, "victim").status_code == 302  # step-up: signed in on the uid at once
    attacker.get("/omi/confirm")
    sent = attacker.post("/omi/confirm", data={"send": "1", "form_token": form_token(attacker)})
    assert sent.status_code == 303
    token, kept = form_token(attacker), cookie(attacker)
    code = latest_code(fake_omi, "victim")
    compared: list[str] = []
    for guess in wrong_guesses(code, 30):
        attacker.set_cookie("session", kept)
        answer = attacker.post("/omi/confirm", data={"code": guess, "form_token": token})
        compared += NOT_RIGHT.findall(answer.get_data(as_text=True))
    assert compared == ["4", "3", "2", "1"]
    attacker.set_cookie("session", kept)
    assert_refused(type_code(attacker, code), 400, "code_tries_exhausted")
    assert attacker.post("/notes/delete").status_code == 302  # still not confirmed


def cookie(client: FlaskClient) -> str:
    kept = client.get_cookie("session")
    assert kept is not None
    return kept.value


# -- the same across gunicorn workers, with Redis ----------------------------------------------------
@pytest.fixture
def registered(fake_omi: FakeOmi) -> str:
    """The gunicorn app's OMI registration in the fake; returns its API key."""
    _, key = fake_omi.register_app("load-app", app_home_url="https://notes.example.com/omi/callback")
    for uid in ("victim", "owner"):
        fake_omi.enable_app(uid, "load-app")
    return key


def confirm_env(fake: FakeOmi, key: str, redis_url: str, sessions: str) -> dict[str, str]:
    return {
        "TEST_SECRET_KEY": secrets.token_hex(32),
        "TEST_REDIS_URL": redis_url,
        "TEST_SESSIONS": sessions,
        "TEST_STATE_REGISTRY": "redis",
        "TEST_CONFIRM": "1",
        "TEST_OMI_BASE": fake.url,
        "TEST_OMI_API_KEY": key,
    }


def pending_browser(base: str, uid: str) -> tuple[requests.Session, str]:
    """A browser whose sign-in as ``uid`` waits for its code; and the confirm form's token."""
    browser = requests.Session()
    sent = finish(browser, base, uid, start(browser, base))
    assert sent.status_code == 303, sent.text[:300]
    page = browser.get(f"{base}/omi/confirm", timeout=10).text
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    assert found
    return browser, found.group(1)


def post_code(base: str, session_cookie: str, token: str, code: str) -> requests.Response:
    """One POST of a code with exactly this session cookie (a copy, replayed)."""
    return requests.post(
        f"{base}/omi/confirm",
        data={"code": code, "form_token": token},
        headers={"Cookie": f"session={session_cookie}"},
        allow_redirects=False,
        timeout=30,
    )


def test_across_workers_replayed_cookie_guesses_are_counted_in_redis(
    fake_omi: FakeOmi, registered: str, redis_url: str, record_property: pytest.RecordProperty
) -> None:
    record_property("cases", GUESSES + 1)
    with gunicorn(confirm_env(fake_omi, registered, redis_url, "cookie"), workers=2) as server:
        browser, token = pending_browser(server.url, "victim")
        kept = browser.cookies["session"]
        code = latest_code(fake_omi, "victim")
        compared = [
            left
            for guess in wrong_guesses(code, GUESSES)
            for left in NOT_RIGHT.findall(post_code(server.url, kept, token, guess).text)
        ]
        assert compared == ["4", "3", "2", "1"]
        right = post_code(server.url, kept, token, code)
        assert_refused(right, 400, "code_tries_exhausted")


def test_24_simultaneous_guesses_with_server_side_sessions_compare_at_most_5(
    fake_omi: FakeOmi, registered: str, redis_url: str, record_property: pytest.RecordProperty
) -> None:
    """Flask-Session keeps the session in Redis, so 24 requests at once read the same session:
    a tries counter kept there let 11 to 20 of them be compared. In the store, at most 5 are."""
    record_property("cases", SIMULTANEOUS)
    # Threads as well as processes, so that the 24 requests really are handled at once.
    env = confirm_env(fake_omi, registered, redis_url, "redis")
    with gunicorn(env, workers=2, extra=("--threads", "12")) as server:
        browser, token = pending_browser(server.url, "victim")
        kept = browser.cookies["session"]
        code = latest_code(fake_omi, "victim")
        guesses = list(wrong_guesses(code, SIMULTANEOUS))
        barrier = threading.Barrier(SIMULTANEOUS, timeout=30)
        answers: list[requests.Response] = []
        lock = threading.Lock()

        def guess(text: str) -> None:
            barrier.wait()
            answer = post_code(server.url, kept, token, text)
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=guess, args=(text,)) for text in guesses]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == SIMULTANEOUS and all(a.status_code == 400 for a in answers)
        compared = [left for a in answers for left in NOT_RIGHT.findall(a.text)]
        # Each "N tries left" names its own comparison: no two requests compared as the same try.
        assert len(compared) <= 4 and len(set(compared)) == len(compared)
        # The others were refused uncompared: tries spent, or (once one of them ended the code in
        # the shared session) no sign-in waiting any more.
        refused = ("code_tries_exhausted", "confirmation_missing")
        assert sum(any(r in a.text for r in refused) for a in answers) >= SIMULTANEOUS - 4
        right = post_code(server.url, kept, token, code)
        assert right.status_code == 400 and any(r in right.text for r in refused)


# -- 2. flooding the owner's phone --------------------------------------------------------------------
@pytest.fixture
def chat_app(fake_omi: FakeOmi) -> Iterator[tuple[Flask, str]]:
    """An app with both channels, served on loopback and set up in the fake from its own URLs (as
    `flask omi check` prints them), so that the fake's chat calls the app's tool over HTTP."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(
        OmiBlueprint(),
        OMI_CONFIRM_SIGNIN=True,
        OMI_CONFIRM_CHANNELS=("notification", "chat"),
        OMI_EXTERNAL_URL=base,
        OMI_SIGNING_SECRET="whsec_" + secrets.token_hex(16),
        OMI_API_KEY="sk_" + secrets.token_hex(16),
    )

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        return {"uid": signed_in_uid()}

    with LiveServer(app, port) as server:
        connect_app(fake_omi, fake_omi.url, app, server.url)
        for uid in ("owner", "attacker"):
            fake_omi.enable_app(uid, APP_ID)
        yield app, base


def signed_in_uid() -> str | None:
    from flask import session

    from flask_omi.signin.user import UID_KEY

    uid = session.get(UID_KEY)
    return uid if isinstance(uid, str) else None


def chat_code(client: FlaskClient) -> str:
    page = client.get("/omi/confirm").get_data(as_text=True)
    found = re.search(r'id="omi-chat-code">([A-Z0-9]+)<', page)
    assert found, page[-1500:]
    return found.group(1)


def test_15_anonymous_sign_ins_send_at_most_5_codes_and_the_owner_signs_in_through_the_chat(
    fake_omi: FakeOmi, chat_app: tuple[Flask, str], record_property: pytest.RecordProperty
) -> None:
    record_property("cases", 16)
    app, _ = chat_app
    floods: list[str] = []
    omi_confirm_flooded.connect(lambda sender, limit, **_: floods.append(limit), app, weak=False)
    for _ in range(15):  # anyone who knows the uid
        assert callback(app.test_client(), "owner").status_code == 303
    assert len(fake_omi.notifications_for("owner")) == 5  # OMI_CONFIRM_SENDS_PER_UID
    assert floods.count("sends_per_uid") == 10
    owner = app.test_client()
    assert callback(owner, "owner").status_code == 303
    page = owner.get("/omi/confirm").get_data(as_text=True)
    assert 'id="omi-no-code-sent"' in page and 'id="omi-send-again-at"' in page
    assert len(fake_omi.notifications_for("owner")) == 5  # still: the quota is not spent further
    told = fake_omi.call_tool(APP_ID, "owner", "omi_confirm_sign_in", {"code": chat_code(owner)})
    assert told.status == 200 and "Confirmed" in told.text and "127.0.0.1" in told.text
    done = owner.post("/omi/confirm", data={"chat": "1", "form_token": form_token(owner)})
    assert done.status_code == 302 and owner.get("/api/me").get_json() == {"uid": "owner"}


def test_a_chat_code_confirms_only_the_uid_that_sends_it_and_only_once(
    fake_omi: FakeOmi, chat_app: tuple[Flask, str]
) -> None:
    app, _ = chat_app
    attacker = app.test_client()
    callback(attacker, "owner")  # the attacker's own page, for the owner's uid
    code = chat_code(attacker)
    # Sent in the attacker's own OMI chat: OMI signs the call with the attacker's uid.
    told = fake_omi.call_tool(APP_ID, "attacker", "omi_confirm_sign_in", {"code": code})
    assert told.status == 400 and "does not match" in told.text
    refused = attacker.post("/omi/confirm", data={"chat": "1", "form_token": form_token(attacker)})
    assert refused.status_code == 400 and "has not passed the code on yet" in refused.get_data(as_text=True)
    assert attacker.get("/api/me").get_json() == {"uid": None}
    # The owner's own code, once: a second chat call says it was used, a second browser gets nothing.
    owner = app.test_client()
    callback(owner, "owner")
    own = chat_code(owner)
    kept = cookie(owner)
    assert (
        "Confirmed" in fake_omi.call_tool(APP_ID, "owner", "omi_confirm_sign_in", {"code": own.lower()}).text
    )
    assert (
        "already confirmed" in fake_omi.call_tool(APP_ID, "owner", "omi_confirm_sign_in", {"code": own}).text
    )
    token = form_token(owner)
    assert owner.post("/omi/confirm", data={"chat": "1", "form_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", kept)
    assert_refused(
        thief.post("/omi/confirm", data={"chat": "1", "form_token": token}), 400, "confirmation_missing"
    )


def test_an_unsigned_chat_call_confirms_nothing(fake_omi: FakeOmi, chat_app: tuple[Flask, str]) -> None:
    app, base = chat_app
    owner = app.test_client()
    callback(owner, "owner")
    forged = requests.post(
        f"{base}/omi/tools/omi_confirm_sign_in",
        json={"code": chat_code(owner), "uid": "owner", "app_id": APP_ID, "tool_name": "omi_confirm_sign_in"},
        timeout=10,
    )
    assert forged.status_code == 401
    refused = owner.post("/omi/confirm", data={"chat": "1", "form_token": form_token(owner)})
    assert refused.status_code == 400


def test_codes_from_one_address_are_bounded(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi, OMI_CONFIRM_CODES_PER_ADDRESS=3)
    floods: list[str] = []
    omi_confirm_flooded.connect(lambda sender, limit, **_: floods.append(limit), app, weak=False)
    for uid in ("victim", "owner", "attacker"):
        assert callback(app.test_client(), uid).status_code == 303
    refused = callback(app.test_client(), "owner")
    assert_refused(refused, 429, "confirmation_rate_limited")
    assert int(refused.headers["Retry-After"]) > 0 and floods == ["codes_per_address"]
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "127.0.0.2"  # another client address
    assert callback(other, "owner").status_code == 303


def test_without_the_chat_channel_a_spent_quota_is_a_429_page_saying_when(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    for _ in range(5):
        callback(app.test_client(), "owner")
    refused = callback(app.test_client(), "owner")
    assert_refused(refused, 429, "confirmation_rate_limited")
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert len(fake_omi.notifications_for("owner")) == 5


# -- 3. the message names the site from configuration only ---------------------------------------------
def test_the_message_names_the_configured_site_never_the_requests_host(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    attacker = app.test_client()
    evil = "http://accounts-omi.evil.example"  # the Host header the attacker's requests carry
    state = attacker.get("/omi/login", base_url=evil).headers["Location"].split("state=")[1]
    sent = attacker.get(
        f"/omi/callback?uid=victim&state={state}",
        base_url=evil,
        headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Version/17.0 Safari/605.1.15"},
    )
    assert sent.status_code == 303
    message = fake_omi.notifications_for("victim")[-1]
    assert f"sign in to {SITE.split('//')[1]}" in message and "evil" not in message
    assert "the browser says it is Safari on iPhone" in message


def test_confirmation_refuses_to_start_without_the_external_url() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 40, OMI_APP_ID="01APP", OMI_API_KEY="sk_x", OMI_CONFIRM_SIGNIN=True)
    with pytest.raises(OmiConfigError, match="needs OMI_EXTERNAL_URL"):
        app.register_blueprint(OmiBlueprint())


def test_the_chat_channel_refuses_to_start_without_the_signing_secret() -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="k" * 40,
        OMI_APP_ID="01APP",
        OMI_API_KEY="sk_x",
        OMI_CONFIRM_SIGNIN=True,
        OMI_EXTERNAL_URL=SITE,
        OMI_CONFIRM_CHANNELS=("notification", "chat"),
    )
    with pytest.raises(OmiConfigError, match="set OMI_SIGNING_SECRET"):
        app.register_blueprint(OmiBlueprint())
