"""Per-call cost of what OMI sends an app, signed: a chat-tool call (``v2``) and a live transcript
webhook (``v1``), each against a bare Flask route that reads the same JSON body and answers JSON
(the floor any handler pays). Both flask-omi variants run with their defaults: the replay and
de-duplication ledgers are on, so every call carries a new delivery id, signed beforehand.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.test import EnvironBuilder

from flask_omi import OmiTools, OmiWebhooks
from flask_omi.inbound.request_signing import signed_headers
from flask_omi.inbound.signing import signature_header

from .harness import Browser, interleaved

SECRET = "whsec_benchmark_secret"  # noqa: S105 (a benchmark's own)
NOW = 1_800_000_000
UID = "benchmark_user"
TOOL_BODY = json.dumps(
    {"uid": UID, "app_id": "bench-app", "tool_name": "search", "query": "tea", "limit": 3}
).encode()
TRANSCRIPT_BODY = json.dumps(
    {
        "session_id": UID,
        "segments": [
            {"text": f"segment {n}", "speaker": "SPEAKER_0", "is_user": True, "start": n, "end": n + 1}
            for n in range(5)
        ],
    }
).encode()


def _floor_app() -> Flask:
    app = Flask("floor")

    @app.post("/floor")
    def floor() -> Any:
        data = json.loads(request.get_data())
        return jsonify(result=f"{len(data)} fields")

    return app


def _tools_app() -> Flask:
    app = Flask("tools")
    app.config.update(OMI_APP_ID="bench-app", OMI_SIGNING_SECRET=SECRET)
    tools = OmiTools()

    @tools.tool
    def search(query: str, limit: int = 5) -> str:
        """Search."""
        return f"{limit} results for {query}"

    app.register_blueprint(tools)
    app.extensions["omi"].tools.clock = lambda: float(NOW)
    return app


def _webhooks_app() -> Flask:
    app = Flask("webhooks")
    app.config.update(OMI_SIGNING_SECRET=SECRET)
    hooks = OmiWebhooks()
    hooks.on_transcript(lambda batch: None)
    app.register_blueprint(hooks)
    app.extensions["omi"].webhooks.clock = lambda: float(NOW)
    return app


def _template(path: str, body: bytes) -> dict[str, Any]:
    builder = EnvironBuilder(
        path=path, method="POST", data=body, content_type="application/json", base_url="https://app.example"
    )
    try:
        return builder.get_environ()
    finally:
        builder.close()


def _caller(
    app: Flask,
    template: dict[str, Any],
    body: bytes,
    headers: Iterator[dict[str, str]],
    bodies: Iterator[bytes] | None = None,
) -> Callable[[int], None]:
    """``n`` calls, each with a fresh body stream and the next signed headers (and the next body,
    when ``bodies`` are given: deliveries OMI signs are distinct, and a repeated one is refused)."""
    browser = Browser(app)

    def run(n: int) -> None:
        for _ in range(n):
            env = template.copy()
            env["wsgi.input"] = io.BytesIO(next(bodies) if bodies is not None else body)
            for name, value in next(headers).items():
                env["HTTP_" + name.upper().replace("-", "_")] = value
            status, _ = browser.call(env)
            if not status.startswith("200"):
                raise RuntimeError(f"{app.name}: {status}")

    return run


def _signed_before(count: int, make: Callable[[], dict[str, str]]) -> Iterator[dict[str, str]]:
    """Every call's headers, made before any call is timed (signing is OMI's work, not the app's)."""
    return iter([make() for _ in range(count)])


def _tool_call() -> dict[str, str]:
    return signed_headers(
        SECRET, method="POST", path="/omi/tools/search", query="", body=TOOL_BODY, timestamp=NOW
    )


def _transcript_body(n: int) -> bytes:
    """The n-th transcript batch: the same size as TRANSCRIPT_BODY, its session id numbered."""
    body = TRANSCRIPT_BODY.replace(f'"{UID}"'.encode(), f'"bench_{n:08d}"'.encode())
    assert len(body) == len(TRANSCRIPT_BODY)
    return body


def _webhook_deliveries(count: int) -> tuple[Iterator[bytes], Iterator[dict[str, str]]]:
    """``count`` distinct deliveries, signed before any call is timed, as OMI signs each one."""
    bodies = [_transcript_body(n) for n in range(count)]
    headers = [
        {
            "X-Omi-Signature": signature_header(SECRET, UID, body, NOW),
            "X-Omi-Event": "realtime_transcript",
            "X-Omi-Delivery": str(uuid.uuid4()),
        }
        for body in bodies
    ]
    return iter(bodies), iter(headers)


def _same_shape() -> dict[str, str]:
    """The floor gets as many headers, so both sides pay alike for building the request."""
    return {"X-Omi-Signature": "t=0,v1=0", "X-Omi-Event": "floor", "X-Omi-Delivery": str(uuid.uuid4())}


def measure(rounds: int, iterations: int) -> dict[str, float]:
    """Median seconds per call of each variant."""
    variants = callers(calls=iterations // 10 + rounds * iterations + 1)  # warm-up, then every round
    return interleaved(variants, rounds=rounds, iterations=iterations)


def callers(calls: int, only: str | None = None) -> dict[str, Callable[[int], None]]:
    """Each variant, able to serve ``calls`` calls in all (all four are built whatever ``only``
    says: they are small)."""
    floor = _floor_app()
    webhook_bodies, webhook_headers = _webhook_deliveries(calls)
    return {
        "bare JSON route, tool body (floor)": _caller(
            floor, _template("/floor", TOOL_BODY), TOOL_BODY, _signed_before(calls, _same_shape)
        ),
        "signed chat-tool call": _caller(
            _tools_app(),
            _template("/omi/tools/search", TOOL_BODY),
            TOOL_BODY,
            _signed_before(calls, _tool_call),
        ),
        "bare JSON route, transcript body (floor)": _caller(
            floor, _template("/floor", TRANSCRIPT_BODY), TRANSCRIPT_BODY, _signed_before(calls, _same_shape)
        ),
        "signed transcript webhook": _caller(
            _webhooks_app(),
            _template("/omi/webhooks/transcript?uid=" + UID, TRANSCRIPT_BODY),
            TRANSCRIPT_BODY,
            webhook_headers,
            webhook_bodies,
        ),
    }
