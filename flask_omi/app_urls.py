"""The app's own URLs as OMI must be given them: the values to paste into OMI's developer settings.

Built from the app's routes (whatever prefix and name its blueprints were registered with) at the
public URL the app is served on. ``flask omi check`` prints them, the settings audit checks them,
and the fake OMI is set up from exactly them, so a wrong instruction fails a test.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, url_for

from .extension import get_extension
from .inbound.protocol import TRIGGER_RECEIVERS

APP_HOME_URL = "App Home URL"
SETUP_COMPLETED_URL = "Setup completed URL"
MANIFEST_URL = "Chat tools manifest URL"


def webhook_field(trigger: str) -> str:
    """The name under which a trigger's webhook URL is listed."""
    return f"Webhook URL ({trigger})"


def external_urls(app: Flask, base_url: str) -> dict[str, str]:
    """The URLs to paste into OMI, as this app generates them when served at ``base_url``."""
    ext = get_extension(app)
    parts = urlsplit(base_url)
    with app.test_request_context("/", base_url=f"{parts.scheme}://{parts.netloc}{parts.path}"):
        urls = {
            APP_HOME_URL: url_for(ext.endpoint("callback"), _external=True),
            SETUP_COMPLETED_URL: url_for(ext.endpoint("setup_completed"), _external=True),
        }
        tools = app.extensions.get("omi_tools")
        if tools is not None:
            urls[MANIFEST_URL] = url_for(f"{tools.endpoint_prefix}.manifest", _external=True)
        webhooks = app.extensions.get("omi_webhooks")
        if webhooks is not None:
            for trigger, endpoint in TRIGGER_RECEIVERS.items():
                urls[webhook_field(trigger)] = url_for(
                    f"{webhooks.endpoint_prefix}.{endpoint}", _external=True
                )
        return urls
