"""The deployment guide's Procfile, run as written: its commands are the ones this test starts.

A web process (gunicorn behind a proxy, ProxyFix) and a worker process (Celery) of the example
app, sharing one redis-server. A signed delivery is answered at once by the web process and
handled by the worker: the conversation shows up in the example's database.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from pathlib import Path

import requests

from flask_omi.inbound.signing import signature_header

from ..helpers import free_port
from .processes import ROOT, redis_server, started, wait_for, worker_ready

SIGNING_SECRET = "whsec_procfile"


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_procfile_names_a_web_and_a_worker_process() -> None:
    processes = procfile()
    assert set(processes) == {"web", "worker"}
    assert processes["web"].startswith("gunicorn ") and "127.0.0.1:${PORT" in processes["web"]
    assert processes["worker"].startswith("celery --app example_app.production:celery worker")


def received(db: Path, uid: str) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT title FROM received_conversations WHERE uid = ?", (uid,))
        return [row[0] for row in rows]


def test_the_procfiles_web_and_worker_handle_a_delivery_together(tmp_path: Path) -> None:
    processes = procfile()
    port = free_port()
    uid = f"procfile{uuid.uuid4().hex[:8]}"
    with redis_server() as redis:
        env = {
            "PORT": str(port),
            "REDIS_URL": redis.url,
            "SECRET_KEY": "the same on every instance",
            "OMI_APP_ID": "procfile-app",
            "OMI_SIGNING_SECRET": SIGNING_SECRET,
            "OMI_EXTERNAL_URL": "https://notes.example.com",
            "EXAMPLE_DB": str(tmp_path / "example.sqlite3"),
        }
        with started(processes["web"], env) as web, started(processes["worker"], env) as worker:
            base = f"http://127.0.0.1:{port}"

            def web_answers() -> bool:
                if web.proc.poll() is not None:
                    raise RuntimeError(web.output()[-3000:])
                try:
                    return requests.get(base, timeout=5).ok
                except requests.RequestException:
                    return False

            wait_for(web_answers, "the web process", 60)
            wait_for(lambda: worker_ready(worker), "the worker process", 60)
            body = json.dumps({"id": "c-procfile", "structured": {"title": "Planning the trip"}}).encode()
            answer = requests.post(
                f"{base}/omi/webhooks/conversation?uid={uid}",
                data=body,
                headers={
                    "X-Omi-Signature": signature_header(SIGNING_SECRET, uid, body),
                    "X-Omi-Idempotency-Key": "procfile-1",
                    "Content-Type": "application/json",
                },
                timeout=30,
            )
            assert answer.status_code == 200 and answer.json() == {}
            wait_for(
                lambda: received(tmp_path / "example.sqlite3", uid) == ["Planning the trip"], "the worker"
            )
            done = re.compile(r"Task flask_omi\.webhooks\.omi_webhooks\[omi-conversation-\w+\] succeeded")
            wait_for(lambda: done.search(worker.output()), "the task to be acknowledged")
