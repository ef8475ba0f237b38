"""Cookie tossing, in a real Chromium over HTTPS: a sibling subdomain plants the attacker's session
cookie with ``Path=/omi/callback``. The browser sends it before the victim's own, so the app reads
the attacker's pending sign-in and signs the victim in as the attacker (login CSRF). Named
``__Host-session``, the session cookie cannot be planted from a sibling, and the attack fails.

Both hosts are names under ``tossing.test`` that Chromium maps to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, redirect
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from flask_omi import OmiBlueprint, current_omi_user

from ..chromium import chromium

pytestmark = [
    pytest.mark.browser,
    # The attacker's own requests skip certificate checks: the certificate names the test domain.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

DOMAIN = "tossing.test"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for the HTTPS cookie tests (make test installs it)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN=*.{DOMAIN}",
         "-addext", f"subjectAltName=DNS:*.{DOMAIN}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


class HttpsServer:
    def __init__(self, app: Any, certificate: tuple[str, str]) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=certificate)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def victim_app(cookie_name: str) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="d1f0c3b9a8e7264f5a1b0c9d8e7f6a5b4c3d2e1f",
        OMI_APP_ID="toss-app",
        OMI_API_BASE="https://omi.invalid",
        SESSION_COOKIE_NAME=cookie_name,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.register_blueprint(OmiBlueprint())

    @app.get("/whoami")
    def whoami() -> str:
        return str(current_omi_user.uid)

    return app


def evil_app(planted: dict[str, str]) -> Flask:
    """The sibling subdomain: plants cookies for the whole domain, then sends the victim on."""
    app = Flask("evil")

    @app.get("/")
    def toss() -> Response:
        response = redirect(planted["callback"])
        for name in ("session", "__Host-session"):
            response.headers.add(
                "Set-Cookie",
                f"{name}={planted['cookie']}; Domain={DOMAIN}; Path=/omi/callback; Secure; SameSite=Lax",
            )
        return response

    return app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1") as launched:
        yield launched


@pytest.mark.parametrize(("cookie_name", "tossed"), [("session", True), ("__Host-session", False)])
def test_cookie_tossing_from_a_sibling_subdomain(
    browser: Any, certificate: tuple[str, str], cookie_name: str, tossed: bool, tmp_path: Path
) -> None:
    planted: dict[str, str] = {}
    app_server = HttpsServer(victim_app(cookie_name), certificate)
    evil_server = HttpsServer(evil_app(planted), certificate)
    app_url = f"https://app.{DOMAIN}:{app_server.port}"
    try:
        # The attacker starts a sign-in of their own and keeps its cookie and state.
        attacker = requests.Session()
        start = attacker.get(
            f"https://127.0.0.1:{app_server.port}/omi/login", allow_redirects=False, verify=False, timeout=10
        )
        state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
        planted["cookie"] = start.cookies[cookie_name]
        planted["callback"] = f"{app_url}/omi/callback?uid=attacker&state={state}"

        context = browser.new_context(ignore_https_errors=True)
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.goto(f"{app_url}/whoami")  # the victim's own visit: their own session cookie
        answer = page.goto(f"https://evil.{DOMAIN}:{evil_server.port}/")
        assert answer is not None
        landed = (answer.status, answer.text())
        names = {cookie["name"] for cookie in context.cookies() if cookie["path"] == "/omi/callback"}
        page.goto(f"{app_url}/whoami")
        who = page.text_content("body")
        context.close()
    finally:
        app_server.close()
        evil_server.close()
    if tossed:
        assert names == {"session"}  # the browser refused only the __Host- one
        assert who == "attacker"  # the attack works against a plain cookie name
    else:
        assert "__Host-session" not in names
        assert landed[0] == 400 and "state_mismatch" in landed[1]
        assert who == "None"
