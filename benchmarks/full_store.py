"""200,000 conversation deliveries to one process with the default in-process stores.

What it shows: memory stays bounded and no delivery is refused. The de-duplication ledger holds
at most 100,000 handled deliveries; past that it lets its oldest go (an outage is worse than a
rare duplicate); the store of used signatures keeps each for twice the tolerance and refuses only
above 166 signed deliveries a second. Time is simulated at a stated rate (``RATE`` deliveries a
second, above the ledger's 9.3 a second so that it fills and forgets, below the signature store's
166), so that hours of OMI's traffic take a minute: every delivery is signed at the simulated
time and both stores expire by it. WSGI is called through Flask's test client, one delivery at a
time; memory is the process's resident set (``ru_maxrss``) and the stores' sizes.

``python -m benchmarks.full_store [--deliveries N]``
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

from flask import Flask

from flask_omi import OmiWebhooks
from flask_omi.inbound.signing import signature_header

SECRET = "whsec_full_store_benchmark"  # noqa: S105 (a benchmark's own secret)
RATE = 20.0
DELIVERIES = 200_000


class SimulatedClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(deliveries: int = DELIVERIES) -> dict[str, Any]:
    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET=SECRET)
    handled = 0

    hooks = OmiWebhooks()

    @hooks.on_conversation_created
    def count(event: Any) -> None:
        nonlocal handled
        handled += 1

    app.register_blueprint(hooks)
    state = app.extensions["omi"].webhooks
    clock = SimulatedClock(time.time())
    state.clock = state.ledger.clock = state.replays.clock = clock
    client = app.test_client()
    refused: dict[int, int] = {}
    checkpoints: list[tuple[int, float, int, int, int]] = []
    began = time.perf_counter()
    for n in range(deliveries):  # bounded by the count
        clock.now += 1 / RATE
        body = json.dumps({"id": f"c{n}", "structured": {"title": "A walk"}}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Omi-Signature": signature_header(SECRET, "bench_user", body, int(clock.now)),
            "X-Omi-Idempotency-Key": f"key-{n}",
        }
        status = client.post(
            "/omi/webhooks/conversation?uid=bench_user", data=body, headers=headers
        ).status_code
        if status != 200:
            refused[status] = refused.get(status, 0) + 1
        if (n + 1) % (deliveries // 8) == 0:
            checkpoints.append(
                (n + 1, rss_mib(), len(state.ledger), len(state.replays), state.ledger.forgotten)
            )
    return {
        "deliveries": deliveries,
        "handled": handled,
        "refused": refused,
        "checkpoints": checkpoints,
        "seconds": time.perf_counter() - began,
        "simulated_hours": deliveries / RATE / 3600,
    }


def section(result: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {n:,} | {rss:.0f} MiB | {ledger:,} | {replays:,} | {forgotten:,} |"
        for n, rss, ledger, replays, forgotten in result["checkpoints"]
    )
    refusals = sum(result["refused"].values())
    return (
        f"## 8. A full in-process store: {result['deliveries']:,} deliveries to one process\n\n"
        f"{result['deliveries']:,} signed conversation deliveries at a simulated {RATE:.0f} a second "
        f"({result['simulated_hours']:.1f} h of OMI's traffic, in {result['seconds']:.0f} s), default "
        "stores (`OMI_WEBHOOK_STORE = True`). Memory is the process's peak resident set.\n\n"
        "| deliveries | peak RSS | handled deliveries kept | used signatures kept | forgotten (oldest) |\n"
        "|---|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Handlers run: {result['handled']:,}; refused: {refusals} (target 0: "
        f"{'met' if refusals == 0 else 'MISSED'}). The ledger stops growing at its bound and lets its "
        "oldest entries go; memory stops growing with it.\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.full_store")
    parser.add_argument("--deliveries", type=int, default=DELIVERIES)
    args = parser.parse_args()
    result = run(args.deliveries)
    print(section(result))
    return 0 if not result["refused"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
