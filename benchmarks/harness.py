"""Timing helpers: call WSGI apps without a test client's overhead, interleave variants, take medians."""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any

from werkzeug.test import EnvironBuilder


class Browser:
    """Calls a WSGI app directly, carrying one cookie jar like a browser would."""

    def __init__(self, app: Any, host: str = "app.example") -> None:
        self.app, self.host, self.cookies = app, host, SimpleCookie()

    def environ(self, path: str, method: str = "GET") -> dict[str, Any]:
        builder = EnvironBuilder(path=path, method=method, base_url=f"https://{self.host}")
        try:
            env = builder.get_environ()
        finally:
            builder.close()
        cookie = "; ".join(f"{k}={m.value}" for k, m in self.cookies.items())
        if cookie:
            env["HTTP_COOKIE"] = cookie
        return env

    def call(self, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = self.app(env.copy(), start_response)
        try:
            for _ in body:
                pass
        finally:
            if hasattr(body, "close"):
                body.close()
        for name, value in captured["headers"]:
            if name.lower() == "set-cookie":
                self.cookies.load(value)
        return captured["status"], captured["headers"]

    def get(self, path: str, method: str = "GET") -> tuple[str, list[tuple[str, str]]]:
        return self.call(self.environ(path, method))


def header(headers: list[tuple[str, str]], name: str) -> str:
    return next(v for k, v in headers if k.lower() == name.lower())


def interleaved(
    variants: dict[str, Callable[[int], None]], *, rounds: int, iterations: int
) -> dict[str, float]:
    """Median seconds per iteration for each variant, run in shuffled order every round."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for run in variants.values():  # warm-up, not measured
        run(max(1, iterations // 10))
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection landing in one variant's slot would be noise, not its cost
    try:
        for _ in range(rounds):
            random.shuffle(order)
            for name in order:
                began = time.perf_counter()
                variants[name](iterations)
                samples[name].append((time.perf_counter() - began) / iterations)
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def repeat(fn: Callable[[], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            fn()

    return run


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def table(rows: Iterable[Iterable[object]], head: Iterable[str]) -> str:
    head = list(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
