"""The client and the fake against OMI's published OpenAPI description (``tests/data``).

Every request the client makes is recorded at the network edge and checked against the spec:
the path and method exist, every query parameter and body field is one the spec declares, and
the values keep to its bounds. The fake's defaults and bounds are checked against it too, over
HTTP. Where the spec says nothing (the fake's error wording), the other tests cite OMI's code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from flask_omi import OmiClient
from flask_omi.testing import FakeOmi

SPEC = json.loads((Path(__file__).parent / "data" / "integration-public-openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]


def operation(method: str, path: str) -> dict[str, Any]:
    """The spec's operation whose path template matches ``path``."""
    for template, methods in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in methods:
            return methods[method.lower()]  # type: ignore[no-any-return]
    raise AssertionError(f"{method} {path} is not in OMI's API")


def query_parameters(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}


def body_schema(op: dict[str, Any]) -> dict[str, Any]:
    """The request body's schema, named (``$ref``) or written inline, as OMI's spec has both."""
    schema: dict[str, Any] = op["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        return SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]  # type: ignore[no-any-return]
    return schema


def test_inline_and_named_request_bodies_are_both_read() -> None:
    named = {
        "requestBody": {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}}}
        }
    }
    inline_schema = {"type": "object", "additionalProperties": True}
    inline = {"requestBody": {"content": {"application/json": {"schema": inline_schema}}}}
    assert body_schema(named) is SCHEMAS["SearchRequest"]
    assert body_schema(inline) is inline_schema
    check_object(inline_schema, {"aid": "a", "uid": "u", "message": "m"}, "inline")


class Recorder(requests.Session):
    """Records each request the client sends, then sends it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        return super().send(request, **kwargs)


@pytest.fixture
def recorded(fake_omi: FakeOmi) -> Iterator[tuple[OmiClient, Recorder]]:
    _, key = fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    fake_omi.enable_app("u1", "app1")
    session = Recorder()
    client = OmiClient("app1", key, base_url=fake_omi.url, session=session)
    yield client, session
    client.close()


def call_everything(client: OmiClient) -> None:
    """Every client method, with every optional parameter set."""
    client.create_conversation("u1", "talk", text_source="message", text_source_spec="chat", language="en",
                               geolocation={"latitude": 1.0, "longitude": 2.0})  # fmt: skip
    client.create_memories("u1", memories=[{"content": "m", "tags": ["t"], "artifact_ref": {"k": 1}}],
                           text_source="email", text_source_spec="s", source_id="i", source_url="u",
                           artifact_ref={"k": 2})  # fmt: skip
    client.create_memories("u1", text="from text")
    client.get_memories("u1", limit=1000, offset=5)
    client.get_conversations("u1", limit=1, offset=0, include_discarded=True, statuses=["completed", "processing"],
                             start_date=date(2026, 1, 1), end_date="2026-02-01", max_transcript_segments=-1)  # fmt: skip
    client.search_conversations("u1", "q", page=2, per_page=300, include_discarded=False, start_date="2026-01-01",
                                end_date="2026-02-01", speaker_id="user", max_transcript_segments=1000)  # fmt: skip
    client.get_tasks("u1", limit=7, offset=1, completed=False, conversation_id="c1", start_date="2026-01-01",
                     end_date="2026-02-01", due_start_date="2026-01-01", due_end_date="2026-02-01")  # fmt: skip
    client.send_notification("u1", "hello")
    client.send_chat_message("u1", "a chat message")


def check_value(schema: dict[str, Any], value: Any, where: str) -> None:
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                check_value(option, value, where)
                return
            except AssertionError as error:
                errors.append(str(error))
        raise AssertionError(f"{where}: {value!r} fits none of {errors}")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in SCHEMAS:
            check_object(SCHEMAS[name], value, where)
        return
    kind = schema.get("type")
    if kind == "null":
        assert value is None, f"{where}: expected null"
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: not an integer"
        assert value >= schema.get("minimum", value), f"{where}: below {schema['minimum']}"
        assert value <= schema.get("maximum", value), f"{where}: above {schema['maximum']}"
    elif kind == "number":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: not a number"
    elif kind == "string":
        assert isinstance(value, str), f"{where}: not a string"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{where}: not a boolean"
    elif kind == "array":
        assert isinstance(value, list), f"{where}: not a list"
        for index, item in enumerate(value):
            check_value(schema.get("items", {}), item, f"{where}[{index}]")
    elif kind == "object":
        check_object(schema, value, where)


def check_object(schema: dict[str, Any], value: Any, where: str) -> None:
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
        return
    assert isinstance(value, dict), f"{where}: not an object"
    properties = schema.get("properties")
    if properties is None:
        return
    for name in schema.get("required", []):
        assert name in value, f"{where}: the required field {name!r} is missing"
    for name, item in value.items():
        assert name in properties, f"{where}: {name!r} is not a field of {schema.get('title')}"
        check_value(properties[name], item, f"{where}.{name}")


def check_query(name: str, raw: list[str], parameter: dict[str, Any], where: str) -> None:
    schema = parameter["schema"]
    options = schema.get("anyOf", [schema])
    kinds = {o.get("type") for o in options}
    if "array" in kinds:
        return  # repeated parameters: any number of values
    assert len(raw) == 1, f"{where}: {name} repeated"
    value = raw[0]
    if "integer" in kinds:
        number = int(value)
        assert number >= schema.get("minimum", number) and number <= schema.get("maximum", number), where
    elif "boolean" in kinds:
        assert value in ("true", "false"), f"{where}: {name}={value}"


def test_every_client_request_is_one_omi_declares(recorded: tuple[OmiClient, Recorder]) -> None:
    client, session = recorded
    call_everything(client)
    assert len(session.sent) == 9
    for prepared in session.sent:
        url = urlsplit(prepared.url or "")
        where = f"{prepared.method} {url.path}"
        op = operation(prepared.method or "", url.path)
        declared = query_parameters(op)
        sent: dict[str, list[str]] = {}
        for name, value in parse_qsl(url.query, keep_blank_values=True):
            sent.setdefault(name, []).append(value)
        for name, values in sent.items():
            assert name in declared, f"{where}: query {name!r} is not declared"
            check_query(name, values, declared[name], where)
        for name, parameter in declared.items():
            assert not parameter["required"] or name in sent, f"{where}: required {name!r} not sent"
        if "requestBody" in op:
            check_object(body_schema(op), json.loads(prepared.body or b"{}"), where)
        else:
            assert not prepared.body, f"{where}: a body OMI does not read"
        assert prepared.headers["Authorization"].startswith("Bearer ")


def test_statuses_are_sent_repeated(recorded: tuple[OmiClient, Recorder]) -> None:
    client, session = recorded
    client.get_conversations("u1", statuses=["a", "b"])
    assert parse_qsl(urlsplit(session.sent[-1].url or "").query).count(("statuses", "a")) == 1
    assert ("statuses", "b") in parse_qsl(urlsplit(session.sent[-1].url or "").query)


def test_client_defaults_are_omis_defaults(recorded: tuple[OmiClient, Recorder]) -> None:
    client, session = recorded
    client.get_conversations("u1")
    client.get_memories("u1")
    client.get_tasks("u1")
    client.search_conversations("u1", "x")
    for prepared in session.sent:
        url = urlsplit(prepared.url or "")
        declared = query_parameters(operation(prepared.method or "", url.path))
        for name, value in parse_qsl(url.query):
            default = declared[name]["schema"].get("default")
            if default is not None and not isinstance(default, list):
                assert str(default).lower() == value.lower(), (
                    f"{url.path}: {name}={value}, OMI's default {default}"
                )
        if prepared.body:
            properties = body_schema(operation(prepared.method or "", url.path))["properties"]
            for name, value in json.loads(prepared.body).items():
                if "default" in properties[name] and name != "query":
                    assert value == properties[name]["default"], f"{url.path}: {name}={value!r}"


def test_the_fake_serves_every_path_the_client_uses(fake_omi: FakeOmi) -> None:
    served = {rule.rule.replace("<app_id>", "{app_id}") for rule in fake_omi.wsgi_app.url_map.iter_rules()}
    for path in SPEC["paths"]:
        if path.startswith("/v2/"):
            assert path in served, f"the fake does not serve {path}"


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/memories", "limit"),
        ("/conversations", "limit"),
        ("/tasks", "limit"),
        ("/conversations", "max_transcript_segments"),
    ],
)
def test_the_fakes_bounds_are_omis(fake_omi: FakeOmi, path: str, name: str) -> None:
    _, key = fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    fake_omi.enable_app("u1", "app1")
    schema = query_parameters(operation("GET", f"/v2/integrations/app1{path}"))[name]["schema"]
    url = f"{fake_omi.url}/v2/integrations/app1{path}"
    headers = {"Authorization": f"Bearer {key}"}
    for value, ok in (
        (schema["minimum"], True),
        (schema["maximum"], True),
        (schema["minimum"] - 1, False),
        (schema["maximum"] + 1, False),
    ):
        answer = requests.get(url, params={"uid": "u1", name: value}, headers=headers, timeout=5)
        assert (answer.status_code == 200) is ok, (name, value, answer.text[:200])


def test_the_fakes_default_page_is_omis(fake_omi: FakeOmi) -> None:
    _, key = fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    fake_omi.enable_app("u1", "app1")
    for n in range(120):
        fake_omi.add_conversation("u1", f"c{n}")
    default = query_parameters(operation("GET", "/v2/integrations/app1/conversations"))["limit"]["schema"][
        "default"
    ]
    answer = requests.get(
        f"{fake_omi.url}/v2/integrations/app1/conversations", params={"uid": "u1"},
        headers={"Authorization": f"Bearer {key}"}, timeout=5,
    )  # fmt: skip
    assert len(answer.json()["conversations"]) == default
