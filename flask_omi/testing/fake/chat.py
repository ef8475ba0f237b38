"""The fake OMI's chat: reading an app's tool manifest, calling its tools as OMI's assistant does,
taking chat messages, and turning a transcript webhook's answer into notifications.

From OMI's code: ``backend/utils/retrieval/tools/app_tools.py`` 8d9b8ac8 (the call: payload
``{**arguments, uid, app_id, tool_name, geolocation}`` as compact JSON for POST/PUT/PATCH, as the
query for GET the way httpx writes one, nothing at all for other methods; 120 s; no redirects; a
circuit breaker per endpoint; what the assistant is told for each answer), ``backend/routers/apps.py``
0045c1a9 (reading the manifest; a relative endpoint becomes the App Home URL without its trailing
``/`` plus the path, by concatenation), ``backend/utils/apps.py`` 0060291d (which tools are kept),
``backend/database/webhook_health.py`` (5 failures in a row open the breaker for 30 s),
``backend/utils/webhook_signing.py`` (the ``v2`` signature), ``backend/routers/notifications.py``
(chat messages) and ``backend/utils/app_integrations.py`` (a transcript answer's ``message`` and
``notification``).

The fake does not run a language model: a proactive notification is recorded with the prompt OMI
would give its model, placeholders filled, and the model's part is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from flask_omi.inbound.request_signing import signed_headers
from flask_omi.testing.fake.api_routes import check_key, installed_and_within_limit
from flask_omi.testing.fake.request_checks import ApiError, render_api_error
from flask_omi.testing.fake.store import FakeApp, FakeOmiStore

chat = Blueprint("fake_chat", __name__)

TOOL_TIMEOUT = 120.0
#: ``_process_proactive_notification``: one per user and app per 30 s; prompts up to 128,000
#: characters; a written notification shorter than 5 characters is not sent.
PROACTIVE_INTERVAL, MAX_PROMPT_CHARS, MIN_MESSAGE_CHARS = 30.0, 128_000, 5


@dataclass(frozen=True)
class ToolCall:
    """One call of an app's tool, and what OMI's assistant was told of the answer."""

    app_id: str
    uid: str
    tool: str
    arguments: dict[str, Any]
    status: int | None
    #: The text the assistant works with, built from the answer as OMI builds it.
    text: str


class ManifestError(Exception):
    """The app's manifest could not be read, or is not OMI's format."""


def fetch_tools(store: FakeOmiStore, app_id: str) -> list[dict[str, Any]]:
    """Read the app's manifest as OMI does when the app is saved, and keep its tools."""
    app = store.apps[app_id]
    if not app.chat_tools_manifest_url:
        raise ManifestError(f"app {app_id} has no chat_tools_manifest_url")
    try:
        answer = requests.get(
            app.chat_tools_manifest_url,
            timeout=10,
            allow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "Omi-App-Store/1.0"},
        )
        manifest = answer.json()
    except (requests.RequestException, ValueError) as error:
        raise ManifestError(f"the manifest could not be read: {error}") from None
    if (
        answer.status_code != 200
        or not isinstance(manifest, dict)
        or not isinstance(manifest.get("tools"), list)
    ):
        raise ManifestError("the manifest must be a JSON object with a 'tools' list")
    tools = [_kept_tool(tool, app.app_home_url) for tool in manifest["tools"]]
    with store.lock:
        app.chat_tools = [tool for tool in tools if tool is not None]
        app.chat_messages = (
            manifest.get("chat_messages") if isinstance(manifest.get("chat_messages"), dict) else None
        )
    return app.chat_tools


def _kept_tool(tool: Any, app_home_url: str | None) -> dict[str, Any] | None:
    """One manifest entry as OMI keeps it, or None when OMI skips it; a tool that is not an object,
    or a method that is not text, makes OMI drop the whole manifest."""
    if not isinstance(tool, dict) or not isinstance(tool.get("method", "POST"), str):
        raise ManifestError("every tool must be an object, and its method text")
    if not all(isinstance(tool.get(k), str) and tool[k] for k in ("name", "description", "endpoint")):
        return None  # OMI skips a tool without a name, a description or an endpoint
    endpoint = tool["endpoint"]
    if endpoint.startswith("/") and app_home_url:
        endpoint = app_home_url.rstrip("/") + endpoint  # concatenated, as OMI does: never urljoin
    raw_parameters = tool.get("parameters")
    parameters: dict[str, Any] = raw_parameters if isinstance(raw_parameters, dict) else {}
    return {
        "name": tool["name"],
        "description": tool["description"],
        "endpoint": endpoint,
        "method": tool.get("method", "POST").upper(),
        "parameters": {
            "properties": parameters.get("properties", {}),
            "required": parameters.get("required", []),
        },
        "status_message": tool.get("status_message"),
    }


def httpx_query_value(value: Any) -> str:
    """One query value as httpx writes it: ``true``/``false``, ``""`` for None, ``str()`` otherwise
    (a dict becomes its Python repr)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


def httpx_query(payload: dict[str, Any]) -> str:
    """The query string httpx builds from ``params=payload``: a list repeats its name."""
    pairs = [
        (name, httpx_query_value(item))
        for name, value in payload.items()
        for item in (value if isinstance(value, (list, tuple)) else [value])
    ]
    return urlencode(pairs)


def call_tool(store: FakeOmiStore, app_id: str, uid: str, name: str, arguments: dict[str, Any]) -> ToolCall:
    """Call the app's tool ``name`` for ``uid`` as OMI's assistant does; returns what it was told."""
    app = store.apps[app_id]
    if not app.chat_tools:
        fetch_tools(store, app_id)
    tool = next((t for t in app.chat_tools if t["name"] == name), None)
    if tool is None:
        raise ManifestError(f"app {app_id} has no tool named {name!r}")
    # The model's missing optional arguments are dropped; OMI adds who and what the call is for.
    payload = {key: value for key, value in arguments.items() if value is not None}
    payload.update(uid=uid, app_id=app_id, tool_name=name)
    geolocation = store.geolocations.get(uid)
    if geolocation:
        payload["geolocation"] = geolocation
    method, url = tool["method"], tool["endpoint"]
    body, query = b"", ""
    if method in ("POST", "PUT", "PATCH"):
        body = json.dumps(payload, separators=(",", ":")).encode()
    elif method == "GET":
        query = httpx_query(payload)
        url = f"{url}?{query}"
    headers = {"Content-Type": "application/json"}
    secrets = app.secrets_at(store.clock())
    if secrets:
        path = urlsplit(url).path
        headers.update(signed_headers(secrets, method=method, path=path, query=query, body=body))
    breaker = store.breaker(tool["endpoint"])
    if not breaker.allows(store.clock()):
        status, text = None, f"The {name} tool is temporarily unavailable. Please try again shortly."
    else:
        try:
            answer = requests.request(
                method, url, data=body or None, headers=headers, timeout=TOOL_TIMEOUT, allow_redirects=False
            )
            status, text = answer.status_code, _assistant_text(name, answer)
        except requests.Timeout:
            status, text = (
                None,
                f"Error: Timeout calling {name}. The app endpoint did not respond within 120 seconds.",
            )
        except requests.ConnectionError:
            status, text = None, f"Error: Could not connect to {name}. The app endpoint may be unreachable."
        breaker.record(status is not None and 200 <= status < 300, store.clock())
    call = ToolCall(app_id, uid, name, dict(arguments), status, text)
    with store.lock:
        store.tool_calls.append(call)
    return call


def _assistant_text(name: str, answer: requests.Response) -> str:
    """``_call_tool_endpoint``: what the assistant is told for each kind of answer."""
    if 200 <= answer.status_code < 300:
        try:
            result = answer.json()
        except ValueError:
            return answer.text
        if isinstance(result, dict) and "result" in result:
            return str(result["result"])
        if isinstance(result, dict) and "message" in result:
            return str(result["message"])
        return result if isinstance(result, str) else str(result)
    if answer.status_code in (401, 403):
        return (
            f"The {name} tool is temporarily unavailable due to a configuration issue on the app's side. "
            "Please try again later "
        )
    message = f"Error calling {name}: HTTP {answer.status_code}"
    try:
        detail = answer.json()
        return message + (
            f" - {detail['error']}" if isinstance(detail, dict) and "error" in detail else f" - {detail}"
        )
    except ValueError:
        return message + f" - {answer.text[:200]}"


# -- chat messages: POST /v1/integrations/notification ------------------------------------------------
chat.register_error_handler(ApiError, render_api_error)


@chat.post("/v1/integrations/notification")
def chat_message() -> Any:
    """``send_app_notification_to_user`` (``backend/routers/notifications.py`` 05dc5115): its checks
    in its order (the app id, then the message, then the uid), then the shared hourly limit."""
    store: FakeOmiStore = current_app.extensions["fake_omi"]
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(
            422, [{"type": "dict_type", "loc": ["body"], "msg": "Input should be a valid dictionary"}]
        )
    if "aid" not in data:
        raise ApiError(400, "aid (app id) in request body is required")
    if not data.get("message"):
        raise ApiError(400, "message is required")
    if not data.get("uid"):
        raise ApiError(400, "uid is required")
    uid, app_id = str(data["uid"]), str(data["aid"])
    check_key(app_id, "send_app_notification")
    headers = installed_and_within_limit(store, app_id, uid)
    message = str(data["message"])
    settings = store.apps[app_id].chat_messages or {}
    with store.lock:
        if settings.get("enabled"):
            target = "main" if settings.get("target") == "main" else "app"
            # In OMI's main chat the text says which app it is from: "[App name]: ...".
            shown = f"[{store.apps[app_id].name}]: {message}" if target == "main" else message
            store.chat_messages.setdefault(uid, []).append(
                {"app_id": app_id, "message": shown, "target": target}
            )
        store.notifications.setdefault(uid, []).append(message)  # the push is always sent
    response = jsonify(status="Ok")
    response.headers.update(headers)
    return response


# -- a transcript webhook's answer ----------------------------------------------------------------------
def take_transcript_answer(
    store: FakeOmiStore, app: FakeApp, uid: str, answer: requests.Response | None
) -> None:
    """What OMI does with a ``transcript_processed`` answer: a ``message`` longer than 5 characters
    is pushed; a ``notification`` becomes a proactive notification when the app may send them."""
    if answer is None or not 200 <= answer.status_code < 300:
        return
    try:
        data = answer.json()
    except ValueError:
        return
    if not isinstance(data, dict) or not data:
        return
    message = data.get("message", "")
    if isinstance(message, str) and len(message) > MIN_MESSAGE_CHARS:
        with store.lock:
            store.notifications.setdefault(uid, []).append(message)
    notification = data.get("notification")
    if "proactive_notification" in app.capabilities and isinstance(notification, dict) and notification:
        _proactive(store, app, uid, notification)


def _proactive(store: FakeOmiStore, app: FakeApp, uid: str, data: dict[str, Any]) -> None:
    now = store.clock()
    key = (uid, app.app_id)
    with store.lock:
        if now - store._proactive_sent.get(key, -PROACTIVE_INTERVAL) < PROACTIVE_INTERVAL:
            return  # one per user and app every 30 s
    prompt = str(data.get("prompt", ""))
    if len(prompt) > MAX_PROMPT_CHARS:
        with store.lock:
            store.notifications.setdefault(uid, []).append(
                f"Prompt too long: {len(prompt)}/{MAX_PROMPT_CHARS} characters. Please shorten."
            )
        return
    # filter_proactive_notification_scopes: only the scopes the app was granted count.
    params = data.get("params")
    scopes = [scope for scope in params if scope in app.proactive_scopes] if isinstance(params, list) else []
    filled = {
        "user_name": store.user_names.get(uid, uid),
        "user_facts": "\n".join(m["content"] for m in store.memories.get(uid, [])),
        "user_context": "\n".join(c["structured"]["title"] for c in store.conversations.get(uid, [])[-5:]),
        "user_chat": "\n".join(m["message"] for m in store.chat_messages.get(uid, [])[-10:]),
    }
    for scope in scopes:  # placeholders of scopes the app was not granted stay as they are
        prompt = prompt.replace("{{" + scope + "}}", filled[scope])
    prompt = prompt.replace("    ", "").strip()
    if len(prompt) < MIN_MESSAGE_CHARS:
        return
    with store.lock:
        store._proactive_sent[key] = now
        store.proactive_notifications.setdefault(uid, []).append(
            {"app_id": app.app_id, "prompt": prompt, "scopes": scopes, "context": data.get("context")}
        )


# -- a simulated OMI chat box, for the demo and browser tests ---------------------------------------
@chat.get("/_fake/chat")
def chat_box() -> Any:
    """A page standing in for OMI's chat: pick a tool of the app, fill its arguments, call it."""
    store: FakeOmiStore = current_app.extensions["fake_omi"]
    app_id, uid = request.args.get("app_id", ""), request.args.get("uid", "fake-user-1")
    app = store.apps.get(app_id)
    if app is None:
        return Response("Unknown app", status=404, mimetype="text/plain")
    problem = None
    if not app.chat_tools and app.chat_tools_manifest_url:
        try:
            fetch_tools(store, app_id)
        except ManifestError as error:
            problem = str(error)
    history = [call for call in store.tool_calls if call.app_id == app_id and call.uid == uid]
    messages = [m for m in store.chat_messages.get(uid, []) if m["app_id"] == app_id]
    return render_template(
        "fake_omi/chat.html",
        app=app,
        uid=uid,
        history=history,
        messages=messages,
        problem=problem,
        page_token=store.issue_page_token(),
    )


@chat.post("/_fake/chat")
def chat_box_call() -> Any:
    """A tool call from the chat page. It needs the token of a page the fake served: another web
    page in the same browser cannot read one, so it cannot make the fake call a tool signed."""
    store: FakeOmiStore = current_app.extensions["fake_omi"]
    if not store.take_page_token(request.form.get("page_token", "")):
        return Response("This form is not from the fake OMI's chat page.", status=403, mimetype="text/plain")
    app_id, uid, name = request.form["app_id"], request.form["uid"], request.form["tool"]
    tool = next((t for t in store.apps[app_id].chat_tools if t["name"] == name), None)
    if tool is None:
        return Response("Unknown tool", status=404, mimetype="text/plain")
    arguments: dict[str, Any] = {}
    for param, schema in tool.get("parameters", {}).get("properties", {}).items():
        raw = request.form.get(f"arg-{param}", "").strip()
        if raw:
            arguments[param] = _typed(raw, schema.get("type"))
    call_tool(store, app_id, uid, name, arguments)
    return redirect(url_for("fake_chat.chat_box", app_id=app_id, uid=uid), code=303)


def _typed(raw: str, kind: str | None) -> Any:
    """A form field as the model would have sent it (the chat box has only text inputs)."""
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw  # sent as typed: the app's checks answer it
    if kind == "boolean":
        return raw.lower() in ("true", "yes", "1", "on")
    if kind == "array":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw
