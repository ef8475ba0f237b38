"""Instruction counts per request under valgrind's callgrind: repeatable where wall time is noisy.

Every run builds the apps and warms each up the same way, then serves N requests of one variant;
its baseline is the same run serving none. Per-request instructions are
``(count(variant, N) - count(variant, N, serving none)) / N``: the two runs differ only by the
requests themselves. ``python -m benchmarks.instructions VARIANT N [build-only]`` is the program
valgrind runs.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


def _serve(variant: str | None, n: int, serve: bool = True) -> None:
    from . import inbound_calls, requests_cost, signed_calls

    groups = (
        ("-inbound", inbound_calls.VARIANTS, inbound_calls.callers),
        ("-signed", SIGNED_VARIANTS, signed_calls.callers),
    )
    for group, variants, make in groups:
        if variant in variants or variant == group:
            # Every run builds every variant of the group and serves each the same warm-up, so a
            # variant's count differs from the baseline's only by the calls themselves.
            made = make(n + 50, variant)
            for run in made.values():
                run(50)
            _settle_heap()
            if serve and variant in made:
                made[variant](n)
            return

    browsers = requests_cost.signed_in_browsers()
    for browser in browsers.values():  # identical warm-up in every run
        env = browser.environ("/hello")
        for _ in range(50):
            browser.call(env)
    _settle_heap()
    if serve and variant is not None:
        browser = browsers[variant]
        env = browser.environ("/hello")
        for _ in range(n):
            browser.call(env)


def _settle_heap() -> None:
    """Collect, then freeze what the run built before serving (the prepared requests, the apps):
    the garbage collector no longer walks it, so a variant is not charged for a heap that grows
    with the number of requests prepared for every variant (a full collection over it cost up to
    100,000 instructions per request, more for larger runs)."""
    gc.collect()
    gc.freeze()


def _count(variant: str | None, n: int, serve: bool = True) -> int:
    args = [
        sys.executable,
        "-m",
        "benchmarks.instructions",
        variant or "-",
        str(n),
        *([] if serve else ["build-only"]),
    ]
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
    # Counts do not depend on what else the machine runs: the runs go side by side, one per core.
    jobs = [(variant, serve) for variant in variants for serve in (True, False)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: _count(job[0], n, serve=job[1]), jobs), strict=True))
    return {variant: (counts[(variant, True)] - counts[(variant, False)]) / n for variant in variants}


if __name__ == "__main__":
    name, count = sys.argv[1], int(sys.argv[2])
    _serve(None if name == "-" else name, count, serve=sys.argv[3:] != ["build-only"])
