"""The fake OMI's chat: reading an app's tool manifest, calling its tools as OMI's assistant does,
taking chat messages, and turning a transcript webhook's answer into notifications.

From OMI's code: ``backend/utils/retrieval/tools/app_tools.py`` (the call: payload
``{**arguments, uid, app_id, tool_name}`` as JSON, or as the query for GET; 120 s; what the
assistant is told for each answer), ``docs/doc/developer/apps/ChatTools.mdx`` (the manifest;
relative endpoints are resolved against the App Home URL), ``backend/utils/webhook_signing.py``
(the ``v2`` signature), ``backend/routers/notifications.py`` (chat messages) and
``backend/utils/app_integrations.py`` (a transcript answer's ``message`` and ``notification``).

The fake does not run a language model: a proactive notification is recorded with the prompt OMI
would give its model, placeholders filled, and the model's part is left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ..inbound.request_signing import signed_headers
from .api_routes import check_key, installed_and_within_limit
from .request_checks import ApiError, render_api_error
from .store import FakeApp, FakeOmiStore

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
        answer = requests.get(app.chat_tools_manifest_url, timeout=10, allow_redirects=False)
        manifest = answer.json()
    except (requests.RequestException, ValueError) as error:
        raise ManifestError(f"the manifest could not be read: {error}") from None
    if (
        answer.status_code != 200
        or not isinstance(manifest, dict)
        or not isinstance(manifest.get("tools"), list)
    ):
        raise ManifestError("the manifest must be a JSON object with a 'tools' list")
    tools = []
    base = app.app_home_url or app.chat_tools_manifest_url
    for tool in manifest["tools"]:
        if not isinstance(tool, dict) or not all(
            isinstance(tool.get(k), str) for k in ("name", "description", "endpoint")
        ):
            raise ManifestError("every tool needs a name, a description and an endpoint")
        tools.append(
            {
                **tool,
                "endpoint": urljoin(base, tool["endpoint"]),
                "method": tool.get("method", "POST").upper(),
            }
        )
    with store.lock:
        app.chat_tools = tools
        app.chat_messages = (
            manifest.get("chat_messages") if isinstance(manifest.get("chat_messages"), dict) else None
        )
    return tools


def call_tool(store: FakeOmiStore, app_id: str, uid: str, name: str, arguments: dict[str, Any]) -> ToolCall:
    """Call the app's tool ``name`` for ``uid`` as OMI's assistant does; returns what it was told."""
    app = store.apps[app_id]
    if not app.chat_tools:
        fetch_tools(store, app_id)
    tool = next((t for t in app.chat_tools if t["name"] == name), None)
    if tool is None:
        raise ManifestError(f"app {app_id} has no tool named {name!r}")
    payload = {**arguments, "uid": uid, "app_id": app_id, "tool_name": name}
    method, url = tool["method"], tool["endpoint"]
    if method in ("POST", "PUT", "PATCH"):
        body, query = json.dumps(payload, separators=(",", ":")).encode(), ""
    else:
        body, query = b"", urlencode(payload, doseq=True)
        url = f"{url}?{query}"
    headers = {"Content-Type": "application/json"}
    if app.tools_secret:
        path = urlsplit(url).path
        headers.update(signed_headers(app.tools_secret, method=method, path=path, query=query, body=body))
    try:
        answer = requests.request(method, url, data=body or None, headers=headers, timeout=TOOL_TIMEOUT)
        status: int | None = answer.status_code
        text = _assistant_text(name, answer)
    except requests.Timeout:
        status, text = (
            None,
            f"Error: Timeout calling {name}. The app endpoint did not respond within 120 seconds.",
        )
    except requests.ConnectionError:
        status, text = None, f"Error: Could not connect to {name}. The app endpoint may be unreachable."
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
    """``send_app_notification_to_user``: its checks in its order, then the shared hourly limit."""
    store: FakeOmiStore = current_app.extensions["fake_omi"]
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(
            422, [{"type": "dict_type", "loc": ["body"], "msg": "Input should be a valid dictionary"}]
        )
    if "aid" not in data:
        raise ApiError(400, "aid (app id) in request body is required")
    if not data.get("uid"):
        raise ApiError(400, "uid is required")
    uid, app_id = str(data["uid"]), str(data["aid"])
    check_key(app_id, "send_app_notification")
    headers = installed_and_within_limit(store, app_id, uid)
    if "message" not in data:  # OMI reads data['message'] unchecked: its unhandled 500
        return Response("Internal Server Error", status=500, mimetype="text/plain")
    message = str(data["message"])
    settings = store.apps[app_id].chat_messages or {}
    with store.lock:
        if settings.get("enabled"):
            target = "main" if settings.get("target") == "main" else "app"
            store.chat_messages.setdefault(uid, []).append(
                {"app_id": app_id, "message": message, "target": target}
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
        "fake_omi/chat.html", app=app, uid=uid, history=history, messages=messages, problem=problem
    )


@chat.post("/_fake/chat")
def chat_box_call() -> Any:
    store: FakeOmiStore = current_app.extensions["fake_omi"]
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
