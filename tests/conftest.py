"""Shared fixtures: an app built the way the README tells users to build one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    app.extensions["omi"].clock = c
    return c


def start_login(client: FlaskClient, next_path: str | None = None) -> str:
    """Hit the login route and return the state it sent to OMI."""
    url = "/omi/login" if next_path is None else f"/omi/login?next={next_path}"
    response = client.get(url)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["app_id"] == [APP_ID]
    return query["state"][0]


StartLogin = Callable[..., str]
