"""Start real servers on loopback for the suite: gunicorn instances and a Redis server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from ..helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_until(check: object, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # bounded by the deadline
        try:
            if check():  # type: ignore[operator]
                return
        except (requests.ConnectionError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not start within {seconds} s")


@dataclass(frozen=True)
class Running:
    url: str
    pid: int


@contextmanager
def gunicorn(
    env: dict[str, str],
    workers: int = 2,
    app: str = "tests.attack.wsgi_app:create()",
    extra: tuple[str, ...] = (),
    scheme: str = "http",
    verify: str | bool = True,
) -> Iterator[Running]:
    """Run ``app`` under gunicorn on a free loopback port; yields its base URL and master pid."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
        "--chdir", str(ROOT), "--log-level", "warning", *extra, app,
    ]  # fmt: skip
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finally; a file, not a pipe nobody reads)
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        try:
            wait_until(lambda: requests.get(f"{url}/health", timeout=1, verify=verify).ok, "gunicorn")
        except TimeoutError:
            log.seek(0)
            raise TimeoutError(
                f"gunicorn did not start: {log.read()[-2000:].decode(errors='replace')}"
            ) from None
        yield Running(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            proc.kill()
        log.close()


@dataclass
class RedisServer:
    """A throwaway redis-server on a fixed loopback port, no persistence; a test may stop it and
    start it again on the same port (its clients then reconnect)."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: A folder for an append-only file (every write synced), so that a restart after kill -9
    #: finds what was written: the queue, the claims. None: no persistence.
    aof_dir: str | None = None
    _scratch: str | None = None
    _holder: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is not installed, and the shared-session tests must run in CI")
            pytest.skip("redis-server is not installed (make test installs it)")
        if self.aof_dir:
            persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", self.aof_dir]
        else:  # a folder of its own all the same: a test may turn persistence on at run time
            self._scratch = self._scratch or tempfile.mkdtemp(prefix="redis-")
            persistence = ["--appendonly", "no", "--dir", self._scratch]
        if self._holder is not None:  # the port, held since kill_hard: handed back to Redis
            self._holder.close()
            self._holder = None
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", *persistence],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_until(redis.Redis(host="127.0.0.1", port=self.port).ping, "redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a shutdown stuck writing its files
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def kill_hard(self) -> None:
        """kill -9: Redis lost in the middle of its work (what it synced survives, with aof_dir).

        Its port stays held by a socket that listens and never answers, until :meth:`start`: a
        client's commands time out meanwhile, as against a lost server, and no other test's
        server can take the port before this one comes back."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
            holder = socket.socket()
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind(("127.0.0.1", self.port))
            holder.listen(64)
            self._holder = holder


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on loopback, no persistence; yields its URL."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
