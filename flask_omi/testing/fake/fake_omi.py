"""``FakeOmi``: OMI in a box, for tests and local development.

It serves OMI's sign-in pages and app API from memory (see :mod:`.oauth_routes` and
:mod:`.api_routes`), either in-process on a loopback port (:meth:`FakeOmi.start`) or from the
command line (``flask omi fake-server``).
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask, Response, render_template, request

from flask_omi.inbound.protocol import TRIGGERS
from flask_omi.testing.fake.api_routes import api
from flask_omi.testing.fake.chat import ToolCall, call_tool, chat, fetch_tools, take_transcript_answer
from flask_omi.testing.fake.oauth_routes import CSRF_COOKIE, ID_TOKEN_PREFIX, oauth
from flask_omi.testing.fake.store import FakeApp, FakeOmiStore
from flask_omi.testing.server import LiveServer, answer_loopback_hosts_only
from flask_omi.testing.webhook_sender import Delivery, deliver_webhook

NO_ENDPOINTS = (
    "No configured endpoints found. Add a webhook URL, MCP server, or chat tool before re-enabling."
)
_STATE_IN_PAGE = re.compile(r'const state = "([^"]*)";')
_CSRF_IN_PAGE = re.compile(r'const csrfToken = "([^"]*)";')


class FakeOmi(FakeOmiStore):
    """The fake OMI's data (see :class:`FakeOmiStore`) plus its web app and a loopback server."""

    def __init__(self, clock: Callable[[], float] = time.time, **limits: Any) -> None:
        """``limits``: ``rate_limits=`` and ``notifications_per_hour=``, see :class:`FakeOmiStore`."""
        super().__init__(clock, **limits)
        self.wsgi_app = self._create_app()
        self._server: LiveServer | None = None

    def _create_app(self) -> Flask:
        app = Flask("flask_omi.testing", root_path=__file__.rsplit("/", 1)[0])
        app.extensions["fake_omi"] = self
        answer_loopback_hosts_only(app)
        app.register_blueprint(oauth)
        app.register_blueprint(api)
        app.register_blueprint(chat)

        @app.before_request
        def misbehave() -> Response | None:
            fault = self.take_fault(request.method, request.path)
            if fault is None:
                return None
            time.sleep(min(fault.delay, 30.0))
            if fault.status is None:
                return None
            return Response(
                fault.body, status=fault.status, headers=fault.headers, mimetype="application/json"
            )

        @app.get("/_fake/inbox")
        def inbox() -> str:
            """The notifications a uid's phone has received, newest first: where a developer reads
            the sign-in code of a confirmed sign-in."""
            uid = request.args.get("uid", "")
            return render_template("fake_omi/inbox.html", uid=uid, messages=self.notifications_for(uid)[::-1])

        @app.get("/_fake/health")
        def health() -> dict[str, Any]:
            return {"ok": True, "apps": sorted(self.apps)}

        return app

    # -- running ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The fake's base URL, ``http://127.0.0.1:<port>``: set ``OMI_API_BASE`` to it."""
        if self._server is None:
            raise RuntimeError("the fake OMI is not running: call start() first")
        return self._server.url

    def start(self, port: int = 0) -> FakeOmi:
        """Serve on 127.0.0.1 (a free port unless given) from a background thread."""
        if self._server is None:
            self._server = LiveServer(self.wsgi_app, port).start()
        return self

    def stop(self) -> None:
        """Stop serving (the data stays)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeOmi:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- acting as the user's browser on OMI's page ---------------------------------------------------
    def sign_in(self, authorize_url: str, uid: str, http: requests.Session | None = None) -> str:
        """Do what a person and OMI's page script do after the app sent them to ``authorize_url``.

        Loads the page, exchanges a fake ID token for ``uid`` and returns the URL the page would
        navigate to, built by the same unencoded concatenation. Raises :class:`FakeOmiRefused` with
        OMI's status and detail when OMI refuses.
        """
        http = http or requests.Session()
        page = http.get(authorize_url, timeout=10)
        if page.status_code != 200:
            raise FakeOmiRefused(page.status_code, _detail(page))
        match = _STATE_IN_PAGE.search(page.text)
        # The page's script reads the state from an HTML-escaped JavaScript string literal.
        page_state = json.loads(f'"{match.group(1)}"') if match else ""
        token = _CSRF_IN_PAGE.search(page.text)
        # A browser keeps one omi_oauth_csrf cookie, the last page's; requests would not send a
        # Secure cookie over the fake's plain http, so it is kept without that flag.
        cookie = page.cookies.get(CSRF_COOKIE)
        if cookie is not None:
            http.cookies.set(CSRF_COOKIE, cookie, domain=urlsplit(authorize_url).hostname or "", path="/")
        app_id = parse_qs(urlsplit(authorize_url).query).get("app_id", [""])[0]
        form = {
            "firebase_id_token": ID_TOKEN_PREFIX + uid,
            "app_id": app_id,
            "csrf_token": token.group(1) if token else "",
        }
        if page_state:
            form["state"] = page_state
        token_url = authorize_url.split("/v1/oauth/authorize", 1)[0] + "/v1/oauth/token"
        answer = http.post(token_url, data=form, timeout=15)
        if answer.status_code != 200:
            raise FakeOmiRefused(answer.status_code, _detail(answer))
        data = answer.json()
        final = f"{data['redirect_url']}?uid={data['uid']}"
        if data.get("state"):
            final += f"&state={data['state']}"
        return final

    def notifications_for(self, uid: str) -> list[str]:
        """The push notifications apps have sent ``uid`` through OMI, oldest first."""
        with self.lock:
            return list(self.notifications.get(uid, []))

    def app(self, app_id: str) -> FakeApp:
        """The fake's record of ``app_id``."""
        return self.apps[app_id]

    def check_endpoints_for_reenable(self, app_id: str) -> str | None:
        """What OMI does before it enables an app it disabled after 72 h of failures
        (``validate_app_endpoints_for_reenable``, ``backend/utils/apps.py`` 0060291d): POST ``{}`` to
        the webhook URL as configured (no uid, no signature; a 2xx is needed), then HEAD each chat
        tool's endpoint (any answer will do). Returns None when OMI would re-enable the app, else
        OMI's reason."""
        app = self.apps[app_id]
        checks = [("webhook", app.webhook_url, "POST", True)] if app.webhook_url else []
        checks += [("chat tool", tool["endpoint"], "HEAD", False) for tool in app.chat_tools]
        if not checks:
            return NO_ENDPOINTS
        for label, url, method, require_2xx in checks:
            try:
                answer = requests.request(method, url, json={}, timeout=10.0, allow_redirects=True)
            except requests.Timeout:
                return f"{label.capitalize()} endpoint timed out. Fix it before re-enabling."
            except requests.ConnectionError:
                return f"Cannot connect to {label} endpoint. Fix it before re-enabling."
            if require_2xx and not 200 <= answer.status_code < 300:
                return (
                    f"{label.capitalize()} endpoint returned {answer.status_code}. Fix it before re-enabling."
                )
        return None

    # -- webhooks -------------------------------------------------------------------------------------
    def trigger(
        self, app_id: str, uid: str, payload: Any, *, trigger: str | None = None, **options: Any
    ) -> Delivery:
        """Deliver ``payload`` to the app's ``webhook_url`` for its ``triggers_on`` as OMI does
        (see :func:`deliver_webhook`): signed with its ``signing_secret`` (both, while it rotates)
        when it has one and OMI can read it (``webhook_secret_readable``), conversations retried.
        Returns the delivery. ``trigger`` sends another of the app's triggers (OMI allows one per
        app; ``omi_live_app`` registers the app's URL for each, for tests).
        """
        app = self.apps[app_id]
        if trigger is not None:
            if trigger not in app.webhook_urls:
                raise ValueError(f"app {app_id} has no webhook URL for {trigger}")
            url = app.webhook_urls[trigger]
        elif app.webhook_url and app.triggers_on in TRIGGERS:
            url, trigger = app.webhook_url, app.triggers_on
        else:
            raise ValueError(f"app {app_id} has no webhook_url and triggers_on")
        secret = app.secrets_at(self.clock()) if app.webhook_secret_readable else None
        delivery = deliver_webhook(url, trigger, uid, payload, secret=secret, **options)
        with self.lock:
            self.deliveries.append(delivery)
        if trigger == "transcript_processed":
            take_transcript_answer(self, app, uid, delivery.response)
        return delivery

    # -- chat -----------------------------------------------------------------------------------------
    def fetch_tools(self, app_id: str) -> list[dict[str, Any]]:
        """Read the app's ``chat_tools_manifest_url`` as OMI does when the app is saved."""
        return fetch_tools(self, app_id)

    def call_tool(
        self, app_id: str, uid: str, name: str, arguments: dict[str, Any] | None = None
    ) -> ToolCall:
        """Call the app's chat tool as OMI's assistant does (signed with ``tools_secret``);
        ``.text`` is what the assistant was told, ``.status`` the app's HTTP status."""
        return call_tool(self, app_id, uid, name, arguments or {})


class FakeOmiRefused(Exception):
    """OMI's page would have shown an error instead of sending the browser back to the app."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


def _detail(response: requests.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return html.escape(response.text[:200])
