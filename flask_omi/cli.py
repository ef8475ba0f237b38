"""``flask omi ...`` commands: set-up checks, a manual authorize URL, and the fake OMI server.

They are attached to each :class:`~flask_omi.OmiBlueprint`'s CLI group, so they appear as soon as
the blueprint is registered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import click
from flask import current_app, url_for
from flask.cli import with_appcontext

from .checks import check_settings
from .extension import get_extension
from .state import new_state
from .webhooks import TRIGGER_ENDPOINTS


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
        findings = check_settings(current_app._get_current_object(), base_url, behind_proxy)  # type: ignore[attr-defined]
        # One stream, one prefix: a finding is never separated from the verdict below it.
        for finding in findings:
            click.echo(f"warning: {'(must fix) ' if finding.fatal else ''}{finding.message}")
        fatal = sum(finding.fatal for finding in findings)
        if not findings:
            click.echo("ok: no problems found")
            return
        click.echo(f"result: {len(findings)} warning(s), {fatal} of them must be fixed before going live")
        if fatal:
            raise SystemExit(1)

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
