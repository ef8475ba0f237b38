"""``omi_tools``: chat tools that OMI's assistant calls while a person chats in OMI.

Declare a tool with ``@omi_tools.tool`` on a typed function; the manifest OMI reads (at
``/.well-known/omi-tools.json``) is generated from it. A call is checked in this order, and the
function runs only if all pass: the tool and its method (404/405), size (413), the ``v2``
signature when ``OMI_SIGNING_SECRET`` is set (401) and that it was not received before (409), the
uid and app id (400), the arguments against the declaration (400), a prior sign-in for tools that
require one (400). Answers are what OMI expects (``backend/utils/retrieval/tools/app_tools.py``):
``{"result": ...}``, or ``{"error": "..."}``, whose text OMI's assistant relays to the person. A
function that raises is logged and answered 500 with a generic error; one that raises
:class:`ToolError` is answered 400 with its message.
"""

from __future__ import annotations

import ast
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload

from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request, url_for
from flask.sansio.blueprints import BlueprintSetupState

from flask_omi._registration import HandlersBeforeRegistration, claim_extension_slot, record_of
from flask_omi.cli import add_cli
from flask_omi.config import external_url, set_up, signing_secrets, store_for
from flask_omi.errors import InboundPayloadError, InboundSignatureError, OmiConfigError, OmiInboundError
from flask_omi.extension import get_extension
from flask_omi.inbound.csrf import exempt_from_csrf
from flask_omi.inbound.protocol import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TOOL_EVENT
from flask_omi.inbound.request import header, json_body, query_is_utf8, read_body
from flask_omi.inbound.request_signing import verify_request_signature
from flask_omi.inbound.tool_spec import METHODS, QUERY_METHODS, ToolCallError, ToolError, ToolSpec, describe
from flask_omi.stores import KeyStore, PerProcessNotice, is_per_process
from flask_omi.validation import is_valid_uid

logger = logging.getLogger("flask_omi.tools")

F = TypeVar("F", bound=Callable[..., Any])
#: Fields OMI adds to every call besides the model's arguments.
CALL_FIELDS = frozenset({"uid", "app_id", "tool_name", "geolocation"})


@dataclass
class ToolsState:
    """The tools part of the app's record (``app.extensions["omi"].tools``)."""

    endpoint_prefix: str
    #: Where received calls are remembered to refuse replays (``OMI_TOOLS_REPLAY_STORE``), or None.
    ledger: KeyStore | None
    clock: Callable[[], float]
    #: The declared tools, by name: this app's copy of the blueprint's (the sign-in's chat
    #: confirmation adds its tool here).
    specs: dict[str, ToolSpec]
    #: Said once when the replay store is per process and the server runs several processes.
    notice: PerProcessNotice | None = None
    #: OMI's manifest setting for chat messages (``OmiTools(chat_messages=...)``).
    chat_messages: dict[str, Any] | None = None
    #: Made by the sign-in for its chat confirmation tool in an app without tools of its own: an
    #: ``OmiTools`` registered later takes its place (its routes stay as aliases serving the same).
    stand_in: bool = False


class OmiTools(HandlersBeforeRegistration, Blueprint):
    """The manifest at ``/.well-known/omi-tools.json`` and the tools under ``/omi/tools/<name>``."""

    ToolError = ToolError

    def __init__(
        self,
        name: str = "omi_tools",
        url_prefix: str | None = None,
        *,
        manifest_path: str = "/.well-known/omi-tools.json",
        tools_path: str = "/omi/tools",
        chat_messages: dict[str, Any] | None = None,
    ) -> None:
        """``chat_messages``: OMI's manifest setting for :meth:`OmiClient.send_chat_message`, e.g.
        ``{"enabled": True, "target": "app", "notify": False}``."""
        super().__init__(name, "flask_omi", url_prefix=url_prefix)
        self.specs: dict[str, ToolSpec] = {}
        self.chat_messages = chat_messages
        self.add_url_rule(manifest_path, "manifest", self._manifest, methods=["GET"])
        self.add_url_rule(f"{tools_path.rstrip('/')}/<tool_name>", "call", self._call, methods=list(METHODS))
        self.register_error_handler(OmiInboundError, _render_refusal)
        self.record_once(self._set_up_app)

    @overload
    def tool(self, func: F) -> F: ...

    @overload
    def tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        method: str = "POST",
        requires_sign_in: bool = False,
        status_message: str | None = None,
    ) -> Callable[[F], F]: ...

    def tool(self, func: F | None = None, **options: Any) -> F | Callable[[F], F]:
        """Declare a chat tool, as ``@omi_tools.tool`` or ``@omi_tools.tool(method="GET", ...)``.

        The description is the docstring unless given; ``requires_sign_in`` admits only uids the
        app's ``user_loader`` knows, and passes that user as the ``user`` argument.
        """

        def register(function: F) -> F:
            self._check_handlers_open("tool")
            spec = describe(function, **options)
            if spec.name in self.specs:
                raise OmiConfigError(f"a tool named {spec.name!r} is already declared")
            self.specs[spec.name] = spec
            return function

        return register(func) if func is not None else register

    def _set_up_app(self, state: BlueprintSetupState, stand_in: bool = False) -> None:
        self._close_handlers()
        app = state.app
        existing: ToolsState | None = getattr(app.extensions.get("omi"), "tools", None)
        if existing is None or not existing.stand_in:
            claim_extension_slot(app, "tools", "OmiTools")
        set_up(app)
        exempt_from_csrf(app, self)
        if any(spec.requires_sign_in or "user" in spec.injected for spec in self.specs.values()):
            handlers = record_of(app).signin
            if handlers is None or handlers.user_loader() is None:
                raise OmiConfigError(
                    "A tool has requires_sign_in=True, which looks the uid up with the user_loader of "
                    "the app's OmiBlueprint (or the Flask-Login bridge's load_user): set one up before "
                    "registering OmiTools."
                )
        prefix = f"{state.name_prefix}.{state.name}".lstrip(".")
        ledger = store_for(app.config, "OMI_TOOLS_REPLAY_STORE")
        notice = PerProcessNotice(
            "OMI_TOOLS_REPLAY_STORE",
            "a signed call replayed to another worker runs again",
            is_per_process(ledger),
        )
        specs = dict(self.specs)
        if existing is not None:  # the sign-in's stand-in: this app's own tools take its place
            for name in specs.keys() & existing.specs.keys():
                raise OmiConfigError(f"a tool named {name!r} is already declared (flask-omi needs it)")
            specs.update(existing.specs)
        record_of(app).tools = ToolsState(
            endpoint_prefix=prefix,
            ledger=ledger,
            clock=time.time,
            specs=specs,
            notice=notice,
            chat_messages=self.chat_messages,
            stand_in=stand_in,
        )
        add_cli(app)

    # -- routes -------------------------------------------------------------------------------------
    def _manifest(self) -> Response:
        state: ToolsState = current_app.extensions["omi"].tools
        prefix = state.endpoint_prefix
        tools = [
            # Absolute: OMI turns a relative endpoint into App Home URL + path by concatenation
            # (apps.py _process_chat_tools_manifest, 0045c1a9), which is not where the tool is.
            spec.manifest_entry(
                external_url(current_app.config, url_for(f"{prefix}.call", tool_name=name))
                or url_for(f"{prefix}.call", tool_name=name, _external=True)
            )
            for name, spec in state.specs.items()
        ]
        manifest: dict[str, Any] = {"tools": tools}
        if state.chat_messages is not None:
            manifest["chat_messages"] = state.chat_messages
        return jsonify(manifest)

    def _call(self, tool_name: str) -> Response:
        # Each proxy is resolved once: a call passes through a dozen checks (see benchmarks/).
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        req: Request = request._get_current_object()  # type: ignore[attr-defined]
        spec = app.extensions["omi"].tools.specs.get(tool_name)
        if spec is None:
            return _error(app, 404, f"This app has no tool named {tool_name!r}.")
        if req.method != spec.method:
            return _error(app, 405, f"{tool_name} is called with {spec.method}.")
        body = read_body(req, int(app.config["OMI_TOOLS_MAX_BYTES"]), "call")
        # What is signed must be what the view reads: a query that is not UTF-8 is decoded one way
        # by the signature check (with U+FFFD) and another by Werkzeug, so it is refused first.
        if not query_is_utf8(req.query_string):
            raise InboundPayloadError("query_not_utf8", "The query string must be UTF-8.")
        _check_signature(app, req, body)
        from_query = spec.method in QUERY_METHODS
        payload = _payload(req, body, from_query)
        try:
            uid = _caller(app, payload, spec, from_query)
            arguments = spec.bind(payload, from_query=from_query, ignore=CALL_FIELDS)
            arguments.update(_injected(app, spec, uid, payload))
        except ToolError as error:
            logger.info("OMI tool call refused: %s: %s", tool_name, error)
            return _error(app, 400, str(error))
        return _run(app, spec, arguments)


def _error(app: Flask, status: int, message: str) -> Response:
    response = cast(Response, app.json.response(error=message))
    response.status_code = status
    return response


def _render_refusal(error: OmiInboundError) -> Response:
    level = logging.WARNING if error.status == 401 else logging.INFO
    logger.log(level, "OMI tool call refused: %s", error.error_code)
    return _error(current_app._get_current_object(), error.status, error.description)  # type: ignore[attr-defined]


def _check_signature(app: Flask, req: Request, body: bytes) -> None:
    """Verify ``v2`` when a secret is set, and refuse a delivery seen before (a replay)."""
    config = app.config
    secrets = signing_secrets(config)
    if not secrets:
        return
    delivery, event = header(req, DELIVERY_HEADER) or "", header(req, EVENT_HEADER) or ""
    if event != TOOL_EVENT or not delivery:
        raise InboundSignatureError("signature_missing", "A tool call must be signed by OMI.")
    state: ToolsState = app.extensions["omi"].tools
    tolerance = int(config["OMI_SIGNATURE_TOLERANCE"])
    try:
        verify_request_signature(
            secrets,
            header(req, SIGNATURE_HEADER),
            delivery_id=delivery,
            event=event,
            method=req.method,
            path=req.script_root + req.path,
            query=req.query_string.decode("latin-1"),
            body=body,
            now=state.clock(),
            tolerance=tolerance,
        )
    except ValueError:
        raise InboundSignatureError("signature_malformed", "The signed headers are not usable.") from None
    if state.ledger is not None:
        if state.notice is not None:
            state.notice.check(req.environ.get("wsgi.multiprocess"), logger)
        # A replay is refused for twice the tolerance: past that, its signature has expired.
        try:
            first = state.ledger.claim(delivery, 2 * tolerance) == "new"
        except Exception as error:  # fail closed: a call that cannot be checked is not run
            logger.error("OMI tool call refused: the replay store (OMI_TOOLS_REPLAY_STORE) failed: %r", error)
            raise OmiInboundError("replay_check_unavailable", "Please try again shortly.", 503) from None
        if not first:
            raise OmiInboundError("replayed", "This tool call was already received.", 409)


def _payload(req: Request, body: bytes, from_query: bool) -> dict[str, Any]:
    if from_query:
        args = req.args
        return {name: args.getlist(name) for name in args}
    data = json_body(body)
    if not isinstance(data, dict):
        raise InboundPayloadError("payload_invalid", "A tool call must be a JSON object.")
    return data


def _given_once(value: Any) -> Any:
    """A query parameter given once; repeated (or absent) counts as not given."""
    if isinstance(value, list):
        return value[0] if len(value) == 1 else None
    return value


def _caller(app: Flask, payload: dict[str, Any], spec: ToolSpec, from_query: bool) -> str:
    uid, app_id, tool = payload.get("uid"), payload.get("app_id"), payload.get("tool_name")
    if from_query:
        uid, app_id, tool = _given_once(uid), _given_once(app_id), _given_once(tool)
    if not is_valid_uid(uid):
        raise ToolCallError("The call carries no valid uid.")
    own_id = app.config.get("OMI_APP_ID")
    if own_id and app_id not in (None, own_id):
        raise ToolCallError("This call is for another OMI app.")
    if tool not in (None, spec.name):
        raise ToolCallError("The call names another tool.")
    return str(uid)


def _injected(app: Flask, spec: ToolSpec, uid: str, payload: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "uid" in spec.injected:
        values["uid"] = uid
    if "geolocation" in spec.injected:
        values["geolocation"] = _geolocation(payload.get("geolocation"))
    if spec.requires_sign_in or "user" in spec.injected:
        extension = get_extension(app)
        loader = extension.user_loader()
        user = app.ensure_sync(loader)(uid) if loader is not None else None
        if spec.requires_sign_in and user is None:
            # A link only from the configured public URL: the call's Host header is the caller's.
            sign_in = external_url(app.config, url_for(extension.endpoint("login")))
            link = f": {sign_in}" if sign_in else ""
            raise ToolError(f"Sign in to this app with OMI first, then ask again{link}")
        if "user" in spec.injected:
            values["user"] = user
    return values


#: OMI's cached location is a small flat dict; anything longer is not one.
MAX_GEOLOCATION_CHARS = 2000


def _geolocation(value: Any) -> dict[str, Any] | None:
    """OMI's cached location of the user, or None. A POST call carries it as a JSON object; a GET
    call as the dict's Python ``repr`` in the query (httpx writes a dict parameter with ``str()``),
    which is read as a literal, never evaluated as code."""
    value = _given_once(value)
    if isinstance(value, str) and value.startswith("{") and len(value) <= MAX_GEOLOCATION_CHARS:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return value
    return None


def _run(app: Flask, spec: ToolSpec, arguments: dict[str, Any]) -> Response:
    try:
        func = app.ensure_sync(spec.func) if spec.is_async else spec.func
        result = json.dumps({"result": func(**arguments)}, ensure_ascii=False)
        return app.response_class(result + "\n", mimetype="application/json")
    except ToolError as error:
        logger.info("OMI tool %s answered an error", spec.name)
        return _error(app, 400, str(error))
    except Exception:
        logger.exception("OMI tool %s failed", spec.name)
        return _error(app, 500, f"{spec.name} failed. Please try again later.")


class _StandInTools(OmiTools):
    """The tools of an app that declares none, made by the sign-in for its chat confirmation."""

    def _set_up_app(self, state: BlueprintSetupState, stand_in: bool = True) -> None:
        super()._set_up_app(state, stand_in=True)


#: The default instance most apps register.
omi_tools = OmiTools()
