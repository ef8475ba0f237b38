"""Per-delivery cost of every signed webhook OMI sends, against a bare JSON route reading the same
body: a conversation (with de-duplication off, in process and in Redis) and live transcripts of 1
to 500 segments. Counted in instructions (``benchmarks/instructions.py``), which repeat where
wall time does not.

Every delivery is distinct and signed before anything is counted, as OMI signs each one; the
handlers do nothing, so what is counted is what flask-omi adds. The Redis variant needs a
redis-server: ``BENCH_REDIS_URL`` names it (``python -m benchmarks`` starts one).
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from flask_omi import OmiWebhooks
from flask_omi.inbound.signing import signature_header
from flask_omi.testing.fake.store import FakeOmiStore

from .harness import Browser
from .signed_calls import _floor_app

SECRET = "whsec_benchmark_secret"  # noqa: S105 (a benchmark's own)
NOW = 1_800_000_000
UID = "benchmark_user"
SEGMENT_COUNTS = (1, 5, 50, 500)
CONVERSATION_VARIANTS = (
    "bare JSON route, conversation body (floor)",
    "signed conversation webhook, no de-duplication",
    "signed conversation webhook, de-duplication in process",
    "signed conversation webhook, de-duplication in Redis",
)
TRANSCRIPT_VARIANTS = tuple(
    name
    for n in SEGMENT_COUNTS
    for name in (
        f"bare JSON route, {n}-segment transcript (floor)",
        f"signed transcript webhook, {n} segments",
    )
)
VARIANTS = CONVERSATION_VARIANTS + TRANSCRIPT_VARIANTS


def conversation_body(number: int) -> bytes:
    """A conversation as OMI sends it (the fake OMI's shape), 20 segments long."""
    words = ["we", "talked", "about", "the", "trip", "and", "what", "to", "pack", "for", "the", "mountains"]
    conversation = FakeOmiStore().make_conversation(" ".join(words))
    conversation["id"] = f"conversation-{number:08d}"
    conversation["transcript_segments"] = [
        {"text": " ".join(words[: 4 + n % 8]), "speaker": f"SPEAKER_{n % 2}", "is_user": n % 2 == 0,
         "start": float(n), "end": n + 0.9}
        for n in range(20)
    ]  # fmt: skip
    return json.dumps(conversation, separators=(",", ":")).encode()


def transcript_body(segments: int, number: int) -> bytes:
    return json.dumps(
        {
            "session_id": f"session-{number:08d}",
            "segments": [
                {
                    "text": f"segment {n} of the live transcript",
                    "speaker": "SPEAKER_0",
                    "is_user": True,
                    "start": float(n),
                    "end": n + 0.5,
                }
                for n in range(segments)
            ],
        },
        separators=(",", ":"),
    ).encode()


def _webhooks_app(dedup: object) -> Flask:
    app = Flask("webhooks")
    app.config.update(OMI_SIGNING_SECRET=SECRET, OMI_WEBHOOK_STORE=dedup)
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda conversation: None)
    hooks.on_transcript(lambda batch: None)
    app.register_blueprint(hooks)
    app.extensions["omi"].webhooks.clock = lambda: float(NOW)
    return app


def _environ(path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    builder = EnvironBuilder(
        path=path, method="POST", data=body, content_type="application/json", base_url="https://app.example"
    )
    try:
        env = builder.get_environ()
    finally:
        builder.close()
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    env["_body"] = body
    return env


def _deliveries(path: str, bodies: list[bytes], durable: bool, signed: bool) -> list[dict[str, Any]]:
    """Each delivery's WSGI environ, made (and signed) before anything is counted."""
    made = []
    for number, body in enumerate(bodies):
        headers = {"X-Omi-Event": "memory_created" if durable else "realtime_transcript"}
        headers["X-Omi-Delivery"] = str(uuid.UUID(int=number + 1))  # the same in every run
        headers["X-Omi-Signature"] = signature_header(SECRET, UID, body, NOW) if signed else "t=0,v1=0"
        if durable:
            headers["X-Omi-Idempotency-Key"] = headers["X-Omi-Delivery"]
        made.append(_environ(path, body, headers))
    return made


def _caller(app: Flask, environs: list[dict[str, Any]]) -> Callable[[int], None]:
    browser, queue = Browser(app), iter(environs)

    def run(n: int) -> None:
        for _ in range(n):
            env = dict(next(queue))
            env["wsgi.input"] = io.BytesIO(env.pop("_body"))
            status, _ = browser.call(env)
            if not status.startswith("200"):
                raise RuntimeError(f"{app.name}: {status}")

    return run


def callers(calls: int, only: str | None = None) -> dict[str, Callable[[int], None]]:
    """The variant ``only`` (every variant when None), able to serve ``calls`` deliveries in all.
    Building one costs far more than serving it (signing hundreds of bodies): a run builds only
    what it measures, so that the build's small variations are not charged to the requests."""
    floor = _floor_app()
    hook = f"/omi/webhooks/conversation?uid={UID}"
    builders: dict[str, Callable[[], Callable[[int], None]]] = {
        CONVERSATION_VARIANTS[0]: lambda: _caller(
            floor, _deliveries("/floor", _conversations(calls), True, False)
        ),
        CONVERSATION_VARIANTS[1]: lambda: _caller(
            _webhooks_app(False), _deliveries(hook, _conversations(calls), True, True)
        ),
        CONVERSATION_VARIANTS[2]: lambda: _caller(
            _webhooks_app(True), _deliveries(hook, _conversations(calls), True, True)
        ),
    }
    redis_url = os.environ.get("BENCH_REDIS_URL")
    if redis_url:
        builders[CONVERSATION_VARIANTS[3]] = lambda: _caller(
            _webhooks_app(_redis(redis_url)), _deliveries(hook, _conversations(calls), True, True)
        )
    live = f"/omi/webhooks/transcript?uid={UID}"
    for n in SEGMENT_COUNTS:
        bodies = lambda n=n: [transcript_body(n, number) for number in range(calls)]  # noqa: E731
        builders[f"bare JSON route, {n}-segment transcript (floor)"] = lambda b=bodies: _caller(
            floor, _deliveries("/floor", b(), False, False)
        )
        builders[f"signed transcript webhook, {n} segments"] = lambda b=bodies: _caller(
            _webhooks_app(True), _deliveries(live, b(), False, True)
        )
    return {name: build() for name, build in builders.items() if only is None or name == only}


def _conversations(calls: int) -> list[bytes]:
    return [conversation_body(n) for n in range(calls)]


def _redis(url: str) -> Any:
    from redis import Redis

    redis = Redis.from_url(url)
    redis.flushdb()
    return redis


def round_trips(redis_url: str) -> dict[str, int]:
    """Commands sent to Redis per delivery (one command, one round trip), counted by the client."""
    from redis import Redis

    class Counting(Redis):
        sent = 0

        def execute_command(self, *args: Any, **options: Any) -> Any:
            Counting.sent += 1
            return super().execute_command(*args, **options)

    app = _webhooks_app(Counting.from_url(redis_url))
    hook = f"/omi/webhooks/conversation?uid={UID}"
    first, retry = _deliveries(hook, [conversation_body(10**6)] * 2, True, True)
    retry["HTTP_X_OMI_IDEMPOTENCY_KEY"] = first["HTTP_X_OMI_IDEMPOTENCY_KEY"]
    retry["HTTP_X_OMI_SIGNATURE"] = signature_header(SECRET, UID, retry["_body"], NOW + 1)
    (live,) = _deliveries(f"/omi/webhooks/transcript?uid={UID}", [transcript_body(5, 10**6)], False, True)
    warm = _deliveries(hook, [conversation_body(10**6 + 1)], True, True)
    counts = {}
    for name, env in (("(warm-up)", warm[0]), ("conversation delivery", first), ("OMI's retry of it", retry),
                      ("live transcript batch", live)):  # fmt: skip
        before = Counting.sent
        _caller(app, [env])(1)
        counts[name] = Counting.sent - before
    del counts["(warm-up)"]
    return counts


def wall(rounds: int = 5, iterations: int = 60) -> dict[str, float]:
    """Median seconds per delivery of every variant, interleaved (beside the instruction counts:
    under valgrind, SHA-256 runs without the CPU's SHA instructions, so the signature's cost over a
    large body counts many times what it costs on the machine)."""
    from .harness import interleaved

    return interleaved(
        callers(iterations // 10 + rounds * iterations + 1), rounds=rounds, iterations=iterations
    )
