"""Per-request cost of protection, and the cost of a whole sign-in, against their floors."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask, session

from flask_omi import OmiBlueprint, current_omi_user, omi_login_required

from .harness import Browser, header, interleaved, repeat

SECRET = secrets.token_hex(32)


def _base_app() -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, OMI_APP_ID="bench-app")
    return app


def bare_app() -> Flask:
    app = _base_app()

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    return app


def session_floor_app() -> Flask:
    """The least any cookie-session login can do: read one key of the session."""
    app = _base_app()

    @app.get("/set")
    def set_uid() -> str:
        session["_omi_uid"] = "bench_uid"
        return "ok"

    @app.get("/hello")
    def hello() -> str:
        return f"hello {session.get('_omi_uid')}"

    return app


def flask_login_app() -> Flask:
    from flask_login import LoginManager, UserMixin, login_required, login_user

    class User(UserMixin):
        def __init__(self, uid: str) -> None:
            self.id = uid

    app = _base_app()
    manager = LoginManager(app)
    manager.user_loader(User)

    @app.get("/set")
    def set_uid() -> str:
        login_user(User("bench_uid"))
        return "ok"

    @app.get("/hello")
    @login_required
    def hello() -> str:
        from flask_login import current_user

        return f"hello {current_user.id}"

    return app


def omi_app() -> Flask:
    app = _base_app()
    app.register_blueprint(OmiBlueprint())

    @app.get("/hello")
    @omi_login_required
    def hello() -> str:
        return f"hello {current_omi_user.uid}"

    return app


def _signed_in_omi(app: Flask) -> Browser:
    browser = Browser(app)
    _, headers = browser.get("/omi/login")
    state = parse_qs(urlsplit(header(headers, "Location")).query)["state"][0]
    status, _ = browser.get(f"/omi/callback?uid=bench_uid&state={state}")
    assert status.startswith("302"), status
    return browser


def signed_in_browsers() -> dict[str, Browser]:
    """One browser per variant, signed in where the variant has sign-in."""
    bare, floor, login, omi = bare_app(), session_floor_app(), flask_login_app(), omi_app()
    browsers = {"bare Flask route": Browser(bare), "read one session key (floor)": Browser(floor)}
    browsers["read one session key (floor)"].get("/set")
    browsers["Flask-Login @login_required"] = Browser(login)
    browsers["Flask-Login @login_required"].get("/set")
    browsers["flask-omi @omi_login_required"] = _signed_in_omi(omi)
    return browsers


def protected_view(rounds: int, iterations: int) -> dict[str, Any]:
    browsers = signed_in_browsers()
    variants = {}
    for name, browser in browsers.items():
        env = browser.environ("/hello")
        status, _ = browser.call(env)
        assert status.startswith("200"), (name, status)
        variants[name] = repeat(lambda b=browser, e=env: b.call(e))
    return interleaved(variants, rounds=rounds, iterations=iterations)


def full_sign_in(rounds: int, iterations: int) -> dict[str, Any]:
    """Login route + callback, against two requests that each write the session."""
    omi = omi_app()
    floor = _base_app()

    @floor.get("/first")
    def first() -> str:
        session["_omi_pending"] = [[secrets.token_urlsafe(32), 0, "/"]]
        return "ok"

    @floor.get("/second")
    def second() -> str:
        session.clear()
        session["_omi_uid"] = "bench_uid"
        return "ok"

    def omi_sign_in() -> None:
        browser = Browser(omi)
        _, headers = browser.get("/omi/login?next=/hello")
        state = header(headers, "Location").rsplit("state=", 1)[1]
        browser.get(f"/omi/callback?uid=bench_uid&state={state}")

    def floor_pair() -> None:
        browser = Browser(floor)
        browser.get("/first")
        browser.get("/second")

    return interleaved(
        {
            "two session-writing requests (floor)": repeat(floor_pair),
            "flask-omi login + callback": repeat(omi_sign_in),
        },
        rounds=rounds,
        iterations=iterations,
    )


def cookie_sizes() -> dict[str, int]:
    app = omi_app()
    browser = _signed_in_omi(app)
    signed_in = len(browser.cookies["session"].value)
    pending = Browser(app)
    for _ in range(5):
        pending.get("/omi/login?next=/dashboard")
    worst = Browser(app)
    for _ in range(5):
        worst.get(
            "/omi/login?next=/"
            + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(399))
        )
    return {
        "after sign-in": signed_in,
        "5 pending sign-ins (short next)": len(pending.cookies["session"].value),
        "5 pending sign-ins, each with a 400-character random next (worst case)": len(
            worst.cookies["session"].value
        ),
    }
