"""Request validation the way OMI's FastAPI app does it, before any handler code runs.

FastAPI validates every query parameter and the JSON body against the endpoint's declared types
(Pydantic v2) and answers 422 with *all* problems at once, as ``{"detail": [{"type", "loc", "msg",
"input"}, ...]}``, before the handler checks the API key. The fake collects problems the same way
and raises once. Messages are Pydantic v2's wording.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Response, jsonify, request


class ApiError(Exception):
    """An answer of OMI's: ``{"detail": detail}`` with ``status`` and optional headers."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def render_api_error(error: ApiError) -> Response:
    """OMI's error body: ``{"detail": ...}`` with the status and headers."""
    response = jsonify(detail=error.detail)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}
_MISSING = object()


class _Unread(dict):  # type: ignore[type-arg]
    """Stands for a body that could not be read: its fields are not checked (FastAPI reports only
    the body itself then)."""


_NO_BODY = _Unread()


def _as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError("string_type", "Input should be a valid string")


def _as_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(
                "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
            ) from None
    raise TypeError("int_type", "Input should be a valid integer")


def _as_number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(
                "float_parsing", "Input should be a valid number, unable to parse string as a number"
            ) from None
    raise TypeError("float_type", "Input should be a valid number")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError("bool_parsing", "Input should be a valid boolean, unable to interpret input")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    raise TypeError("list_type", "Input should be a valid list")


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise TypeError("dict_type", "Input should be a valid dictionary")


_LAX: dict[type, Any] = {
    str: _as_str,
    int: _as_int,
    float: _as_number,
    bool: _as_bool,
    list: _as_list,
    dict: _as_dict,
}


class Problems:
    """Collects validation problems; :meth:`check` raises them as one 422."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, kind: str, loc: Iterable[str | int], msg: str, value: Any = None) -> None:
        """Record one validation problem, in FastAPI's shape."""
        self.items.append({"type": kind, "loc": list(loc), "msg": msg, "input": value})

    def check(self) -> None:
        """Answer 422 with every problem found, as FastAPI does before the handler runs."""
        if self.items:
            raise ApiError(422, self.items)

    # -- query parameters -----------------------------------------------------------------------
    def query_str(self, name: str, *, required: bool = False) -> str | None:
        """A text query parameter, as FastAPI reads it."""
        value = request.args.get(name)
        if value is None and required:
            self.add("missing", ("query", name), "Field required")
        return value

    def query_int(self, name: str, default: int, *, ge: int | None = None, le: int | None = None) -> int:
        """An integer query parameter within bounds, as FastAPI validates it."""
        raw = request.args.get(name)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            self.add(
                "int_parsing",
                ("query", name),
                "Input should be a valid integer, unable to parse string as an integer",
                raw,
            )
            return default
        if ge is not None and value < ge:
            self.add(
                "greater_than_equal", ("query", name), f"Input should be greater than or equal to {ge}", raw
            )
        elif le is not None and value > le:
            self.add("less_than_equal", ("query", name), f"Input should be less than or equal to {le}", raw)
        return value

    def query_bool(self, name: str, default: bool | None) -> bool | None:
        """A boolean query parameter, with the spellings FastAPI accepts."""
        raw = request.args.get(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        self.add(
            "bool_parsing", ("query", name), "Input should be a valid boolean, unable to interpret input", raw
        )
        return default

    # -- the JSON body --------------------------------------------------------------------------
    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; a missing, broken or non-object body is a problem."""
        raw = request.get_data()
        if not raw:
            self.add("missing", ("body",), "Field required")
            return _NO_BODY
        body = request.get_json(silent=True)
        if body is None and raw.strip() != b"null":
            self.add("json_invalid", ("body", 0), "JSON decode error", {})
            return _NO_BODY
        if not isinstance(body, dict):
            self.add(
                "model_attributes_type",
                ("body",),
                "Input should be a valid dictionary or object to extract fields from",
                body,
            )
            return _NO_BODY
        return body

    def field(
        self,
        data: dict[str, Any],
        name: str,
        kind: type,
        *,
        loc: tuple[str | int, ...] = ("body",),
        required: bool = False,
        nullable: bool = True,
        default: Any = None,
    ) -> Any:
        """One field of a body model, converted as Pydantic's lax mode does (``"10"`` is an int,
        ``"yes"`` a bool, but ``5`` is not a string). ``required`` means the key must be present;
        it may still be null when ``nullable``: Pydantic v2's ``Optional[X]`` with no default."""
        if data is _NO_BODY:
            return default
        value = data.get(name, _MISSING)
        where = (*loc, name)
        if value is _MISSING:
            if required:
                self.add("missing", where, "Field required", data)
            return default
        if value is None and nullable:
            return None
        try:
            return _LAX[kind](value)
        except (TypeError, ValueError) as problem:
            kind_name, message = problem.args
            self.add(kind_name, where, message, value)
            return default

    def choice(self, data: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
        """A value among an enum's, as pydantic validates it."""
        value = data.get(name, default)
        if value not in choices:
            listed = ", ".join(f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'"
            self.add("enum", ("body", name), f"Input should be {listed}", value)
            return default
        return str(value)

    def datetime_field(self, data: dict[str, Any], name: str) -> datetime | None:
        """A date-time field as pydantic parses it (ISO 8601, or a date)."""
        value = data.get(name)
        if value is None:
            return None
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            self.add("datetime_from_date_parsing", ("body", name), "Input should be a valid datetime", value)
            return None
