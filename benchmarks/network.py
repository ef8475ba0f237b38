"""The API client over loopback HTTP, and memory use during the security suite's load run."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from flask_omi import OmiClient
from tests.attack.load import run_load
from tests.attack.servers import gunicorn

from .harness import interleaved

CALLS = 500


def _self_signed(folder: Path) -> tuple[Path, Path] | None:
    """A throwaway certificate for 127.0.0.1, made with the openssl command; None without it."""
    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def api_client(rounds: int = 5) -> dict[str, dict[str, float]]:
    """500 small calls per variant: one pooled client, against a fresh ``requests.post`` per call.

    Over plain HTTP and over HTTPS (api.omi.me is HTTPS, where a new connection costs a TLS
    handshake), both on loopback.
    """
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tls = _self_signed(Path(tmp))
        schemes: list[tuple[str, tuple[str, ...], str | bool]] = [("http", (), True)]
        if tls is not None:
            schemes.append(("https", ("--certfile", str(tls[0]), "--keyfile", str(tls[1])), str(tls[0])))
        for scheme, tls_args, verify in schemes:
            results[scheme] = _api_calls(scheme, tls_args, verify, rounds)
    return results


def _api_calls(scheme: str, tls_args: tuple[str, ...], verify: str | bool, rounds: int) -> dict[str, float]:
    key = "sk_" + secrets.token_hex(16)
    extra = ("--worker-class", "gthread", "--threads", "4", "--keep-alive", "30", *tls_args)
    app = "benchmarks.fake_omi_wsgi:create()"
    with gunicorn(
        {"BENCH_API_KEY": key}, workers=1, app=app, extra=extra, scheme=scheme, verify=verify
    ) as fake:
        client = OmiClient("bench-app", key, base_url=fake.url)
        client.session.verify = verify
        url = f"{fake.url}/v2/integrations/bench-app/search/conversations"

        def pooled(n: int) -> None:
            for _ in range(n):
                client.search_conversations("bench_uid", "benchmarks")

        def fresh(n: int) -> None:
            for _ in range(n):
                answer = requests.post(
                    url,
                    params={"uid": "bench_uid"},
                    json={"query": "benchmarks", "page": 1, "per_page": 10},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=10,
                    verify=verify,
                )
                answer.raise_for_status()
                answer.json()

        per_call = interleaved(
            {"pooled OmiClient": pooled, "fresh requests.post per call": fresh},
            rounds=rounds,
            iterations=CALLS // rounds,
        )
        client.close()
    return per_call


def _rss_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _family(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                children.append(int(entry.name))
    return [pid, *children]


def load_memory(clients: int = 50, per_client: int = 40) -> dict[str, Any]:
    """Peak RSS of gunicorn (master + 4 workers) while the suite's load run signs 2,000 users in."""
    env = {"TEST_SECRET_KEY": secrets.token_hex(32)}
    with gunicorn(env, workers=4) as server:
        family = _family(server.pid)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():  # ends with the load run
                peak = max(peak, sum(_rss_kib(p, "VmRSS") for p in family))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        idle = sum(_rss_kib(p, "VmRSS") for p in family)
        result = run_load(server.url, clients, per_client)
        done.set()
        sampler.join(timeout=10)
        high_water = sum(_rss_kib(p, "VmHWM") for p in family)
    return {
        "processes": len(family),
        "idle_kib": idle,
        "peak_kib": peak,
        "high_water_kib": high_water,
        "sign_ins": result.counts["sign_ins"],
        "failures": result.counts["failures"] + result.counts["mix_ups"],
        "seconds": result.seconds,
        "client_pid": os.getpid(),
    }
