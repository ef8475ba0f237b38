"""A chat tool declared as a typed Python function: its manifest entry and its argument checks.

The function's name, docstring and parameters (with their type hints, and descriptions given as
``Annotated[T, "description"]``) are the tool's definition: the manifest OMI reads is generated
from them, and every call is checked against them before the function runs. Three parameter names
are not arguments of the model's but filled in by flask-omi: ``uid`` (who is chatting),
``geolocation`` (OMI's cached location, or None) and ``user`` (the app's user for that uid, for
tools that require a sign-in). Framework-neutral.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flask_omi.errors import OmiConfigError
from flask_omi.validation import ascii_int

INJECTED = frozenset({"uid", "geolocation", "user"})
#: OMI registers a tool as ``{app_id}_{name}`` with the language model, whose tool names allow
#: 1 to 64 of these; OMI's app ids are 26-character ULIDs, which leaves 37 for the name
#: (``create_app_tool`` in ``backend/utils/retrieval/tools/app_tools.py``).
APP_ID_LENGTH, MODEL_NAME_LIMIT = 26, 64
MAX_NAME_LENGTH = MODEL_NAME_LIMIT - APP_ID_LENGTH - 1
_NAME_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NAME_LENGTH}}}")
_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
}
#: The methods OMI sends a payload with (``_tool_request``, 8d9b8ac8): GET in the query string,
#: the others as a JSON body. Any other method (DELETE...) gets no uid, app id or arguments at all.
METHODS = ("GET", "POST", "PUT", "PATCH")
#: Methods whose arguments OMI sends in the query string rather than a JSON body.
QUERY_METHODS = ("GET",)


class ToolError(Exception):
    """Raise it from a tool to answer OMI with this message as the tool's error (HTTP 400).

    The message is shown to the person chatting, so say what to do, and keep secrets out of it.
    """


class ToolCallError(ToolError):
    """A call that does not fit the tool's declaration (raised before the function runs)."""


class ToolDeclarationError(OmiConfigError, TypeError):
    """A tool OMI could not call as declared; raised by ``@omi_tools.tool`` at import time."""


@dataclass(frozen=True)
class Param:
    """One argument of a tool as declared by its type hint: its JSON type, whether it is required, its
    description."""

    name: str
    #: The JSON schema OMI's model sees; empty for an untyped parameter.
    schema: dict[str, Any]
    required: bool
    default: Any
    nullable: bool
    convert: Callable[[Any, bool], Any] = field(repr=False)

    @property
    def typed(self) -> bool:
        """``value`` as the function expects it, or a ``ToolCallError`` the model can act on."""
        return "type" in self.schema


@dataclass(frozen=True)
class ToolSpec:
    """A tool read from its function: what the manifest says of it and how a call is checked before the
    function runs."""

    name: str
    description: str
    method: str
    params: tuple[Param, ...]
    injected: frozenset[str]
    requires_sign_in: bool
    status_message: str | None
    func: Callable[..., Any] = field(repr=False)
    #: Decided once here: a coroutine function is run through Flask's ``ensure_sync``.
    is_async: bool = False

    #: The model's argument names.
    names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(p.name for p in self.params))

    def manifest_entry(self, endpoint: str) -> dict[str, Any]:
        """The tool's entry in OMI's manifest, with ``endpoint`` absolute (OMI concatenates a relative
        one to the App Home URL)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "endpoint": endpoint,
            "method": self.method,
            "parameters": {
                "properties": {p.name: p.schema for p in self.params},
                "required": [p.name for p in self.params if p.required],
            },
            "auth_required": self.requires_sign_in,
        }
        if self.status_message:
            entry["status_message"] = self.status_message
        return entry

    def bind(
        self, arguments: Mapping[str, Any], *, from_query: bool, ignore: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The keyword arguments for the function; raises :class:`ToolCallError` for a bad call.

        ``from_query``: the values came from a query string (strings, lists for repeated names).
        ``ignore``: names in ``arguments`` that are not the model's (OMI's own call fields).
        """
        unknown = sorted(name for name in arguments if name not in self.names and name not in ignore)
        if unknown:
            raise ToolCallError(f"{self.name} takes no argument named {unknown[0]!r}.")
        bound: dict[str, Any] = {}
        for param in self.params:
            value = arguments.get(param.name)
            if from_query and isinstance(value, list) and param.schema.get("type") != "array":
                if len(value) > 1:
                    raise ToolCallError(f"{param.name!r} was given more than once.")
                value = value[0] if value else None
            if value is None:
                if param.required and not param.nullable:
                    raise ToolCallError(f"{self.name} needs the argument {param.name!r}.")
                if param.name in arguments and param.nullable:
                    bound[param.name] = None
                continue  # not given: the function's default applies
            bound[param.name] = param.convert(value, from_query)
        return bound


def describe(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    method: str = "POST",
    requires_sign_in: bool = False,
    status_message: str | None = None,
) -> ToolSpec:
    """Read a tool's definition from ``func``; raises :class:`ToolDeclarationError` for what OMI
    could not call."""
    tool_name = name or func.__name__
    if not _NAME_RE.fullmatch(tool_name):
        raise ToolDeclarationError(
            f"tool name {tool_name!r}: use 1 to {MAX_NAME_LENGTH} of A-Z a-z 0-9 _ - (OMI registers it "
            f"with its model as '<26-character app id>_<name>', and the model allows {MODEL_NAME_LIMIT})"
        )
    method = method.upper()
    if method not in METHODS:
        raise ToolDeclarationError(
            f"tool {tool_name}: method must be one of {', '.join(METHODS)}; OMI sends a {method} call "
            "with no uid, app id or arguments, so such a tool could never know who asked for what"
        )
    hints = typing.get_type_hints(func, include_extras=True)
    params: list[Param] = []
    injected: set[str] = set()
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.POSITIONAL_ONLY):
            raise ToolDeclarationError(
                f"tool {tool_name}: parameter {parameter.name} must be a plain named one"
            )
        if parameter.name in INJECTED:
            injected.add(parameter.name)
            continue
        params.append(_param(tool_name, parameter, hints.get(parameter.name, inspect.Parameter.empty)))
    text = description if description is not None else _unwrap(inspect.getdoc(func) or "")
    if not text.strip():
        raise ToolDeclarationError(
            f"tool {tool_name} has no description: OMI's assistant picks tools by it. Write a docstring "
            "saying what the tool does and when to use it, or pass description=..."
        )
    return ToolSpec(
        name=tool_name,
        description=text.strip(),
        method=method,
        params=tuple(params),
        injected=frozenset(injected),
        requires_sign_in=requires_sign_in,
        status_message=status_message,
        func=func,
        is_async=inspect.iscoroutinefunction(func),
    )


def _unwrap(docstring: str) -> str:
    """A docstring as the model reads it best: wrapped lines joined, paragraphs kept."""
    paragraphs = docstring.split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines() if line.strip()) for p in paragraphs)


def _param(tool: str, parameter: inspect.Parameter, hint: Any) -> Param:
    required = parameter.default is inspect.Parameter.empty
    default = None if required else parameter.default
    description = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        description = next((extra for extra in extras if isinstance(extra, str)), None)
    nullable = False
    args = typing.get_args(hint)
    if (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) != 1:
            raise ToolDeclarationError(f"tool {tool}: parameter {parameter.name} may be one type or None")
        hint, nullable = rest[0], True
    where = f"tool {tool}: parameter {parameter.name}"
    if hint is inspect.Parameter.empty:
        raise ToolDeclarationError(
            f"{where} has no type hint: OMI's model would send it as text and nothing could check it. "
            f"Annotate it, e.g. {parameter.name}: str (or int, float, bool, list[str], dict, Literal[...])."
        )
    schema, convert = _schema(where, parameter.name, hint)
    shape = _shape_in_words(schema)
    text = " ".join(part for part in (description, shape) if part)
    if text:
        schema = {**schema, "description": text}
    accepts_none = nullable or (not required and default is None)
    return Param(parameter.name, schema, required, default, accepts_none, convert)


def _schema(where: str, name: str, hint: Any) -> tuple[dict[str, Any], Callable[[Any, bool], Any]]:
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if not all(isinstance(choice, str) for choice in choices):
            raise ToolDeclarationError(f"{where}: Literal choices must be strings")
        return {"type": "string", "enum": list(choices)}, _choice(name, choices)
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (str,)
        item_schema, item_convert = _schema(where, name, item)
        if item_schema.get("type") in ("array", "object") or "contentMediaType" in item_schema:
            raise ToolDeclarationError(f"{where}: list items must be plain values")
        return {"type": "array", "items": item_schema}, _list_of(name, item_convert)
    origin = typing.get_origin(hint) or hint
    if origin is dict:
        # OMI shows the model an object as a string, so the model sends text: declared as such,
        # and read back as a JSON object here.
        return {"type": "string", "contentMediaType": "application/json"}, _json_object(name)
    if origin in _JSON_TYPES:
        return {"type": _JSON_TYPES[origin]}, _SCALARS[origin](name)
    raise ToolDeclarationError(
        f"{where}: {hint!r} is not a type OMI's model can send (str, int, float, bool, list, dict, Literal)"
    )


def _shape_in_words(schema: dict[str, Any]) -> str:
    """What OMI drops from a schema before its model sees it (``enum``, ``items``, ``object``),
    said in the description instead, which it keeps."""
    if "enum" in schema:
        return "One of: " + ", ".join(schema["enum"]) + "."
    if schema.get("type") == "array":
        item = schema.get("items", {})
        if "enum" in item:
            return "A list; each one of: " + ", ".join(item["enum"]) + "."
        return f"A list of {_PLURALS.get(item.get('type', 'string'), 'values')}."
    if schema.get("contentMediaType") == "application/json":
        return "A JSON object, written as text."
    return ""


_PLURALS = {
    "string": "texts",
    "integer": "whole numbers",
    "number": "numbers",
    "boolean": "true/false values",
}


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any, bool], Any]:
    def convert(value: Any, from_query: bool) -> Any:
        if value not in choices:
            raise ToolCallError(f"{name!r} must be one of {', '.join(choices)}.")
        return value

    return convert


def _list_of(name: str, item: Callable[[Any, bool], Any]) -> Callable[[Any, bool], Any]:
    def convert(value: Any, from_query: bool) -> Any:
        if not isinstance(value, list):
            raise ToolCallError(f"{name!r} must be a list.")
        return [item(element, from_query) for element in value]

    return convert


def _string(name: str) -> Callable[[Any, bool], Any]:
    def convert(value: Any, from_query: bool) -> Any:
        if not isinstance(value, str):
            raise ToolCallError(f"{name!r} must be text.")
        return value

    return convert


def _integer(name: str) -> Callable[[Any, bool], Any]:
    def convert(value: Any, from_query: bool) -> Any:
        if from_query and isinstance(value, str) and (parsed := ascii_int(value)) is not None:
            return parsed
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ToolCallError(f"{name!r} must be a whole number.")

    return convert


def _number(name: str) -> Callable[[Any, bool], Any]:
    def convert(value: Any, from_query: bool) -> Any:
        if from_query and isinstance(value, str) and value.isascii():
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ToolCallError(f"{name!r} must be a number.")

    return convert


def _boolean(name: str) -> Callable[[Any, bool], Any]:
    def convert(value: Any, from_query: bool) -> Any:
        if from_query and value in ("true", "false"):
            return value == "true"
        if isinstance(value, bool):
            return value
        raise ToolCallError(f"{name!r} must be true or false.")

    return convert


#: Bounds on a JSON object given as text: within a call's size, and shallow enough to read safely.
MAX_JSON_ARGUMENT_CHARS, MAX_JSON_ARGUMENT_DEPTH = 100_000, 32


def _json_object(name: str) -> Callable[[Any, bool], Any]:
    def convert(value: Any, from_query: bool) -> Any:
        if isinstance(value, str) and len(value) <= MAX_JSON_ARGUMENT_CHARS:
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                raise ToolCallError(f"{name!r} must be a JSON object, written as text.") from None
        if not isinstance(value, dict) or _depth(value) > MAX_JSON_ARGUMENT_DEPTH:
            raise ToolCallError(f"{name!r} must be a JSON object, written as text.")
        return value

    return convert


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_ARGUMENT_DEPTH:
        return level
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return max((_depth(child, level + 1) for child in children), default=level)


_SCALARS: dict[type, Callable[[str], Callable[[Any, bool], Any]]] = {
    str: _string,
    int: _integer,
    float: _number,
    bool: _boolean,
}
