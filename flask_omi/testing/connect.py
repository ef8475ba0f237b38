"""Connect a Flask app to the fake OMI, as a developer connects it to OMI's developer settings.

The App Home, setup-completed and webhook URLs come from the app's own routes (whatever prefix and
name its blueprints were registered with) at the URL the app is served on; the app's ``OMI_*``
settings are pointed at the fake.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from ..app_urls import APP_HOME_URL, MANIFEST_URL, SETUP_COMPLETED_URL, external_urls, webhook_field
from ..extension import get_extension
from .store import FakeApp, FakeOmiStore


@dataclass(frozen=True)
class LiveApp:
    """An app served on loopback and registered in the fake OMI (what ``omi_live_app`` gives)."""

    url: str
    app: Flask
    app_id: str
    api_key: str


def app_urls(app: Flask, base_url: str) -> dict[str, str]:
    """The URLs the app would give OMI when served at ``base_url``."""
    return external_urls(app, base_url)


def register_app_in_fake(
    fake: FakeOmiStore, app: Flask, base_url: str, **options: object
) -> tuple[FakeApp, str]:
    """Register the app's ``OMI_APP_ID`` in ``fake`` with the URLs of its routes at ``base_url``.

    A conversation webhook is configured when the app registered ``OmiWebhooks``, signed with its
    ``OMI_WEBHOOK_SECRET``, and the chat tools manifest when it registered ``OmiTools``, calls
    signed with ``OMI_TOOLS_SECRET``; the API key is the app's ``OMI_API_KEY`` or a new one.
    Returns the fake's record and the key.
    """
    urls = app_urls(app, base_url)
    webhook = urls.get(webhook_field("memory_creation"))
    settings: dict[str, object] = {
        "app_home_url": urls[APP_HOME_URL],
        "setup_completed_url": urls[SETUP_COMPLETED_URL],
        "api_key": app.config.get("OMI_API_KEY"),
    }
    if webhook is not None:
        settings.update(
            webhook_url=webhook,
            triggers_on="memory_creation",
            webhook_secret=app.config.get("OMI_WEBHOOK_SECRET"),
        )
    manifest = urls.get(MANIFEST_URL)
    if manifest is not None:
        settings.update(chat_tools_manifest_url=manifest, tools_secret=app.config.get("OMI_TOOLS_SECRET"))
    settings.update(options)
    return fake.register_app(str(app.config["OMI_APP_ID"]), **settings)  # type: ignore[arg-type]


def connect_app(fake: FakeOmiStore, fake_url: str, app: Flask, base_url: str) -> LiveApp:
    """Register the app in the fake and point the app at it (``OMI_API_BASE``, ``OMI_API_KEY``)."""
    _, key = register_app_in_fake(fake, app, base_url)
    app.config.update(OMI_API_BASE=fake_url, OMI_API_KEY=key)
    get_extension(app).client = None  # a client built before used the old settings
    return LiveApp(url=base_url, app=app, app_id=str(app.config["OMI_APP_ID"]), api_key=key)
