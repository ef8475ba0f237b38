"""``flask omi check``, ``flask omi login-url`` and ``flask omi fake-server``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_omi import OmiBlueprint

from .conftest import cli_streams, make_app
from .helpers import free_port

#: Settings that pass every check on a public https host.
GOOD = {
    "SECRET_KEY": "9f2c1e7ab4d8056c3e91fa27d0b6c4e85a13f9d27c60b8e4",
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "__Host-session",
    "OMI_STATE_REGISTRY": True,
    "OMI_CONFIRM_SIGNIN": True,
    "OMI_API_KEY": "sk_test_key",
    "OMI_EXTERNAL_URL": "https://a.example",
    "OMI_SINGLE_PROCESS": True,
}


def run_check(*args: str, **config: object) -> tuple[int, str, str]:
    app = make_app(OmiBlueprint(), **{**GOOD, **config})
    result = app.test_cli_runner().invoke(args=["omi", "check", *args])
    out, err = cli_streams(result)
    return result.exit_code, out, err


def test_check_prints_the_urls_to_paste() -> None:
    code, out, err = run_check("--base-url", "https://app.example.com")
    assert code == 0, out + err
    assert "App Home URL: https://app.example.com/omi/callback" in out
    assert "Setup completed URL: https://app.example.com/omi/setup-completed" in out
    assert "warning: The app is not wrapped in werkzeug's ProxyFix" in out
    assert "ok:" not in out and out.rstrip().endswith("0 of them must be fixed before going live")


def test_check_uses_server_name() -> None:
    code, out, _ = run_check(SERVER_NAME="app.example.com", PREFERRED_URL_SCHEME="https")
    assert code == 0
    assert "App Home URL: https://app.example.com/omi/callback" in out


def test_check_needs_a_base_url() -> None:
    code, out, err = run_check()
    assert code == 2 and "--base-url" in out + err


@pytest.mark.parametrize(
    ("args", "config", "needle"),
    [
        ((), {"SECRET_KEY": "short"}, "SECRET_KEY is shorter than 32"),
        ((), {"SESSION_COOKIE_SECURE": False}, "SESSION_COOKIE_SECURE is off"),
        ((), {"SESSION_COOKIE_SAMESITE": "Strict"}, "SESSION_COOKIE_SAMESITE is 'Strict'"),
        (("--behind-proxy",), {}, "The app is not wrapped in werkzeug's ProxyFix"),
    ],
)
def test_check_finds_problems(args: tuple[str, ...], config: dict[str, object], needle: str) -> None:
    code, out, _ = run_check("--base-url", "https://app.example.com", *args, **config)
    assert code == 1
    assert f"warning: (must fix) {needle}" in out
    assert "ok:" not in out


@pytest.mark.parametrize(
    ("base_url", "needle"),
    [
        ("https://app.example.com/?x=1", "query string or a #fragment"),
        ("https://app.example.com/#top", "query string or a #fragment"),
        ("http://app.example.com", "plain http on a public host"),
    ],
)
def test_check_finds_url_problems(base_url: str, needle: str) -> None:
    code, out, _ = run_check("--base-url", base_url)
    assert code == 1 and needle in out


def test_check_passes_with_proxyfix_behind_a_proxy_and_on_localhost() -> None:
    app = make_app(OmiBlueprint(), **GOOD)
    app.wsgi_app = ProxyFix(app.wsgi_app)  # type: ignore[method-assign]
    result = app.test_cli_runner().invoke(
        args=["omi", "check", "--base-url", "https://a.example", "--behind-proxy"]
    )
    assert result.exit_code == 0 and "ok: no problems found" in result.stdout
    local = make_app(OmiBlueprint(), SECRET_KEY=GOOD["SECRET_KEY"], SESSION_COOKIE_SAMESITE="Lax")
    result = local.test_cli_runner().invoke(args=["omi", "check", "--base-url", "http://127.0.0.1:5000"])
    assert result.exit_code == 0, result.stdout
    assert result.stdout.rstrip().endswith("ok: no problems found")


def test_login_url() -> None:
    app = make_app(OmiBlueprint(), OMI_API_BASE="http://127.0.0.1:8765")
    result = app.test_cli_runner().invoke(args=["omi", "login-url"])
    assert result.exit_code == 0
    assert result.stdout.startswith("http://127.0.0.1:8765/v1/oauth/authorize?app_id=01TESTAPP&state=")
    assert "state_mismatch" in result.output


def test_fake_server_command(tmp_path: Path) -> None:
    app_file = tmp_path / "cliapp.py"
    app_file.write_text(
        "from flask import Flask\nfrom flask_omi import OmiBlueprint, OmiWebhooks\n"
        "app = Flask(__name__)\n"
        "app.config.update(SECRET_KEY='k'*40, OMI_APP_ID='cli-app', OMI_API_KEY='sk_given')\n"
        "app.register_blueprint(OmiBlueprint(), url_prefix='/auth')\n"
        "hooks = OmiWebhooks()\n"
        "hooks.on_conversation_created(lambda event: None)\n"
        "app.register_blueprint(hooks, url_prefix='/hooks')\n"
    )
    port = free_port()
    env = {**os.environ, "FLASK_APP": str(app_file)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "omi",
            "fake-server",
            "--port",
            str(port),
            "--app-url",
            "http://127.0.0.1:7000/",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        for _ in range(100):  # at most ~10 s
            try:
                health = requests.get(f"http://127.0.0.1:{port}/_fake/health", timeout=1).json()
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert health == {"ok": True, "apps": ["cli-app"]}
        answer = requests.get(
            f"http://127.0.0.1:{port}/v2/integrations/cli-app/memories?uid=u1",
            headers={"Authorization": "Bearer sk_given"},
            timeout=5,
        )
        assert answer.json() == {"detail": "App is not enabled for this user"}
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "sk_given" not in output
    assert f"fake OMI on http://127.0.0.1:{port}" in output
    # The URLs come from the app's own routes, under --app-url.
    assert "App Home URL http://127.0.0.1:7000/auth/callback" in output
    assert "setup-completed URL http://127.0.0.1:7000/auth/setup-completed" in output
    assert "webhook URL (memory_creation) http://127.0.0.1:7000/hooks/conversation" in output
    assert "app cliapp (cli-app) -> App Home URL" in output  # the app's own name
    chat = f"chat page (call the app's tools as OMI's chat does): http://127.0.0.1:{port}/_fake/chat?app_id=cli-app&uid=fake-user-1"
    assert chat in output


def test_check_prints_webhook_urls_and_warns_when_unsigned() -> None:
    from flask_omi import OmiWebhooks

    app = make_app(OmiBlueprint(), **{**GOOD, "OMI_SINGLE_PROCESS": False, "OMI_CONFIRM_SIGNIN": False})
    hooks = OmiWebhooks()
    hooks.on_conversation_created(lambda event: None)
    hooks.on_transcript(lambda batch: None)
    app.register_blueprint(hooks)
    result = app.test_cli_runner().invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert "Webhook URL (memory_creation): https://app.example.com/omi/webhooks/conversation" in result.stdout
    assert (
        "Webhook URL (transcript_processed): https://app.example.com/omi/webhooks/transcript" in result.stdout
    )
    # No handler, no URL: OMI would get 404 no_handler and disable the app after 72 h of failures.
    assert "audio_bytes" not in result.stdout
    assert (
        "warning: (must fix) OMI_SIGNING_SECRET is not set: webhooks are accepted unsigned" in result.stdout
    )
    assert "warning: (must fix) OMI_WEBHOOK_STORE is kept in each process" in result.stdout
    assert result.exit_code == 1


def test_a_webhook_only_app_has_flask_omi_and_lists_only_handled_webhooks() -> None:
    """A webhook-only app got "No such command 'omi'"; and every webhook URL was listed, handled
    or not."""
    from flask import Flask

    from flask_omi import OmiWebhooks

    app = Flask(__name__)
    app.config.update(OMI_SIGNING_SECRET="whsec_x", OMI_STORE=None, OMI_SINGLE_PROCESS=True)
    hooks = OmiWebhooks()
    hooks.on_transcript(lambda batch: None)
    app.register_blueprint(hooks)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["omi", "urls", "--base-url", "https://app.example.com"])
    assert listed.exit_code == 0, listed.output
    assert (
        "Webhook URL (transcript_processed): https://app.example.com/omi/webhooks/transcript" in listed.output
    )
    assert "memory_creation" not in listed.output and "App Home URL" not in listed.output
    checked = runner.invoke(args=["omi", "check", "--base-url", "https://app.example.com"])
    assert checked.exit_code == 0 and "must fix" not in checked.output, checked.output
    assert "SECRET_KEY" not in checked.output  # no sign-in, no session to protect
