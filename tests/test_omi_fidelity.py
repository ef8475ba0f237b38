"""What breaks against OMI as deployed, each sent exactly as OMI's code sends it (file and commit in
each test's name or docstring), through the fake OMI set up from what ``flask omi check`` prints."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pytest
import requests
from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_omi import OmiBlueprint, OmiClient, OmiConfigError, OmiTools, OmiWebhooks
from flask_omi.inbound.request_signing import signed_headers
from flask_omi.inbound.signing import signature_header
from flask_omi.testing import FakeOmi, LiveServer
from flask_omi.testing.fake.chat import httpx_query

from .helpers import assert_refused

APP_ID = "01JAPPIDULIDOFOMI26CHARSX"  # 25 + 1: OMI's app ids are 26-character ULIDs
SECRET = "whsec_deployed_secret"


def build(**config: Any) -> tuple[Flask, list[Any]]:
    """An app with a sign-in, a conversation webhook and tools of every shape OMI can call."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="9c1f4e7a2b8d3f6e0a5c9b2d7e1f4a8c", OMI_APP_ID=APP_ID, **config)
    seen: list[Any] = []
    omi = OmiBlueprint()
    omi.user_loader(lambda uid: {"uid": uid})
    app.register_blueprint(omi)
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: seen.append(event) or None)
    app.register_blueprint(hooks)
    tools = OmiTools()

    @tools.tool(method="GET")
    def weather(
        uid: str,
        geolocation: dict[str, Any] | None,
        unit: Literal["celsius", "fahrenheit"],
        days: list[int],
        hourly: bool = False,
    ) -> str:
        """The forecast where the person is."""
        seen.append({"uid": uid, "geolocation": geolocation, "unit": unit, "days": days, "hourly": hourly})
        return f"{unit} {days} {hourly}"

    @tools.tool
    def save_filter(uid: str, filters: Annotated[dict[str, Any], "What to match"], note: str = "") -> str:
        """Save a filter."""
        seen.append({"filters": filters, "note": note})
        return f"saved {sorted(filters)}"

    app.register_blueprint(tools)
    return app, seen


@pytest.fixture
def live(fake_omi: FakeOmi) -> Iterator[tuple[str, Flask, list[Any]]]:
    """The app served on loopback, registered in the fake from the values `flask omi check` prints."""
    app, seen = build(OMI_SIGNING_SECRET=SECRET, OMI_API_BASE=fake_omi.url)
    server = LiveServer(app).bind()
    printed = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", server.url]).output
    values = dict(re.findall(r"^([A-Z][^:]+?(?: \([a-z_]+\))?): (http\S+)$", printed, re.M))
    _, key = fake_omi.register_app(
        APP_ID,
        app_home_url=values["App Home URL"],
        setup_completed_url=values["Setup completed URL"],
        webhook_url=values["Webhook URL (memory_creation)"],
        triggers_on="memory_creation",
        chat_tools_manifest_url=values["Chat tools manifest URL"],
        signing_secret=SECRET,
    )
    app.config["OMI_API_KEY"] = key
    server.start()
    try:
        yield server.url, app, seen
    finally:
        server.stop()


# -- from the documented values to a working app -------------------------------------------------
def test_the_readmes_values_lead_to_sign_in_webhook_and_tools(
    live: tuple[str, Flask, list[Any]], fake_omi: FakeOmi
) -> None:
    url, _, seen = live
    browser = requests.Session()
    login = browser.get(f"{url}/omi/login", allow_redirects=False, timeout=5)
    callback = fake_omi.sign_in(login.headers["Location"], "u1", browser)
    assert browser.get(callback, allow_redirects=False, timeout=5).status_code == 302
    delivery = fake_omi.trigger(APP_ID, "u1", fake_omi.make_conversation("Lunch with Sam"))
    assert delivery.statuses == [200] and seen[0].uid == "u1"
    fake_omi.geolocations["u1"] = {"latitude": 52.5, "longitude": 13.4, "address": "Berlin, 'Mitte'"}
    call = fake_omi.call_tool(APP_ID, "u1", "weather", {"unit": "celsius", "days": [1, 2], "hourly": True})
    assert (call.status, call.text) == (200, "celsius [1, 2] True")
    assert seen[-1]["geolocation"] == {"latitude": 52.5, "longitude": 13.4, "address": "Berlin, 'Mitte'"}


def test_manifest_endpoints_are_absolute_apps_py_0045c1a9(live: tuple[str, Flask, list[Any]]) -> None:
    url, _, _ = live
    manifest = requests.get(f"{url}/.well-known/omi-tools.json", timeout=5).json()
    assert {tool["endpoint"] for tool in manifest["tools"]} == {
        f"{url}/omi/tools/weather",
        f"{url}/omi/tools/save_filter",
    }


def test_manifest_endpoints_follow_the_public_url_behind_a_proxy() -> None:
    app, _ = build()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    answer = app.test_client().get(
        "/.well-known/omi-tools.json",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "omi.example.com"},
    )
    assert answer.get_json()["tools"][0]["endpoint"] == "https://omi.example.com/omi/tools/weather"


def test_the_fake_concatenates_a_relative_endpoint_as_omi_does(fake_omi: FakeOmi) -> None:
    """apps.py 0045c1a9: App Home URL, trailing / removed, + the path; never urljoin."""
    manifest = Flask(__name__)
    manifest.get("/m.json")(
        lambda: {
            "tools": [
                {"name": "t", "description": "d", "endpoint": "/omi/tools/t"},
                {"name": "no_description", "endpoint": "/x"},  # skipped, the rest kept
                {"name": "abs", "description": "d", "endpoint": "https://tools.example/abs", "method": "get"},
            ]
        }
    )
    with LiveServer(manifest) as server:
        fake_omi.register_app(
            "a",
            app_home_url="https://host.example/omi/callback/",
            chat_tools_manifest_url=f"{server.url}/m.json",
        )
        tools = fake_omi.fetch_tools("a")
    assert [(t["name"], t["endpoint"], t["method"]) for t in tools] == [
        ("t", "https://host.example/omi/callback/omi/tools/t", "POST"),
        ("abs", "https://tools.example/abs", "GET"),
    ]


def test_a_tool_that_is_not_an_object_drops_the_manifest(fake_omi: FakeOmi) -> None:
    from flask_omi.testing.fake.chat import ManifestError

    manifest = Flask(__name__)
    manifest.get("/m.json")(lambda: {"tools": ["search"]})
    with LiveServer(manifest) as server:
        fake_omi.register_app(
            "a", app_home_url="https://h.example/cb", chat_tools_manifest_url=f"{server.url}/m.json"
        )
        with pytest.raises(ManifestError):
            fake_omi.fetch_tools("a")


# -- tools OMI cannot call are refused when declared ---------------------------------------------------
@pytest.mark.parametrize("method", ["DELETE", "HEAD", "OPTIONS"])
def test_methods_omi_sends_no_payload_with_are_refused_app_tools_py_8d9b8ac8(method: str) -> None:
    tools = OmiTools()
    with pytest.raises(OmiConfigError, match="no uid, app id or arguments"):

        @tools.tool(method=method)
        def remove(uid: str) -> str:
            """Remove."""
            return uid


def test_names_too_long_for_omis_model_are_refused() -> None:
    tools = OmiTools()
    tools.tool(name="n" * 37, description="Fits.")(lambda: "fits")  # 26 + 1 + 37 = 64
    with pytest.raises(OmiConfigError, match=r"1 to 37 of"):
        tools.tool(name="n" * 38, description="Too long.")(lambda: "too long")


def test_what_omis_model_is_shown() -> None:
    app, _ = build()
    tools = {t["name"]: t for t in app.test_client().get("/.well-known/omi-tools.json").get_json()["tools"]}
    weather = tools["weather"]["parameters"]["properties"]
    assert weather["unit"]["description"] == "One of: celsius, fahrenheit."
    assert weather["days"]["description"] == "A list of whole numbers."
    filters = tools["save_filter"]["parameters"]["properties"]["filters"]
    assert filters["type"] == "string"  # OMI shows its model an object as a string anyway
    assert filters["description"] == "What to match A JSON object, written as text."


def test_a_dict_parameter_arrives_as_json_text(live: tuple[str, Flask, list[Any]], fake_omi: FakeOmi) -> None:
    fake_omi.enable_app("u1", APP_ID)
    call = fake_omi.call_tool(APP_ID, "u1", "save_filter", {"filters": '{"topic": "tea", "days": 3}'})
    assert call.text == "saved ['days', 'topic']"
    for bad in ("tea", "[1, 2]", '{"a": ' * 40 + "1" + "}" * 40):
        refused = fake_omi.call_tool(APP_ID, "u1", "save_filter", {"filters": bad})
        assert refused.status == 400 and "must be a JSON object" in refused.text


def test_missing_optional_arguments_are_dropped(
    live: tuple[str, Flask, list[Any]], fake_omi: FakeOmi
) -> None:
    _, _, seen = live
    call = fake_omi.call_tool(APP_ID, "u1", "save_filter", {"filters": "{}", "note": None})
    assert call.status == 200 and seen[-1] == {"filters": {}, "note": ""}


# -- GET calls as OMI writes them --------------------------------------------------------------------
def test_the_fake_writes_a_get_query_as_httpx_does() -> None:
    query = httpx_query({"a": True, "b": False, "c": None, "d": [1, "x"], "geolocation": {"latitude": 1.5}})
    assert query == "a=true&b=false&c=&d=1&d=x&geolocation=%7B%27latitude%27%3A+1.5%7D"


def test_get_calls_as_omi_sends_them_are_read() -> None:
    """httpx: booleans true/false, lists repeated, a dict as its repr (app_tools.py 8d9b8ac8)."""
    app, seen = build(OMI_SIGNING_SECRET=SECRET)
    geolocation = {"latitude": -33.9, "longitude": 18.4, "address": "Cape Town", "google_place_id": None}
    payload = {"unit": "fahrenheit", "days": [3, 4], "hourly": False, "uid": "u1", "app_id": APP_ID}
    query = httpx_query({**payload, "tool_name": "weather", "geolocation": geolocation})
    headers = signed_headers(SECRET, method="GET", path="/omi/tools/weather", query=query, body=b"")
    answer = app.test_client().get(f"/omi/tools/weather?{query}", headers=headers)
    assert answer.get_json() == {"result": "fahrenheit [3, 4] False"}
    assert seen[-1]["geolocation"] == geolocation and seen[-1]["hourly"] is False


@pytest.mark.parametrize(
    "raw",
    [
        "__import__('os').system('true')",
        "{'a': open('x')}",
        "{1: 2}",
        "{'a': " * 300 + "1" + "}" * 300,
        "[1]",
    ],
)
def test_a_geolocation_that_is_not_a_plain_dict_is_none_and_never_run(raw: str) -> None:
    app, seen = build()
    query = (
        httpx_query({"unit": "celsius", "days": [1], "uid": "u1", "app_id": APP_ID}) + "&geolocation=" + raw
    )
    answer = app.test_client().get(f"/omi/tools/weather?{query}")
    assert answer.status_code == 200 and seen[-1]["geolocation"] is None


def test_other_methods_get_no_payload_from_the_fake(fake_omi: FakeOmi) -> None:
    """app_tools.py 8d9b8ac8: only POST/PUT/PATCH (JSON) and GET (query) carry the payload."""
    received: list[tuple[str, bytes]] = []
    tool_app = Flask(__name__)

    @tool_app.route("/m.json")
    def manifest() -> Any:
        return {
            "tools": [
                {"name": "rm", "description": "d", "endpoint": f"{request.host_url}rm", "method": "DELETE"}
            ]
        }

    @tool_app.route("/rm", methods=["DELETE"])
    def rm() -> Any:
        received.append((request.query_string.decode(), request.get_data()))
        return {"result": "done"}

    with LiveServer(tool_app) as server:
        fake_omi.register_app(
            "a", app_home_url="https://h.example/cb", chat_tools_manifest_url=f"{server.url}/m.json"
        )
        assert fake_omi.call_tool("a", "u1", "rm", {"what": "x"}).text == "done"
    assert received == [("", b"")]


# -- OMI's re-enable check ----------------------------------------------------------------------------
def test_omis_reenable_check_gets_a_2xx_and_runs_nothing_utils_apps_py_0060291d(
    live: tuple[str, Flask, list[Any]], fake_omi: FakeOmi, caplog: pytest.LogCaptureFixture
) -> None:
    url, _, seen = live
    fake_omi.fetch_tools(APP_ID)
    with caplog.at_level(logging.INFO, logger="flask_omi.webhooks"):
        assert fake_omi.check_endpoints_for_reenable(APP_ID) is None
    assert seen == [] and "re-enable check" in caplog.text
    # Anything else without a uid or a signature is still refused.
    hook = f"{url}/omi/webhooks/conversation"
    assert_refused(requests.post(hook, json={"id": "c1"}, timeout=5), 401, "signature_missing")
    assert_refused(requests.post(f"{hook}?uid=u1", json={}, timeout=5), 401, "signature_missing")
    body = b"{}"
    signed = {"X-Omi-Signature": signature_header(SECRET, "", body)}
    assert_refused(requests.post(hook, data=body, headers=signed, timeout=5), 400, "uid_missing")
    assert seen == []


def test_a_failing_webhook_keeps_the_app_disabled(fake_omi: FakeOmi) -> None:
    broken = Flask(__name__)
    broken.post("/hook")(lambda: ("down", 503))
    with LiveServer(broken) as server:
        fake_omi.register_app("a", app_home_url="https://h.example/cb", webhook_url=f"{server.url}/hook")
        assert (
            fake_omi.check_endpoints_for_reenable("a")
            == "Webhook endpoint returned 503. Fix it before re-enabling."
        )


# -- one signing secret per app ------------------------------------------------------------------------
def test_a_rotation_never_drops_a_call_webhook_signing_py_7b4b3cb2(
    live: tuple[str, Flask, list[Any]], fake_omi: FakeOmi
) -> None:
    _, app, seen = live
    fake_omi.enable_app("u1", APP_ID)
    new = fake_omi.rotate_signing_secret(APP_ID)  # OMI now signs with both for 24 h
    # The app still has only the old secret: both kinds of call go through.
    assert fake_omi.trigger(APP_ID, "u1", fake_omi.make_conversation("one")).statuses == [200]
    assert fake_omi.call_tool(APP_ID, "u1", "save_filter", {"filters": "{}"}).status == 200
    app.config["OMI_SIGNING_SECRET"] = [new, SECRET]  # the app takes the new one, keeps the old
    assert fake_omi.trigger(APP_ID, "u1", fake_omi.make_conversation("two")).statuses == [200]
    app.config["OMI_SIGNING_SECRET"] = new
    fake_omi.clock = lambda: 4_000_000_000.0  # more than 24 h later: OMI signs with the new one only
    assert fake_omi.call_tool(APP_ID, "u1", "save_filter", {"filters": "{}"}).status == 200
    app.config["OMI_SIGNING_SECRET"] = SECRET  # an app left on the old secret is refused now
    assert fake_omi.trigger(APP_ID, "u1", fake_omi.make_conversation("three")).statuses == [401]
    assert len(seen) == 4  # two conversations and two tool calls ran; the refused delivery did not


@pytest.mark.parametrize("old", ["OMI_WEBHOOK_SECRET", "OMI_TOOLS_SECRET"])
def test_the_names_of_an_unreleased_draft_fail_at_start_up(old: str) -> None:
    """Two secrets, set to different values, gave a new user's app a silent 401: OMI has one
    signing secret per app, and the unreleased names are gone, refused with the one to use."""
    with pytest.raises(
        OmiConfigError, match=f"{old} is not a flask-omi setting. Did you mean OMI_SIGNING_SECRET"
    ):
        build(**{old: SECRET})


# -- the client and the fake on OMI's newest bounds -----------------------------------------------------
def test_statuses_are_at_most_20_routers_integration_0def44eb(fake_omi: FakeOmi) -> None:
    _, key = fake_omi.register_app("a", app_home_url="https://h.example/cb")
    fake_omi.enable_app("u1", "a")
    client = OmiClient("a", key, base_url=fake_omi.url)
    assert client.get_conversations("u1", statuses=["completed"] * 20) == []
    with pytest.raises(ValueError, match="at most 20"):
        client.get_conversations("u1", statuses=["completed"] * 21)
    answer = requests.get(
        f"{fake_omi.url}/v2/integrations/a/conversations",
        params={"uid": "u1", "statuses": ["completed"] * 21},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert_refused(answer, 400, "statuses accepts at most 20 values")


@pytest.mark.parametrize(("latitude", "longitude"), [(91, 0), (-90.5, 0), (0, 180.1), (0, -181)])
def test_geolocation_bounds_openapi_0def44eb(fake_omi: FakeOmi, latitude: float, longitude: float) -> None:
    _, key = fake_omi.register_app("a", app_home_url="https://h.example/cb")
    fake_omi.enable_app("u1", "a")
    client = OmiClient("a", key, base_url=fake_omi.url)
    where = {"latitude": latitude, "longitude": longitude}
    with pytest.raises(ValueError, match="geolocation"):
        client.create_conversation("u1", "text", geolocation=where)  # type: ignore[arg-type]
    answer = requests.post(
        f"{fake_omi.url}/v2/integrations/a/user/conversations",
        params={"uid": "u1"},
        json={"text": "t", "geolocation": where},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert_refused(answer, 422, "than or equal to")
    assert fake_omi.conversations.get("u1", []) == []
    client.create_conversation("u1", "at the edge", geolocation={"latitude": 90, "longitude": -180})
    assert len(fake_omi.conversations["u1"]) == 1


# -- OMI's circuit breaker ------------------------------------------------------------------------------
def test_five_failures_open_the_breaker_for_30_s_webhook_health_py(fake_omi: FakeOmi) -> None:
    failing = Flask(__name__)
    calls: list[int] = []

    @failing.get("/m.json")
    def manifest() -> Any:
        return {"tools": [{"name": "t", "description": "d", "endpoint": f"{request.host_url}t"}]}

    @failing.post("/t")
    def tool() -> Any:
        calls.append(1)
        return {"error": "down"}, 500

    now = [1_800_000_000.0]
    fake_omi.clock = lambda: now[0]
    with LiveServer(failing) as server:
        fake_omi.register_app(
            "a", app_home_url="https://h.example/cb", chat_tools_manifest_url=f"{server.url}/m.json"
        )
        texts = [fake_omi.call_tool("a", "u1", "t", {}).text for _ in range(6)]
        assert texts[:5] == ["Error calling t: HTTP 500 - down"] * 5
        assert texts[5] == "The t tool is temporarily unavailable. Please try again shortly."
        assert len(calls) == 5
        now[0] += 30
        assert fake_omi.call_tool("a", "u1", "t", {}).status == 500 and len(calls) == 6
