"""The app's own URLs as OMI must be given them: the values to paste into OMI's developer settings.

Built from the app's routes (whatever prefix and name its blueprints were registered with) at the
public URL the app is served on. ``flask omi check`` prints them, the settings audit checks them,
and the fake OMI is set up from exactly them, so a wrong instruction fails a test.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, url_for

from flask_omi._registration import record_of
from flask_omi.inbound.protocol import TRIGGER_RECEIVERS

APP_HOME_URL = "App Home URL"
SETUP_COMPLETED_URL = "Setup completed URL"
MANIFEST_URL = "Chat tools manifest URL"


def webhook_field(trigger: str) -> str:
    """The name under which a trigger's webhook URL is listed."""
    return f"Webhook URL ({trigger})"


def external_urls(app: Flask, base_url: str) -> dict[str, str]:
    """The URLs to paste into OMI, as this app generates them when served at ``base_url``: only
    those of parts the app registered, and only webhooks it has a handler for."""
    record = record_of(app)
    parts = urlsplit(base_url)
    urls: dict[str, str] = {}
    with app.test_request_context("/", base_url=f"{parts.scheme}://{parts.netloc}{parts.path}"):
        if record.signin is not None:
            urls[APP_HOME_URL] = url_for(record.signin.endpoint("callback"), _external=True)
            urls[SETUP_COMPLETED_URL] = url_for(record.signin.endpoint("setup_completed"), _external=True)
        if record.tools is not None:
            urls[MANIFEST_URL] = url_for(f"{record.tools.endpoint_prefix}.manifest", _external=True)
        webhooks = record.webhooks
        if webhooks is not None:
            for trigger, kind in TRIGGER_RECEIVERS.items():
                if kind in webhooks.handled:
                    urls[webhook_field(trigger)] = url_for(
                        f"{webhooks.endpoint_prefix}.{kind}", _external=True
                    )
        return urls
