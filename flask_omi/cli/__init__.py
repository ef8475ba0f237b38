"""``flask omi ...``: the commands (:mod:`.commands`), the URLs to paste into OMI
(:mod:`.app_urls`), and the settings audit (:mod:`.audit`, :mod:`.deployment_audit`, and
:mod:`.online_audit` against the running Redis and broker).

One module-level group, :data:`omi_cli`, added to ``app.cli`` by whichever flask-omi blueprint is
registered first (sign-in, webhooks or tools), so that a webhook-only app has ``flask omi`` too.
The blueprints import only this package; its commands load when the group is added.
"""

from __future__ import annotations

import importlib

import click
from flask.sansio.app import App


@click.group("omi", help="flask-omi: the URLs to paste into OMI, and the settings audit.")
def omi_cli() -> None:
    """The ``flask omi`` group."""


def add_cli(app: App) -> None:
    """Give ``app`` the ``flask omi`` commands (once, whichever part is registered first)."""
    importlib.import_module("flask_omi.cli.commands")  # attaches the commands to the group
    if "omi" not in app.cli.commands:
        app.cli.add_command(omi_cli)
