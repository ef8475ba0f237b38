"""``flask omi ...`` commands, on the module-level group :data:`flask_omi.cli.omi_cli`: the URLs
to paste into OMI, the settings audit, a manual authorize URL, and the fake OMI server."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import click
from flask import current_app
from flask.cli import with_appcontext

from flask_omi.cli import omi_cli
from flask_omi.cli.app_urls import external_urls
from flask_omi.cli.audit import check_settings
from flask_omi.signin.state import new_state


@omi_cli.command("check")
@click.option(
    "--base-url",
    help="The app's public URL, e.g. https://example.com (default: from SERVER_NAME).",
)
@click.option("--behind-proxy", is_flag=True, help="The app runs behind a reverse proxy.")
@click.option(
    "--online",
    is_flag=True,
    help="Also connect to the configured Redis and Celery's broker and check their settings.",
)
@with_appcontext
def check(base_url: str | None, behind_proxy: bool, online: bool) -> None:
    """Print the URLs to paste into OMI and check the settings sign-in depends on."""
    config = current_app.config
    if base_url is None:
        if not config.get("SERVER_NAME"):
            raise click.UsageError("pass --base-url (or set SERVER_NAME) so the URLs can be built")
        base_url = f"{config.get('PREFERRED_URL_SCHEME', 'http')}://{config['SERVER_NAME']}"
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _print_urls(app, base_url)
    findings = check_settings(app, base_url, behind_proxy)
    if online:
        from flask_omi.cli.online_audit import online_findings

        read, more = online_findings(app)
        for line in read:
            click.echo(line)
        findings.extend(more)
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


@omi_cli.command("urls")
@click.option("--base-url", required=True, help="The app's public URL, e.g. https://example.com.")
@with_appcontext
def urls(base_url: str) -> None:
    """Print the URLs to paste into OMI's developer settings (only webhooks that have a handler)."""
    _print_urls(current_app._get_current_object(), base_url)  # type: ignore[attr-defined]


def _print_urls(app: Any, base_url: str) -> None:
    click.echo(f"OMI app id: {app.config.get('OMI_APP_ID')}")
    for name, url in external_urls(app, base_url).items():
        click.echo(f"{name}: {url}")


@omi_cli.command("login-url")
@with_appcontext
def login_url_command() -> None:
    """Print an OMI authorize URL for this app, to try OMI's consent page by hand."""
    from flask_omi.signin.views import authorize_url

    click.echo(authorize_url(new_state()))
    click.echo(
        "note: this state is bound to no browser, so the callback will refuse it "
        "(state_mismatch); a full sign-in starts at the login route.",
        err=True,
    )


@omi_cli.command("fake-server")
@click.option("--port", default=8765, show_default=True, type=int, help="The fake OMI's port.")
@click.option(
    "--app-url",
    default="http://127.0.0.1:5000",
    show_default=True,
    help="Where this app is served; its OMI URLs are built from its own routes under it.",
)
@click.option("--api-key", default=None, help="Default: OMI_API_KEY, else a generated sk_ key.")
@with_appcontext
def fake_server(port: int, app_url: str, api_key: str | None) -> None:
    """Run the fake OMI on 127.0.0.1, with this app (OMI_APP_ID) registered in it.

    The App Home, setup-completed and (with OmiWebhooks) webhook URLs are this app's own
    routes at --app-url, whatever prefix its blueprints were registered with.
    """
    from flask_omi.testing import FakeOmi, register_app_in_fake

    fake = FakeOmi()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    given_key = api_key or app.config.get("OMI_API_KEY")
    record, key = register_app_in_fake(fake, app, app_url.rstrip("/"), api_key=given_key, name=app.name)
    base = f"http://127.0.0.1:{port}"
    click.echo(f"fake OMI on {base}  (set OMI_API_BASE to this)")
    click.echo(f"app {record.name} ({record.app_id}) -> App Home URL {record.app_home_url}")
    click.echo(f"setup-completed URL {record.setup_completed_url}")
    if record.webhook_url:
        click.echo(f"webhook URL ({record.triggers_on}) {record.webhook_url}")
    if record.chat_tools_manifest_url:
        click.echo(f"chat tools manifest {record.chat_tools_manifest_url}")
    query = urlencode({"app_id": record.app_id, "uid": "fake-user-1"})
    click.echo(f"chat page (call the app's tools as OMI's chat does): {base}/_fake/chat?{query}")
    inbox = urlencode({"uid": "fake-user-1"})
    click.echo(f"phone inbox (notifications and sign-in codes OMI sent): {base}/_fake/inbox?{inbox}")
    # A key the user gave is theirs and stays unprinted; a generated one is needed to call the fake.
    click.echo("API key: the one you gave (OMI_API_KEY)" if given_key else f"API key: {key}")
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, fake.wsgi_app, threaded=True)
