"""Inline against background handlers: how fast OMI's deliveries are acknowledged when the handler
works for 2 seconds, behind the same gunicorn, in the same run.

OMI waits 30 s for an answer and retries a conversation delivery it did not get one for, so what
matters on the receiving side is how many deliveries a second are *acknowledged* and how long OMI
waits for each. In background mode the handlers run on Celery workers afterwards (each worker
process handles one delivery per 2 s, so the workers are sized by the work, not by OMI's waits);
no worker runs during the measurement, and the queue is emptied after it.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from flask_omi.inbound.signing import signature_header
from tests.background.processes import redis_server, started, wait_for
from tests.helpers import free_port

from .slow_handlers_app import SECRET

UID = "bench_user"
WEB_WORKERS = 4
CONCURRENCY = 16
#: One transcript batch every this many seconds per active user (OMI sends a live transcript as
#: it is recognised: every few seconds while someone speaks).
BATCH_INTERVAL = 5.0


def _conversation(_: int) -> tuple[str, bytes, dict[str, str]]:
    body = json.dumps({"id": uuid.uuid4().hex, "structured": {"title": "A walk"}}).encode()
    key = str(uuid.uuid4())
    return "conversation", body, {"X-Omi-Idempotency-Key": key, "X-Omi-Delivery": key}


def _transcript(n: int) -> tuple[str, bytes, dict[str, str]]:
    segments = [{"text": f"segment {i}", "speaker": "SPEAKER_0", "start": i, "end": i + 1} for i in range(5)]
    body = json.dumps({"session_id": f"s{n}-{uuid.uuid4().hex}", "segments": segments}).encode()
    return "transcript", body, {"X-Omi-Delivery": str(uuid.uuid4())}


def _load(
    base: str, count: int, make: Callable[[int], tuple[str, bytes, dict[str, str]]]
) -> dict[str, float]:
    """``count`` deliveries from ``CONCURRENCY`` senders at once; per-delivery acknowledgement times."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    numbers = iter(range(count))

    def sender() -> None:
        with requests.Session() as session:
            while True:  # bounded: stops when the shared iterator of `count` numbers is spent
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                kind, body, headers = make(n)
                headers = {**headers, "Content-Type": "application/json",
                           "X-Omi-Signature": signature_header(SECRET, UID, body)}  # fmt: skip
                began = time.perf_counter()
                answer = session.post(
                    f"{base}/omi/webhooks/{kind}?uid={UID}", data=body, headers=headers, timeout=120
                )
                took = time.perf_counter() - began
                with lock:
                    latencies.append(took)
                    failures[0] += answer.status_code != 200

    began = time.perf_counter()
    threads = [threading.Thread(target=sender) for _ in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "deliveries": float(count),
        "per_second": count / elapsed,
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "failures": float(failures[0]),
    }


def _served(
    mode: str, redis_url: str, workers: int, run: Callable[[str], dict[str, float]]
) -> dict[str, float]:

    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--backlog", "2048", "--timeout", "120", "--log-level", "warning",
        "benchmarks.slow_handlers_app:create()",
    ]  # fmt: skip
    env = {"BENCH_MODE": mode, "BENCH_REDIS_URL": redis_url, "BENCH_HANDLER_SECONDS": "2"}
    with started(command, env) as web:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base) or web.proc.poll() is not None, "gunicorn", 60)
        return run(base)


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/health", timeout=5).ok
    except requests.RequestException:
        return False


def measure() -> dict[str, Any]:
    """Acknowledgements with a 2 s handler, inline and background; and transcript batches one web
    worker acknowledges a second with a background handler."""
    from redis import Redis

    results: dict[str, Any] = {}
    with redis_server() as server:
        redis = Redis.from_url(server.url)
        results["inline"] = _served(
            "inline", server.url, WEB_WORKERS, lambda base: _load(base, 48, _conversation)
        )
        results["background"] = _served(
            "background", server.url, WEB_WORKERS, lambda base: _load(base, 3000, _conversation)
        )
        results["queued"] = redis.llen("celery")
        redis.flushdb()
        one = _served("background", server.url, 1, lambda base: _load(base, 3000, _transcript))
        redis.flushdb()
        results["transcripts, one web worker"] = one
        results["users per web worker"] = one["per_second"] * BATCH_INTERVAL
    return results
