"""Instruction counts per request under valgrind's callgrind: repeatable where wall time is noisy.

Every run builds all the apps and warms each up the same way, then serves N requests of one
variant; a run that serves none is the baseline. Per-request instructions are
``(count(variant, N) - count(baseline)) / N``. ``python -m benchmarks.instructions VARIANT N`` is
the program valgrind runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = (
    "bare Flask route",
    "read one session key (floor)",
    "Flask-Login @login_required",
    "flask-omi @omi_login_required",
)
#: The signed-call benchmark's variants (benchmarks/signed_calls.py).
SIGNED_VARIANTS = (
    "bare JSON route, tool body (floor)",
    "signed chat-tool call",
    "bare JSON route, transcript body (floor)",
    "signed transcript webhook",
)


def _serve(variant: str | None, n: int) -> None:
    from . import inbound_calls, requests_cost, signed_calls

    groups = (
        ("-inbound", inbound_calls.VARIANTS, inbound_calls.callers),
        ("-signed", SIGNED_VARIANTS, signed_calls.callers),
    )
    for group, variants, make in groups:
        if variant in variants or variant == group:
            # Every run builds every variant of the group and serves each the same warm-up, so a
            # variant's count differs from the baseline's only by the calls themselves.
            made = make(n + 50)
            for run in made.values():
                run(50)
            if variant in made:
                made[variant](n)
            return

    browsers = requests_cost.signed_in_browsers()
    for browser in browsers.values():  # identical warm-up in every run
        env = browser.environ("/hello")
        for _ in range(50):
            browser.call(env)
    if variant is not None:
        browser = browsers[variant]
        env = browser.environ("/hello")
        for _ in range(n):
            browser.call(env)


def _count(variant: str | None, n: int) -> int:
    args = [sys.executable, "-m", "benchmarks.instructions", variant or "-", str(n)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
        check=True,
    )
    match = re.search(r"Collected : (\d+)", run.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no count: {run.stderr[-500:]}")
    return int(match.group(1))


def per_request(n: int = 1000, variants: tuple[str, ...] = VARIANTS) -> dict[str, float] | None:
    """Instructions per request for each variant, or None when valgrind is not installed."""
    if shutil.which("valgrind") is None:
        return None
    from .inbound_calls import VARIANTS as INBOUND_VARIANTS

    group = (
        "-signed"
        if variants == SIGNED_VARIANTS
        else "-inbound"
        if set(variants) <= set(INBOUND_VARIANTS)
        else None
    )
    baseline = _count(group, n)
    return {variant: (_count(variant, n) - baseline) / n for variant in variants}


if __name__ == "__main__":
    name, count = sys.argv[1], int(sys.argv[2])
    _serve(None if name == "-" else name, count)
