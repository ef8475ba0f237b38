"""``flask omi ...`` commands: set-up checks, a manual authorize URL, and the fake OMI server.

They are attached to each :class:`~flask_omi.OmiBlueprint`'s CLI group, so they appear as soon as
the blueprint is registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import click
from flask import current_app, url_for
from flask.cli import with_appcontext
from werkzeug.middleware.proxy_fix import ProxyFix

from .extension import get_extension
from .state import new_state
from .webhooks import TRIGGER_ENDPOINTS

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
MIN_SECRET_KEY_LENGTH = 32


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def external_urls(base_url: str) -> dict[str, str]:
    """The URLs to paste into OMI's developer settings, as this app generates them."""
    ext = get_extension()
    parts = urlsplit(base_url)
    with current_app.test_request_context("/", base_url=f"{parts.scheme}://{parts.netloc}{parts.path}"):
        urls = {
            "App Home URL": url_for(ext.endpoint("callback"), _external=True),
            "Setup completed URL": url_for(ext.endpoint("setup_completed"), _external=True),
        }
        webhooks = current_app.extensions.get("omi_webhooks")
        if webhooks is not None:
            for trigger, endpoint in TRIGGER_ENDPOINTS.items():
                urls[f"Webhook URL ({trigger})"] = url_for(
                    f"{webhooks.endpoint_prefix}.{endpoint}", _external=True
                )
        return urls


def check_settings(base_url: str, behind_proxy: bool) -> Findings:
    app = current_app
    config = app.config
    found = Findings()
    secret = app.secret_key
    if not secret or len(secret) < MIN_SECRET_KEY_LENGTH:
        found.problems.append(
            f"SECRET_KEY is missing or shorter than {MIN_SECRET_KEY_LENGTH} characters: anyone who "
            "guesses it can forge sessions (and so sign-ins). Use secrets.token_hex(32)."
        )
    if str(config.get("SESSION_COOKIE_SAMESITE") or "").lower() == "strict":
        found.problems.append(
            "SESSION_COOKIE_SAMESITE is 'Strict': the browser will not send the session cookie on "
            "OMI's redirect back to the App Home URL, so every sign-in fails its state check. Use 'Lax'."
        )
    parts = urlsplit(base_url)
    local = (parts.hostname or "") in LOCAL_HOSTS
    if parts.query or parts.fragment:
        found.problems.append(
            "The App Home URL would carry a query string or a #fragment: OMI appends '?uid=...' by "
            "plain concatenation, so the parameters would be lost or mangled."
        )
    if parts.scheme != "https" and not local:
        found.problems.append("The App Home URL uses plain http on a public host: use https.")
    if not app.debug and not config.get("SESSION_COOKIE_SECURE") and not local:
        found.problems.append(
            "SESSION_COOKIE_SECURE is off outside debug: the session cookie (your users' sign-in) "
            "would also travel over plain http."
        )
    if "omi_webhooks" in app.extensions and not config.get("OMI_WEBHOOK_SECRET"):
        found.warnings.append(
            "OMI_WEBHOOK_SECRET is not set: webhooks are accepted unsigned, so anyone who knows the "
            "URL can post events for any uid. Set it if OMI signs your webhooks."
        )
    if not isinstance(app.wsgi_app, ProxyFix):
        message = (
            "The app is not wrapped in werkzeug's ProxyFix: behind a reverse proxy, generated URLs "
            "(the callback, redirects) use the proxy's internal scheme and host."
        )
        if behind_proxy:
            found.problems.append(message)
        elif parts.scheme == "https" and not local:
            found.warnings.append(message + " Ignore this if nothing sits in front of the app.")
    return found


def register_commands(cli: click.Group) -> None:
    @cli.command("check")
    @click.option(
        "--base-url",
        help="The app's public URL, e.g. https://example.com (default: from SERVER_NAME).",
    )
    @click.option("--behind-proxy", is_flag=True, help="The app runs behind a reverse proxy.")
    @with_appcontext
    def check(base_url: str | None, behind_proxy: bool) -> None:
        """Print the URLs to paste into OMI and check the settings sign-in depends on."""
        config = current_app.config
        if base_url is None:
            if not config.get("SERVER_NAME"):
                raise click.UsageError("pass --base-url (or set SERVER_NAME) so the URLs can be built")
            base_url = f"{config.get('PREFERRED_URL_SCHEME', 'http')}://{config['SERVER_NAME']}"
        click.echo(f"OMI app id: {config['OMI_APP_ID']}")
        for name, url in external_urls(base_url).items():
            click.echo(f"{name}: {url}")
        found = check_settings(base_url, behind_proxy)
        for warning in found.warnings:
            click.echo(f"warning: {warning}", err=True)
        for problem in found.problems:
            click.echo(f"problem: {problem}", err=True)
        if found.problems:
            raise SystemExit(1)
        click.echo("ok: no problems found")

    @cli.command("login-url")
    @with_appcontext
    def login_url_command() -> None:
        """Print an OMI authorize URL for this app, to try OMI's consent page by hand."""
        from .views import authorize_url

        click.echo(authorize_url(new_state()))
        click.echo(
            "note: this state is bound to no browser, so the callback will refuse it "
            "(state_mismatch); a full sign-in starts at the login route.",
            err=True,
        )

    @cli.command("fake-server")
    @click.option("--port", default=8765, show_default=True, type=int)
    @click.option("--app-home-url", default="http://127.0.0.1:5000/omi/callback", show_default=True)
    @click.option("--setup-completed-url", default=None, help="Ask this URL before enabling the app.")
    @click.option("--api-key", default=None, help="Default: OMI_API_KEY, else a generated sk_ key.")
    @with_appcontext
    def fake_server(
        port: int, app_home_url: str, setup_completed_url: str | None, api_key: str | None
    ) -> None:
        """Run the fake OMI on 127.0.0.1, with this app (OMI_APP_ID) registered in it."""
        from .testing import FakeOmi

        fake = FakeOmi()
        given_key = api_key or current_app.config.get("OMI_API_KEY")
        _, key = fake.register_app(
            current_app.config["OMI_APP_ID"],
            app_home_url=app_home_url,
            setup_completed_url=setup_completed_url,
            api_key=given_key,
        )
        click.echo(f"fake OMI on http://127.0.0.1:{port}  (set OMI_API_BASE to this)")
        click.echo(f"app {current_app.config['OMI_APP_ID']} -> App Home URL {app_home_url}")
        # A key the user gave is theirs and stays unprinted; a generated one is needed to call the fake.
        click.echo("API key: the one you gave (OMI_API_KEY)" if given_key else f"API key: {key}")
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, fake.wsgi_app, threaded=True)
