"""Real processes for the background-handler tests: redis-server, gunicorn, Celery workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..attack.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.background.celery_app"
#: The signing secret of the test app.
SECRET = "whsec_background_tests"


def wait_for(check: Callable[[], Any], what: str, seconds: float = 60.0) -> None:
    """Wait until ``check()`` is true; bounded by ``seconds`` (a promise kept, not a timing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # bounded by the deadline
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not within {seconds} s")


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Like the attack suite's, but yields the server, so that a test can stop and restart it."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Process:
    """A process started in a session of its own (so that kill -9 reaches its children too)."""

    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill_hard(self) -> None:
        """kill -9, the whole process group: a machine lost in the middle of its work."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck worker
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@contextmanager
def started(command: list[str] | str, env: dict[str, str]) -> Iterator[Process]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed below; a file, not a pipe nobody reads)
    proc = subprocess.Popen(
        command,
        shell=isinstance(command, str),
        executable="/bin/bash" if isinstance(command, str) else None,
        cwd=ROOT,
        # As in an activated virtualenv: the Procfile's commands find gunicorn and celery on PATH.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process = Process(proc, log)
    try:
        yield process
    finally:
        process.stop()
        log.close()


def worker_command(name: str, concurrency: int = 2, pool: str = "prefork") -> list[str]:
    """A Celery worker of the test app, as the deployment guide starts one."""
    return [
        sys.executable, "-m", "celery", "--app", APP, "worker", "--loglevel", "INFO",
        "--concurrency", str(concurrency), "--hostname", f"{name}@127.0.0.1",
        "--without-gossip", "--without-mingle", "--pool", pool,
    ]  # fmt: skip


def web_command(port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning", f"{APP}:flask_app",
    ]  # fmt: skip


def worker_ready(process: Process) -> bool:
    if process.proc.poll() is not None:
        raise RuntimeError(f"the Celery worker exited:\n{process.output()[-3000:]}")
    return " ready." in process.output()
