"""``flask omi check`` against insecure settings: each is a finding, the insecure ones exit 1, and
every finding is printed to one stream with one prefix, so the all-clear never stands beside one.
"""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_omi import OmiBlueprint
from flask_omi.cli.audit import weak_secret_key_reason

from ..conftest import cli_streams, make_app

GOOD: dict[str, Any] = {
    "SECRET_KEY": "4e0b9d17c2a85f36e1d07b94ac5238f6d9e21b7c",
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "__Host-session",
    "OMI_STATE_REGISTRY": True,
    # Every sign-in confirmed with a code to the uid's OMI app, in an app that runs one process.
    "OMI_CONFIRM_SIGNIN": True,
    "OMI_API_KEY": "sk_test_key",
    "OMI_EXTERNAL_URL": "https://app.example.com",
    "OMI_SINGLE_PROCESS": True,
}


def check(base_url: str = "https://app.example.com", **config: Any) -> tuple[int, str, str]:
    app = make_app(OmiBlueprint(), **{**GOOD, **config})
    app.wsgi_app = ProxyFix(app.wsgi_app)  # type: ignore[method-assign]
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", base_url])
    out, err = cli_streams(result)
    return result.exit_code, out, err


def test_good_settings_pass() -> None:
    code, out, err = check()
    assert code == 0 and err == ""
    assert out.rstrip().endswith("ok: no problems found") and "warning:" not in out


#: (name, config, what the finding says, must it be fixed)
FINDINGS: list[tuple[str, dict[str, Any], str, bool]] = [
    ("HttpOnly off", {"SESSION_COOKIE_HTTPONLY": False}, "SESSION_COOKIE_HTTPONLY is off", True),
    ("SameSite None", {"SESSION_COOKIE_SAMESITE": "None"}, "SESSION_COOKIE_SAMESITE is 'None'", True),
    ("SameSite unset", {"SESSION_COOKIE_SAMESITE": None}, "SESSION_COOKIE_SAMESITE is None", True),
    ("SameSite Strict", {"SESSION_COOKIE_SAMESITE": "Strict"}, "is 'Strict'", True),
    ("one repeated character", {"SECRET_KEY": "k" * 40}, "repeated pattern", True),
    ("a repeated unit", {"SECRET_KEY": "ab12" * 12}, "repeated pattern", True),
    ("an obvious word", {"SECRET_KEY": "my-super-secret-key-for-production-2024"}, "obvious word", True),
    ("changeme", {"SECRET_KEY": "CHANGEME-9f8e7d6c5b4a39281706f5e4d3c2b1a0"}, "obvious word", True),
    ("short", {"SECRET_KEY": "3f9a1c"}, "shorter than 32", True),
    ("bytes, short", {"SECRET_KEY": b"\x01\x02"}, "shorter than 32", True),
    ("state max age of a year", {"OMI_STATE_MAX_AGE": 365 * 24 * 3600}, "OMI_STATE_MAX_AGE is 31536000", True),
    ("state max age of half an hour", {"OMI_STATE_MAX_AGE": 1800}, "OMI_STATE_MAX_AGE is 1800", False),
    ("no __Host- prefix", {"SESSION_COOKIE_NAME": "session"}, "Name it '__Host-session'", False),
    ("cookie domain", {"SESSION_COOKIE_NAME": "sid", "SESSION_COOKIE_DOMAIN": "example.com"}, "SESSION_COOKIE_DOMAIN", True),
    ("__Host- with a domain", {"SESSION_COOKIE_DOMAIN": "example.com"}, "browsers only accept a __Host- cookie", True),
    ("__Host- with a path", {"SESSION_COOKIE_PATH": "/app"}, "browsers only accept a __Host- cookie", True),
    ("no state registry", {"OMI_STATE_REGISTRY": None}, "OMI_STATE_REGISTRY is not set", False),
    ("Secure off", {"SESSION_COOKIE_SECURE": False}, "SESSION_COOKIE_SECURE is off", True),
    # The third review's misses (all exited 0 before):
    ("a weak fallback key", {"SECRET_KEY_FALLBACKS": ["dev"]}, "SECRET_KEY_FALLBACKS[0]", True),
    ("OMI over plain http", {"OMI_API_BASE": "http://api.omi.me"}, "OMI_API_BASE is plain http", True),
    ("logout by GET", {"OMI_LOGOUT_ALLOW_GET": True}, "OMI_LOGOUT_ALLOW_GET is on", False),
    ("a day's tolerance", {"OMI_SIGNATURE_TOLERANCE": 86400}, "OMI_SIGNATURE_TOLERANCE is 86400", True),
    ("a gigabyte body", {"OMI_WEBHOOK_MAX_BYTES": 2**30}, "OMI_WEBHOOK_MAX_BYTES is over", True),
    ("a time limit of 10^7 s", {"OMI_WEBHOOK_TASK_TIME_LIMIT": 10**7}, "OMI_WEBHOOK_TASK_TIME_LIMIT is 10000000", True),
    ("a million retries", {"OMI_WEBHOOK_TASK_RETRIES": 10**6}, "OMI_WEBHOOK_TASK_RETRIES is 1000000", True),
    # Confirmed sign-in (the fourth review):
    ("confirmation budgets per process", {"OMI_SINGLE_PROCESS": False}, "guessing budgets in each process", True),
    ("sign-in on the unsigned uid", {"OMI_CONFIRM_SIGNIN": False}, "trusts the unsigned uid", False),
    ("step-up only", {"OMI_CONFIRM_SIGNIN": "step-up"}, "OMI_CONFIRM_SIGNIN is 'step-up'", False),
    ("sign-out keeps the session", {"OMI_LOGOUT_CLEAR_SESSION": False}, "OMI_LOGOUT_CLEAR_SESSION is False", False),
]  # fmt: skip


def test_secure_off_fails_even_with_flask_debug_in_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is about production: FLASK_DEBUG=1 left in the shell no longer exempts it."""
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = make_app(OmiBlueprint(), **{**GOOD, "SESSION_COOKIE_SECURE": False})
    app.debug = True
    app.wsgi_app = ProxyFix(app.wsgi_app)  # type: ignore[method-assign]
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 1 and "SESSION_COOKIE_SECURE is off" in result.output


def receiving_app(**config: Any) -> Any:
    from flask_omi import OmiTools, OmiWebhooks

    app = make_app(OmiBlueprint(), **{**GOOD, **config})
    app.wsgi_app = ProxyFix(app.wsgi_app)  # type: ignore[method-assign]
    app.register_blueprint(OmiWebhooks())
    tools = OmiTools()

    def echo(query: str) -> str:
        return query

    tools.tool(echo, description="Echo.")
    app.register_blueprint(tools)
    return app


RECEIVING: list[tuple[str, dict[str, Any], list[str]]] = [
    ("unsigned", {"OMI_SIGNING_SECRET": None, "OMI_SINGLE_PROCESS": True},
     ["webhooks are accepted unsigned", "tool calls are accepted unsigned"]),
    ("per-process stores", {"OMI_SIGNING_SECRET": "whsec_x", "OMI_SINGLE_PROCESS": False},
     ["OMI_WEBHOOK_STORE is kept in each process", "OMI_TOOLS_REPLAY_STORE is kept in each process"]),
    ("replay refusal off", {"OMI_SIGNING_SECRET": "whsec_x", "OMI_SINGLE_PROCESS": True, "OMI_TOOLS_REPLAY_STORE": False},
     ["OMI_TOOLS_REPLAY_STORE is off"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "config", "needles"), RECEIVING, ids=[r[0] for r in RECEIVING])
def test_receiving_from_omi_unsafely_must_be_fixed(
    name: str, config: dict[str, Any], needles: list[str]
) -> None:
    result = (
        receiving_app(**config)
        .test_cli_runner()
        .invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    )
    for needle in needles:
        assert any(needle in line and "(must fix)" in line for line in result.output.splitlines()), (
            result.output
        )
    assert result.exit_code == 1


def test_receiving_safely_passes_and_dedup_off_is_advice() -> None:
    app = receiving_app(OMI_SIGNING_SECRET="whsec_x", OMI_SINGLE_PROCESS=True)
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 0 and "ok: no problems found" in result.output, result.output
    app.config["OMI_WEBHOOK_STORE"] = False
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 0 and "OMI_WEBHOOK_STORE is off" in result.output


def test_the_bridges_remember_me_cookie_must_be_secure() -> None:
    from flask_login import LoginManager

    from flask_omi.contrib.flask_login import FlaskLoginBridge

    app = make_app(OmiBlueprint(), **GOOD)
    app.wsgi_app = ProxyFix(app.wsgi_app)  # type: ignore[method-assign]
    LoginManager(app)
    FlaskLoginBridge(load_user=lambda uid: None, remember=True).init_app(app)
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 1 and "REMEMBER_COOKIE_SECURE, REMEMBER_COOKIE_SAMESITE" in result.output
    app.config.update(REMEMBER_COOKIE_SECURE=True, REMEMBER_COOKIE_SAMESITE="Lax")
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("name", "config", "needle", "fatal"), FINDINGS, ids=[f[0] for f in FINDINGS])
def test_each_finding(name: str, config: dict[str, Any], needle: str, fatal: bool) -> None:
    code, out, err = check(**config)
    assert err == ""  # one stream
    findings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert any(needle in line for line in findings), out
    assert ("warning: (must fix) " in out) is fatal
    assert code == (1 if fatal else 0)
    assert "ok:" not in out
    assert out.splitlines()[-1].startswith("result: ")


def test_confirmation_without_the_external_url_must_be_fixed() -> None:
    """Registration refuses it; an app that removes the setting afterwards is still caught."""
    app = make_app(OmiBlueprint(), **GOOD)
    app.config["OMI_EXTERNAL_URL"] = None
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert result.exit_code == 1 and "OMI_CONFIRM_SIGNIN is on without OMI_EXTERNAL_URL" in result.output


def test_confirmation_with_a_shared_registry_passes_under_several_processes(redis_url: str) -> None:
    import redis

    code, out, _ = check(OMI_SINGLE_PROCESS=False, OMI_STATE_REGISTRY=redis.Redis.from_url(redis_url))
    assert code == 0 and "guessing budgets" not in out, out


def test_everything_wrong_at_once_is_reported_in_one_place() -> None:
    code, out, _ = check(
        "http://app.example.com/?q=1",
        SECRET_KEY="x" * 40,
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SAMESITE=None,
        SESSION_COOKIE_SECURE=False,
        SESSION_COOKIE_NAME="session",
        OMI_STATE_MAX_AGE=10**8,
        OMI_STATE_REGISTRY=None,
    )
    findings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert code == 1 and len(findings) >= 7
    assert (
        out.splitlines()[-1]
        == f"result: {len(findings)} warning(s), 7 of them must be fixed before going live"
    )


@pytest.mark.parametrize(
    "key",
    [
        "9f2c1e7ab4d8056c3e91fa27d0b6c4e85a13f9d27c60b8e4",
        "kZ3-q8Rt_w1YbN6mLx0VcP4sJd7HfG2aUe9oTi5rEy",
        b"\x8f\x12\xa9\x03\x77\xc4\x1e\x5b\xd0\x66\x2a\xf1\x39\x84\xbe\x07"
        b"\x5d\xe2\x91\x4c\x0a\xb7\x63\x18\xfe\x25\x9d\x70\xc8\x3e\xa4\x51",
    ],
)
def test_random_keys_are_not_flagged(key: str | bytes) -> None:
    assert weak_secret_key_reason(key) is None
