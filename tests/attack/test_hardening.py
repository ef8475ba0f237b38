"""Hardening found by an outside review, each as the attack it tried: remember-me surviving sign-out and
user switching, a full state registry locking everyone out, a second blueprint silently taking
over, signatures over bytes the view reads differently, host-built links and missing headers."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import LoginManager, UserMixin, current_user, login_user

from flask_omi import (
    OmiBlueprint,
    OmiConfigError,
    OmiTools,
    OmiWebhooks,
    current_omi_user,
)
from flask_omi.contrib.flask_login import FlaskLoginBridge
from flask_omi.inbound.request_signing import signed_headers
from flask_omi.keystore import MemoryStore

from ..conftest import make_app, start_login
from ..helpers import assert_refused, sign_in


class User(UserMixin):
    def __init__(self, uid: str) -> None:
        self.id = uid


def bridged(remember: bool) -> Flask:
    """The documented Flask-Login bridge, and a password sign-in of the app's own."""
    app = make_app(OmiBlueprint())
    login_manager = LoginManager(app)
    login_manager.user_loader(User)
    FlaskLoginBridge(load_user=User, remember=remember).init_app(app)

    @app.post("/password-login")
    def password_login() -> str:
        login_user(User("bob"), remember=True)
        return "in"

    @app.get("/who")
    def who() -> dict[str, Any]:
        return {
            "omi": current_omi_user.uid,
            "flask_login": current_user.get_id() if current_user.is_authenticated else None,
        }

    return app


def restart_browser(client: FlaskClient) -> None:
    """Closing the browser drops the session cookie; the remember-me cookie stays."""
    client.delete_cookie("session")


def test_sign_out_after_a_remember_me_restore_signs_out_for_good(
    record_property: pytest.RecordProperty,
) -> None:
    """Medium 1: after a restart Flask-Login restores the user but the session holds no OMI uid;
    POST /omi/logout must still sign out, remember-me cookie included (a shared computer)."""
    record_property("cases", 1)
    client = bridged(remember=True).test_client()
    sign_in(client, "alice")
    restart_browser(client)
    assert client.get("/who").get_json() == {"omi": None, "flask_login": "alice"}  # restored
    assert client.post("/omi/logout").status_code == 302
    assert client.get_cookie("remember_token") is None
    restart_browser(client)
    assert client.get("/who").get_json() == {"omi": None, "flask_login": None}


@pytest.mark.parametrize(("remember", "after_restart"), [(False, None), (True, "alice")])
def test_an_omi_sign_in_clears_the_previous_users_remember_me(
    remember: bool, after_restart: str | None, record_property: pytest.RecordProperty
) -> None:
    """Low 8: Bob signs in with a password and "remember me"; Alice signs in with OMI in the same
    browser. After a restart the browser must not be Bob again."""
    record_property("cases", 1)
    client = bridged(remember=remember).test_client()
    client.post("/password-login")
    assert client.get_cookie("remember_token") is not None
    sign_in(client, "alice")
    restart_browser(client)
    assert client.get("/who").get_json()["flask_login"] == after_restart


def test_a_full_memory_registry_never_locks_everyone_out(
    caplog: pytest.LogCaptureFixture, record_property: pytest.RecordProperty
) -> None:
    """Low 6: anyone could fill an in-process registry and every sign-in answered 503 with a traceback.
    Now only well-formed callbacks claim, a full registry falls back to the session's own
    single-use check, and each refusal is one log line."""
    record_property("cases", 3)
    registry = MemoryStore(max_entries=2, when_full="refuse")
    app = make_app(OmiBlueprint(), OMI_STATE_REGISTRY=registry)
    attacker = app.test_client()
    for _ in range(5):  # callbacks without a uid claim nothing
        attacker.get(f"/omi/callback?state={start_login(attacker)}")
    assert len(registry) == 0
    for n in range(2):  # two honest sign-ins fill it
        sign_in(app.test_client(), f"u{n}")
    assert len(registry) == 2
    honest = app.test_client()
    with caplog.at_level(logging.INFO, logger="flask_omi"):
        state = start_login(honest)
        assert honest.get(f"/omi/callback?uid=carol&state={state}").status_code == 302
        assert honest.get("/dashboard").get_data(as_text=True) == "hello carol"
        replay = honest.get(f"/omi/callback?uid=carol&state={state}")  # the session still refuses it
        assert replay.status_code == 400 and ">state_reused<" in replay.get_data(as_text=True)
    assert "OMI_STATE_REGISTRY is full" in caplog.text and "Traceback" not in caplog.text


def test_a_failing_registry_is_logged_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def claim(self, key: str, ttl: int) -> str:
            raise ConnectionError("redis is down")

        def finish(self, key: str, ttl: int) -> None:  # pragma: no cover - never reached
            raise ConnectionError("redis is down")

        def abandon(self, key: str) -> None:  # pragma: no cover - never reached
            raise ConnectionError("redis is down")

    client = make_app(OmiBlueprint(), OMI_STATE_REGISTRY=Down()).test_client()
    with caplog.at_level(logging.INFO, logger="flask_omi"):
        answer = client.get(f"/omi/callback?uid=u1&state={start_login(client)}")
    assert answer.status_code == 503 and "state_check_unavailable" in answer.get_data(as_text=True)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None and "ConnectionError" in errors[0].getMessage()


def _omi() -> OmiBlueprint:
    return OmiBlueprint()


@pytest.mark.parametrize(
    ("first", "second", "kind"),
    [
        (_omi, lambda: OmiBlueprint(name="admin_omi", url_prefix="/admin/omi"), "OmiBlueprint"),
        (OmiTools, lambda: OmiTools(name="admin_tools", manifest_path="/admin/tools.json"), "OmiTools"),
        (OmiWebhooks, lambda: OmiWebhooks(name="more_hooks", url_prefix="/more"), "OmiWebhooks"),
    ],
)
def test_a_second_blueprint_of_a_kind_is_refused(
    first: Any, second: Any, kind: str, record_property: pytest.RecordProperty
) -> None:
    """Low 7: a second OmiBlueprint's verifier was silently ignored and a public manifest pointed at
    an admin tool: the second registration is refused instead."""
    record_property("cases", 1)
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 40, OMI_APP_ID="01APP")
    app.register_blueprint(first())
    with pytest.raises(OmiConfigError, match=f"already has an {kind}"):
        app.register_blueprint(second())


SECRET = "whsec_review_three"


def tool_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "k" * 40, "OMI_APP_ID": "01APP", "OMI_SIGNING_SECRET": SECRET, **config})
    omi = OmiBlueprint()
    omi.user_loader(lambda uid: None)
    app.register_blueprint(omi)
    tools = OmiTools()

    @tools.tool(method="GET")
    def lookup(q: str) -> str:
        """Look up."""
        return f"looked up {q!r}"

    @tools.tool(requires_sign_in=True)
    def private(uid: str) -> str:
        """Private."""
        return uid

    app.register_blueprint(tools)
    return app


def signed_get(client: FlaskClient, sent: str, signed: str) -> Any:
    headers = signed_headers(SECRET, method="GET", path="/omi/tools/lookup", query=signed, body=b"")
    return client.get(f"/omi/tools/lookup?{sent}", headers=headers)


@pytest.mark.parametrize("raw", ["q=%FF", "q=a%80b", "q=%C3"])
def test_a_query_that_is_not_utf8_is_refused_before_the_signature(
    raw: str, record_property: pytest.RecordProperty
) -> None:
    """Low 11: a call signed for q=%EF%BF%BD was accepted with q=%FF: Python's parse_qsl replaces
    undecodable bytes, Werkzeug keeps them, so what was signed was not what the view read."""
    record_property("cases", 1)
    client = tool_app().test_client()
    rest = "&uid=u1&app_id=01APP"
    # The signature captured for the same query with U+FFFD where the bad bytes are.
    signed = urlencode(parse_qsl(raw + rest, keep_blank_values=True))
    assert "%EF%BF%BD" in signed
    assert_refused(signed_get(client, raw + rest, signed), 400, "UTF-8")
    honest = signed_get(client, "q=%C3%A9" + rest, "q=%C3%A9" + rest)
    assert honest.get_json() == {"result": "looked up 'é'"}


def test_the_sign_in_link_in_a_tool_answer_ignores_the_host_header(
    record_property: pytest.RecordProperty,
) -> None:
    """Low 12: the requires_sign_in message was built from the Host header an attacker sends."""
    record_property("cases", 1)
    app = tool_app(OMI_SIGNING_SECRET=None, OMI_EXTERNAL_URL="https://app.example.com")
    answer = app.test_client().post("/omi/tools/private", json={"uid": "u1"}, base_url="https://evil.example")
    assert "https://app.example.com/omi/login" in answer.get_json()["error"]
    assert "evil.example" not in json.dumps(answer.get_json())
    manifest = (
        app.test_client().get("/.well-known/omi-tools.json", base_url="https://evil.example").get_json()
    )
    assert {tool["endpoint"] for tool in manifest["tools"]} == {
        "https://app.example.com/omi/tools/lookup",
        "https://app.example.com/omi/tools/private",
    }


def test_library_pages_are_not_sniffed_and_the_login_redirect_is_not_cached(
    record_property: pytest.RecordProperty,
) -> None:
    """Low 12: the decorator's redirect lacked Cache-Control: no-store; pages lacked nosniff."""
    record_property("cases", 3)
    client = make_app(OmiBlueprint()).test_client()
    redirect = client.get("/dashboard", headers={"Accept": "text/html"})
    assert redirect.status_code == 302 and "no-store" in redirect.headers["Cache-Control"]
    error_page = client.get("/omi/callback?uid=u1&state=forged")
    continue_page = client.get("/omi/callback?uid=u1")
    for page in (error_page, continue_page, redirect):
        assert page.headers["X-Content-Type-Options"] == "nosniff"


# -- several worker processes ------------------------------------------------------------------------
def test_a_per_process_store_under_several_workers_is_an_error_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Medium 2: the defaults are per process; under a multi-process server that is said, once."""
    app = tool_app(OMI_SIGNING_SECRET=SECRET)
    client = app.test_client()
    body = json.dumps({"uid": "u1", "app_id": "01APP"}).encode()
    with caplog.at_level(logging.INFO, logger="flask_omi.tools"):
        for _ in range(3):
            headers = signed_headers(SECRET, method="POST", path="/omi/tools/private", query="", body=body)
            client.post("/omi/tools/private", data=body, headers=headers, multiprocess=True)
    said = [
        r for r in caplog.records if "OMI_TOOLS_REPLAY_STORE is kept in each worker process" in r.getMessage()
    ]
    assert len(said) == 1 and said[0].levelno == logging.ERROR


@pytest.mark.parametrize(("replay_store", "runs"), [("memory", 0), ("redis", 1)])
def test_one_signed_call_sent_16_times_to_four_workers(
    redis_url: str, replay_store: str, runs: int, record_property: pytest.RecordProperty
) -> None:
    """Medium 2: with a per-process store each worker accepted the replay once (the review saw 4
    runs). Now a per-process store under gunicorn -w 4 refuses every call, loudly (500
    store_not_shared, naming OMI_STORE); with the shared Redis store the call runs exactly once
    and every copy is refused (409)."""
    record_property("cases", 16)
    import redis

    from .servers import gunicorn

    secret = "whsec_" + "w" * 20
    env = {"TEST_SECRET_KEY": "s" * 40, "TEST_REDIS_URL": redis_url, "TEST_TOOLS": replay_store,
           "TEST_SIGNING_SECRET": secret, "TEST_SESSIONS": "cookie"}  # fmt: skip
    counter = redis.from_url(redis_url)
    counter.delete("tool-runs")
    body = json.dumps({"uid": "u1", "app_id": "load-app", "tool_name": "count"}).encode()
    headers = signed_headers(secret, method="POST", path="/omi/tools/count", query="", body=body)
    with gunicorn(env, workers=4) as server:
        import requests

        answers = [
            requests.post(f"{server.url}/omi/tools/count", data=body, headers=headers, timeout=10)
            for _ in range(16)
        ]
    ran = int(counter.get("tool-runs") or 0)
    assert ran == runs
    if runs == 1:
        assert sorted(a.status_code for a in answers) == [200] + [409] * 15
    else:
        assert {a.status_code for a in answers} == {500}
        assert all(a.json()["error"] == "store_not_shared" and "OMI_STORE" in a.text for a in answers)


# -- de-duplication keys and replayed signatures -------------------------------------------------------
def webhook_app(**config: Any) -> tuple[Flask, list[Any]]:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "k" * 40, "OMI_SIGNING_SECRET": SECRET, **config})
    ran: list[Any] = []
    hooks = OmiWebhooks()

    @hooks.on_conversation_created
    def handle(event: Any) -> None:
        ran.append((event.id, event.idempotency_key))
        if event.id == "fails-once" and len(ran) == 1:
            raise RuntimeError("a passing failure")

    app.register_blueprint(hooks)
    return app, ran


def post_delivery(client: FlaskClient, body: bytes, key: str, signature: str | None = None) -> Any:
    from flask_omi.inbound.signing import signature_header

    headers = {
        "X-Omi-Signature": signature or signature_header(SECRET, "u1", body),
        "X-Omi-Idempotency-Key": key,
    }
    return client.post("/omi/webhooks/conversation?uid=u1", data=body, headers=headers)


def test_a_captured_delivery_cannot_claim_the_next_deliverys_key(
    record_property: pytest.RecordProperty,
) -> None:
    """Low 4: OMI's keys are predictable (conversation:{id}:finalization:{revision}); a captured
    delivery re-posted under the next revision's key made the genuine one answer 200 unrun."""
    record_property("cases", 2)
    from flask_omi.inbound.signing import signature_header

    app, ran = webhook_app()
    client = app.test_client()
    first = json.dumps({"id": "c1", "structured": {"title": "v1"}}).encode()
    captured = signature_header(SECRET, "u1", first)
    assert post_delivery(client, first, "conversation:c1:finalization:1", captured).status_code == 200
    replayed = post_delivery(client, first, "conversation:c1:finalization:2", captured)
    assert_refused(replayed, 409, "replayed")
    genuine = json.dumps({"id": "c1", "structured": {"title": "v2"}}).encode()
    assert post_delivery(client, genuine, "conversation:c1:finalization:2").status_code == 200
    assert ran == [("c1", "conversation:c1:finalization:1"), ("c1", "conversation:c1:finalization:2")]


def test_omis_retry_after_a_failure_runs_again_even_within_the_same_second() -> None:
    from flask_omi.inbound.signing import signature_header

    app, ran = webhook_app()
    client = app.test_client()
    body = json.dumps({"id": "fails-once"}).encode()
    signature = signature_header(SECRET, "u1", body)
    assert post_delivery(client, body, "k1", signature).status_code == 500
    assert post_delivery(client, body, "k1", signature).status_code == 200
    assert post_delivery(client, body, "k1", signature).get_json() == {}  # handled: not run again
    assert len(ran) == 2


def test_a_redis_clients_own_retry_of_a_claim_is_not_a_replay(redis_url: str) -> None:
    """Medium 3: redis-py retried a timed-out SET NX whose first attempt had written the key; the
    honest sign-in or delivery was then refused as its own replay."""
    import redis

    from flask_omi.stores import RedisStore

    class RetryingClient:
        """A client whose SET reaches the server, times out on the way back, and is sent again."""

        def __init__(self) -> None:
            self.real = redis.from_url(redis_url)

        def set(self, *args: Any, **kwargs: Any) -> Any:
            self.real.set(*args, **kwargs)
            return self.real.set(*args, **kwargs)  # the retry: NX fails, the key holds our value

        def get(self, name: str) -> Any:
            return self.real.get(name)

        def delete(self, name: str) -> Any:
            return self.real.delete(name)

    store = RedisStore(RetryingClient(), prefix="retry-test:")
    assert store.claim("k", 60) == "new"
    assert RedisStore(redis.from_url(redis_url), prefix="retry-test:").claim("k", 60) == "running"


def test_the_example_in_real_mode_offers_no_unsigned_tool(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Low 9: without a signing secret the example's search_notes answered an anonymous POST with
    another user's note."""
    from example_app import create_app

    with caplog.at_level(logging.WARNING):
        app = create_app({"OMI_APP_ID": "real-app", "EXAMPLE_DB": str(tmp_path / "real.db")})
    app.extensions["example_setups"].complete("alice", "Alice")
    client = app.test_client()
    assert client.get("/.well-known/omi-tools.json").status_code == 404
    assert client.post("/omi/tools/search_notes", json={"uid": "alice", "query": "tea"}).status_code == 404
    assert "chat tools are off" in caplog.text


# -- development servers ----------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["rebind.attacker.example", "127.0.0.1.nip.io", "evil.localhost.example"])
def test_the_fake_and_the_demo_answer_only_loopback_hosts(host: str, tmp_path: Any) -> None:
    """Low 10: the fake OMI and the demo answered any Host: a page using DNS rebinding could drive
    them. A loopback name still works."""
    import requests

    from example_app.__main__ import demo_app
    from flask_omi.testing import FakeOmi

    with FakeOmi() as fake:
        refused = requests.get(f"{fake.url}/_fake/health", headers={"Host": host}, timeout=5)
        assert_refused(refused, 400, "answers only 127.0.0.1 and localhost")
        for name in ("127.0.0.1", "localhost", "LOCALHOST"):
            port = fake.url.rsplit(":", 1)[1]
            assert requests.get(f"{fake.url}/_fake/health", headers={"Host": f"{name}:{port}"}, timeout=5).ok
    app, demo_fake = demo_app(port=5000, fake_port=0, db_path=str(tmp_path / "demo.db"))
    try:
        assert_refused(app.test_client().get("/", headers={"Host": host}), 400, "answers only")
        assert app.test_client().get("/", base_url="http://127.0.0.1:5000").status_code in (200, 302)
    finally:
        demo_fake.stop()


def test_the_fakes_chat_form_needs_the_token_of_its_own_page(fake_omi: Any) -> None:
    """Low 10: a web page could POST to the fake's /_fake/chat and make it call a tool, signed, as
    fake-user-1."""
    import re as regex

    import requests

    from flask_omi.testing import LiveServer

    app = tool_app()
    with LiveServer(app) as server:
        fake_omi.register_app(
            "01APP",
            app_home_url=f"{server.url}/omi/callback",
            chat_tools_manifest_url=f"{server.url}/.well-known/omi-tools.json",
            signing_secret=SECRET,
        )
        form = {"app_id": "01APP", "uid": "fake-user-1", "tool": "lookup", "arg-q": "secrets"}
        forged = requests.post(f"{fake_omi.url}/_fake/chat", data=form, timeout=5)
        assert_refused(forged, 403, "not from the fake OMI's chat page")
        assert fake_omi.tool_calls == []
        page = requests.get(f"{fake_omi.url}/_fake/chat", params={"app_id": "01APP"}, timeout=5).text
        token = regex.search(r'name="page_token" value="([^"]+)"', page)
        assert token
        sent = requests.post(
            f"{fake_omi.url}/_fake/chat", data={**form, "page_token": token.group(1)}, timeout=5
        )
        assert sent.ok and [call.text for call in fake_omi.tool_calls] == ["looked up 'secrets'"]
        again = requests.post(
            f"{fake_omi.url}/_fake/chat", data={**form, "page_token": token.group(1)}, timeout=5
        )
        assert again.status_code == 403  # single use


@pytest.mark.parametrize(
    "respell",
    [
        lambda header: header.upper().replace("T=", "t=").replace("V1=", "v1="),  # upper-case hex
        lambda header: header + ",x=1",  # a parameter nobody reads
        lambda header: header + ",v1=" + "0" * 64,  # a second, wrong signature beside the right one
        lambda header: " " + header.replace(",", " , "),  # spaces
    ],
)
def test_a_respelled_signature_is_still_the_same_signature(respell: Any) -> None:
    """A replay of a captured delivery with its signature header written another way (case, extra
    parameters, spaces) is the same signature, and refused as a replay."""
    from flask_omi.inbound.signing import signature_header

    app, ran = webhook_app()
    client = app.test_client()
    body = json.dumps({"id": "c7"}).encode()
    captured = signature_header(SECRET, "u1", body)
    assert post_delivery(client, body, "k7", captured).status_code == 200
    assert_refused(post_delivery(client, body, "k8", respell(captured)), 409, "replayed")
    assert len(ran) == 1
