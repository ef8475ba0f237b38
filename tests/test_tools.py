"""Chat tools: declared from typed functions, called by the fake OMI as OMI's assistant calls them
(``backend/utils/retrieval/tools/app_tools.py``), signed with ``v2``
(``backend/utils/webhook_signing.py``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pytest
import requests
from flask import Flask
from flask_wtf.csrf import CSRFProtect

from flask_omi import OmiBlueprint, OmiConfigError, OmiTools, ToolError
from flask_omi.inbound.request_signing import signed_headers
from flask_omi.inbound.tool_spec import describe
from flask_omi.testing import FakeOmi, LiveApp

from .conftest import cli_streams
from .helpers import assert_refused

SECRET = "whsec_tools_secret"
APP_ID = "tools-app"


def build(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="7f3e9a1c5b2d8e4f6a0c3b7d9e1f5a2c", OMI_APP_ID=APP_ID, OMI_SIGNING_SECRET=SECRET
    )
    app.config.update(config)
    omi = OmiBlueprint()

    @omi.user_loader
    def load(uid: str) -> dict[str, str] | None:
        return {"name": uid.title()} if uid != "stranger" else None

    app.register_blueprint(omi)
    tools = OmiTools(chat_messages={"enabled": True, "target": "app", "notify": False})

    @tools.tool(status_message="Searching your notes...")
    def search_notes(
        uid: str, query: Annotated[str, "Words to look for"], limit: Annotated[int, "At most this many"] = 3
    ) -> str:
        """Search the notes this person
        keeps in the app."""
        return f"{uid}: {limit} notes about {query}"

    @tools.tool(method="GET", requires_sign_in=True)
    def count_tags(user: dict[str, str], kind: Literal["work", "home"], tags: list[str] | None = None) -> str:
        """Count tags of one kind."""
        if kind == "home":
            raise ToolError("Home tags are private. Ask about work tags.")
        return f"{user['name']} has {len(tags or [])} {kind} tags"

    @tools.tool
    async def average(values: list[float], precise: bool = False) -> float:
        """Average some numbers."""
        total = sum(values) / len(values)
        return total if precise else round(total, 1)

    @tools.tool
    def broken(geolocation: dict[str, Any] | None) -> str:
        """A tool whose code fails."""
        raise RuntimeError("database password is hunter2")

    app.register_blueprint(tools)
    return app


@pytest.fixture
def app() -> Flask:
    return build()


@pytest.fixture
def live(omi_live_app: LiveApp, fake_omi: FakeOmi) -> Iterator[LiveApp]:
    fake_omi.enable_app("u1", APP_ID)
    yield omi_live_app


def text(fake: FakeOmi, tool: str, arguments: dict[str, Any], uid: str = "u1") -> str:
    return fake.call_tool(APP_ID, uid, tool, arguments).text


# -- the manifest --------------------------------------------------------------------------------
def test_the_manifest_is_generated_from_the_functions(live: LiveApp) -> None:
    manifest = requests.get(f"{live.url}/.well-known/omi-tools.json", timeout=5).json()
    by_name = {tool["name"]: tool for tool in manifest["tools"]}
    assert by_name["search_notes"] == {
        "name": "search_notes",
        "description": "Search the notes this person keeps in the app.",
        "endpoint": f"{live.url}/omi/tools/search_notes",
        "method": "POST",
        "parameters": {
            "properties": {
                "query": {"type": "string", "description": "Words to look for"},
                "limit": {"type": "integer", "description": "At most this many"},
            },
            "required": ["query"],
        },
        "auth_required": False,
        "status_message": "Searching your notes...",
    }
    assert by_name["count_tags"]["parameters"] == {
        "properties": {
            "kind": {"type": "string", "enum": ["work", "home"], "description": "One of: work, home."},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "A list of texts."},
        },
        "required": ["kind"],
    }
    assert by_name["count_tags"]["auth_required"] is True and by_name["count_tags"]["method"] == "GET"
    assert by_name["average"]["parameters"]["properties"]["values"] == {
        "type": "array",
        "items": {"type": "number"},
        "description": "A list of numbers.",
    }
    assert by_name["broken"]["parameters"] == {"properties": {}, "required": []}  # geolocation is filled in
    assert manifest["chat_messages"] == {"enabled": True, "target": "app", "notify": False}


def test_the_fake_resolves_relative_endpoints_against_the_app_home_url(
    live: LiveApp, fake_omi: FakeOmi
) -> None:
    tools = fake_omi.fetch_tools(APP_ID)
    assert {t["endpoint"] for t in tools} >= {f"{live.url}/omi/tools/search_notes"}


# -- calls, as OMI's assistant makes them ------------------------------------------------------------
def test_signed_calls_reach_the_functions(live: LiveApp, fake_omi: FakeOmi) -> None:
    assert text(fake_omi, "search_notes", {"query": "tea"}) == "u1: 3 notes about tea"
    assert text(fake_omi, "search_notes", {"query": "tea", "limit": 7}) == "u1: 7 notes about tea"
    assert (
        text(fake_omi, "count_tags", {"kind": "work", "tags": ["a", "b"]}) == "U1 has 2 work tags"
    )  # GET, query
    assert text(fake_omi, "average", {"values": [1, 2, 4]}) == "2.3"  # async
    assert [c.status for c in fake_omi.tool_calls] == [200, 200, 200, 200]


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search_notes", {}, "search_notes needs the argument 'query'."),
        ("search_notes", {"query": 5}, "'query' must be text."),
        ("search_notes", {"query": "x", "limit": "many"}, "'limit' must be a whole number."),
        ("search_notes", {"query": "x", "limit": True}, "'limit' must be a whole number."),
        ("search_notes", {"query": "x", "color": "red"}, "search_notes takes no argument named 'color'."),
        ("count_tags", {"kind": "garden"}, "'kind' must be one of work, home."),
        ("count_tags", {"kind": "home"}, "Home tags are private. Ask about work tags."),
        ("average", {"values": "1,2"}, "'values' must be a list."),
        ("average", {"values": [1, "x"]}, "'values' must be a number."),
    ],
)
def test_bad_calls_are_400_with_a_clear_error(
    live: LiveApp, fake_omi: FakeOmi, tool: str, arguments: dict[str, Any], message: str
) -> None:
    call = fake_omi.call_tool(APP_ID, "u1", tool, arguments)
    assert call.status == 400
    assert call.text == f"Error calling {tool}: HTTP 400 - {message}"


def test_a_failing_tool_is_a_generic_500_and_logged(
    live: LiveApp, fake_omi: FakeOmi, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="flask_omi.tools"):
        call = fake_omi.call_tool(APP_ID, "u1", "broken", {})
    assert call.status == 500
    assert call.text == "Error calling broken: HTTP 500 - broken failed. Please try again later."
    assert "hunter2" not in call.text and "hunter2" in caplog.text  # in the log, not in the answer


def test_a_tool_that_requires_sign_in_refuses_unknown_uids(live: LiveApp, fake_omi: FakeOmi) -> None:
    fake_omi.enable_app("stranger", APP_ID)
    call = fake_omi.call_tool(APP_ID, "stranger", "count_tags", {"kind": "work"})
    assert call.status == 400
    # No link: the app has no OMI_EXTERNAL_URL, and the call's Host header is the caller's word.
    assert "Sign in to this app with OMI first, then ask again" in call.text and live.url not in call.text


def test_a_wrong_secret_is_401_which_omi_turns_into_a_generic_message(
    live: LiveApp, fake_omi: FakeOmi
) -> None:
    fake_omi.apps[APP_ID].signing_secret = "whsec_someone_else"
    call = fake_omi.call_tool(APP_ID, "u1", "search_notes", {"query": "tea"})
    assert call.status == 401 and "temporarily unavailable due to a configuration issue" in call.text


# -- the request itself --------------------------------------------------------------------------------
def signed(method: str, url: str, payload: dict[str, Any], secret: str = SECRET) -> requests.Response:
    from urllib.parse import urlencode, urlsplit

    body = json.dumps(payload).encode() if method == "POST" else b""
    query = "" if method == "POST" else urlencode(payload, doseq=True)
    headers = signed_headers(secret, method=method, path=urlsplit(url).path, query=query, body=body)
    target = url if not query else f"{url}?{query}"
    return requests.request(method, target, data=body or None, headers=headers, timeout=5)


CALL = {"uid": "u1", "app_id": APP_ID, "tool_name": "search_notes", "query": "tea"}


def test_a_replayed_call_is_refused(live: LiveApp) -> None:
    url = f"{live.url}/omi/tools/search_notes"
    body = json.dumps(CALL).encode()
    headers = signed_headers(SECRET, method="POST", path="/omi/tools/search_notes", query="", body=body)
    first = requests.post(url, data=body, headers=headers, timeout=5)
    again = requests.post(url, data=body, headers=headers, timeout=5)
    assert first.json() == {"result": "u1: 3 notes about tea"}
    assert again.status_code == 409 and again.json() == {"error": "This tool call was already received."}


def signed_in_process(client: Any, payload: dict[str, Any]) -> Any:
    body = json.dumps(payload).encode()
    headers = signed_headers(SECRET, method="POST", path="/omi/tools/search_notes", query="", body=body)
    return client.post("/omi/tools/search_notes", data=body, headers=headers)


def test_a_full_replay_store_refuses_calls_instead_of_forgetting() -> None:
    """An in-process replay store never forgets a live delivery id to make room: a call it cannot
    remember is refused (503, which OMI relays as an error), not run unchecked."""
    from flask_omi.stores import MemoryStore

    client = build(OMI_TOOLS_REPLAY_STORE=MemoryStore(1)).test_client()
    assert signed_in_process(client, CALL).get_json() == {"result": "u1: 3 notes about tea"}
    assert_refused(signed_in_process(client, CALL), 503, "Please try again shortly")


def test_a_failing_replay_store_refuses_calls(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def set(self, *args: object, **kwargs: object) -> None:
            raise ConnectionError("redis is down")

        get = delete = set

    client = build(OMI_TOOLS_REPLAY_STORE=Down()).test_client()
    with caplog.at_level(logging.ERROR, logger="flask_omi.tools"):
        assert_refused(signed_in_process(client, CALL), 503, "Please try again shortly")
    assert "OMI_TOOLS_REPLAY_STORE" in caplog.text and "redis is down" in caplog.text


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"uid": "bad uid"}, 400),
        ({"uid": ".."}, 400),
        ({"app_id": "another-app"}, 400),
        ({"tool_name": "count_tags"}, 400),
    ],
)
def test_who_and_what_the_call_is_for_are_checked(live: LiveApp, change: dict[str, str], status: int) -> None:
    answer = signed("POST", f"{live.url}/omi/tools/search_notes", {**CALL, **change})
    assert answer.status_code == status and set(answer.json()) == {"error"}


def test_unsigned_tampered_and_unknown_calls(live: LiveApp) -> None:
    url = f"{live.url}/omi/tools/search_notes"
    unsigned = requests.post(url, json=CALL, timeout=5)
    assert unsigned.status_code == 401 and "signed" in unsigned.json()["error"]
    body = json.dumps(CALL).encode()
    headers = signed_headers(SECRET, method="POST", path="/omi/tools/search_notes", query="", body=body)
    tampered = requests.post(url, data=body.replace(b"tea", b"cake"), headers=headers, timeout=5)
    assert_refused(tampered, 401, "does not match")
    moved = signed("POST", f"{live.url}/omi/tools/average", {**CALL, "tool_name": "average"})
    assert moved.status_code == 400  # the arguments of another tool
    assert requests.post(f"{live.url}/omi/tools/nothing", json=CALL, timeout=5).status_code == 404
    assert_refused(requests.get(url, timeout=5), 405, "is called with POST")
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    deep = signed("POST", url, {**CALL, "query": nested})
    assert_refused(deep, 400, "nests deeper")


def test_oversized_calls_are_413(fake_omi: FakeOmi) -> None:
    app = build(OMI_TOOLS_MAX_BYTES=100)
    answer = app.test_client().post("/omi/tools/search_notes", json={**CALL, "query": "x" * 200})
    assert_refused(answer, 413, "over")


def test_without_a_secret_calls_are_unsigned(fake_omi: FakeOmi) -> None:
    client = build(OMI_SIGNING_SECRET=None).test_client()
    assert client.post("/omi/tools/search_notes", json=CALL).get_json() == {"result": "u1: 3 notes about tea"}


def test_csrf_protect_leaves_tools_alone() -> None:
    app = build(OMI_SIGNING_SECRET=None)
    CSRFProtect(app)
    assert app.test_client().post("/omi/tools/search_notes", json=CALL).status_code == 200


# -- declaring ------------------------------------------------------------------------------------
def test_declaration_errors() -> None:
    def spaced() -> str:
        return ""

    with pytest.raises(TypeError, match="tool name"):
        describe(spaced, name="has spaces")
    with pytest.raises(TypeError, match="plain named"):
        describe(lambda *args: "", name="variadic")
    with pytest.raises(TypeError, match="not a type OMI's model can send"):

        def uses_a_class(when: Flask) -> str:
            return ""

        describe(uses_a_class)
    with pytest.raises(OmiConfigError, match="method"):
        describe(spaced, method="TRACE")


def test_untyped_parameters_and_missing_descriptions_fail_at_decoration() -> None:
    """OMI's model picks tools by their description and sends untyped parameters as text: both
    fail when the tool is declared, with the fix in the message (no longer a check warning)."""

    def loose(anything, flag: bool = False):  # type: ignore[no-untyped-def]
        """Loose."""
        return anything

    with pytest.raises(OmiConfigError, match=r"parameter anything has no type hint.*anything: str"):
        describe(loose)

    def undocumented(query: str) -> str:
        return query

    with pytest.raises(OmiConfigError, match=r"has no description.*Write a docstring"):
        OmiTools().tool(undocumented)
    assert describe(undocumented, description="Echo the query.").description == "Echo the query."


def test_registration_rules() -> None:
    tools = OmiTools()

    @tools.tool
    def one() -> str:
        """One."""
        return "1"

    with pytest.raises(OmiConfigError, match="already declared"):
        tools.tool(name="one", description="Another one.")(lambda: "")
    needs_user = OmiTools()
    needs_user.tool(requires_sign_in=True)(one)
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 32, OMI_APP_ID="a")
    with pytest.raises(OmiConfigError, match="user_loader"):
        app.register_blueprint(needs_user)
    other = Flask(__name__)
    other.register_blueprint(tools)
    with pytest.raises(OmiConfigError, match=r"OmiTools\.tool was called after"):
        tools.tool(one)


def test_check_prints_the_manifest_url_and_warns(fake_omi: FakeOmi) -> None:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="7f3e9a1c5b2d8e4f6a0c3b7d9e1f5a2c", OMI_APP_ID=APP_ID, SESSION_COOKIE_SAMESITE="Lax"
    )
    app.register_blueprint(OmiBlueprint())
    tools = OmiTools()

    @tools.tool
    def echo(query: str) -> str:
        """Echo the query."""
        return query

    app.register_blueprint(tools)
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "http://127.0.0.1:5000"])
    out, _ = cli_streams(result)
    assert "Chat tools manifest URL: http://127.0.0.1:5000/.well-known/omi-tools.json" in out
    assert "warning: (must fix) OMI_SIGNING_SECRET is not set: tool calls are accepted unsigned" in out
    assert "warning: (must fix) OMI_TOOLS_REPLAY_STORE is kept in each process" in out
    assert result.exit_code == 1
    app.config.update(OMI_SIGNING_SECRET="whsec_x", OMI_SINGLE_PROCESS=True)
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "http://127.0.0.1:5000"])
    out, _ = cli_streams(result)
    assert "must fix" not in out and result.exit_code == 0  # the rest is advice
