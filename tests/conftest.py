"""Shared fixtures: an app built the way the README tells users to build one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import OmiBlueprint, current_omi_user, omi_login_required

APP_ID = "01TESTAPP"


def make_app(bp: OmiBlueprint | None = None, **config: object) -> Flask:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": "test-secret-key-of-decent-length", "OMI_APP_ID": APP_ID, **config})
    blueprint = bp if bp is not None else OmiBlueprint()
    app.register_blueprint(blueprint)

    @app.get("/")
    def index() -> str:
        return "landing"

    @app.get("/dashboard")
    @omi_login_required
    def dashboard() -> str:
        return f"hello {current_omi_user.uid}"

    return app


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of this test module's own, on a free loopback port."""
    from .attack.servers import redis_server

    with redis_server() as url:
        yield url


@pytest.fixture
def bp() -> OmiBlueprint:
    """A fresh blueprint per test, so callbacks registered in one test never leak into another."""
    return OmiBlueprint()


@pytest.fixture
def app(bp: OmiBlueprint) -> Flask:
    return make_app(bp)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


class Clock:
    """Stands in for time.time so expiry is tested without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Flask) -> Clock:
    c = Clock()
    app.extensions["omi"].signin.clock = c
    return c


def start_login(client: FlaskClient, next_path: str | None = None) -> str:
    """Hit the login route and return the state it sent to OMI."""
    url = "/omi/login" if next_path is None else f"/omi/login?next={next_path}"
    response = client.get(url)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["app_id"] == [APP_ID]
    return query["state"][0]


def cli_streams(result: Any) -> tuple[str, str]:
    """A CLI result's standard output and error. Click before 8.2 (the minimum-versions session)
    captures both into one stream; then the error stream reads as empty."""
    try:
        return result.stdout, result.stderr
    except ValueError:
        return result.output, ""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the attack and failure suite's table: cases tried and passed, per part."""
    rows: dict[str, list[int]] = {}
    loads: list[str] = []
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            load = dict(getattr(report, "user_properties", [])).get("load")
            if load and getattr(report, "when", "") == "call":
                loads.append(str(load))
            if "tests/attack/test_" not in nodeid or (
                getattr(report, "when", "call") != "call" and outcome != "error"
            ):
                continue
            part = nodeid.split("tests/attack/test_", 1)[1].split(".py", 1)[0]
            cases = dict(getattr(report, "user_properties", [])).get("cases", 1)
            row = rows.setdefault(part, [0, 0])
            row[0] += int(cases)
            row[1] += int(cases) if outcome == "passed" else 0
    if not rows:
        return
    terminalreporter.write_sep("=", "attack and failure suite")
    terminalreporter.write_line(f"{'part':<24}{'cases tried':>12}{'cases passed':>14}")
    for part, (tried, passed) in sorted(rows.items()):
        terminalreporter.write_line(f"{part:<24}{tried:>12}{passed:>14}")
    total_tried, total_passed = sum(r[0] for r in rows.values()), sum(r[1] for r in rows.values())
    terminalreporter.write_line(f"{'total':<24}{total_tried:>12}{total_passed:>14}")
    for line in loads:
        terminalreporter.write_line(line)
