"""Connect a Flask app to the fake OMI, as a developer connects it to OMI's developer settings.

The App Home, setup-completed and webhook URLs come from the app's own routes (whatever prefix and
name its blueprints were registered with) at the URL the app is served on; the app's ``OMI_*``
settings are pointed at the fake.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from flask_omi._registration import record_of
from flask_omi.cli.app_urls import (
    APP_HOME_URL,
    MANIFEST_URL,
    SETUP_COMPLETED_URL,
    external_urls,
    webhook_field,
)
from flask_omi.config import signing_secrets
from flask_omi.inbound.payloads import PROACTIVE_SCOPES
from flask_omi.inbound.protocol import TRIGGERS
from flask_omi.testing.fake.store import FakeApp, FakeOmiStore


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

    A webhook is configured when the app registered ``OmiWebhooks``: OMI's one trigger per app is
    the first one the app handles (conversations first), and every handled trigger's URL is kept
    for tests that trigger another; deliveries are signed with the app's signing secret. The chat
    tools manifest is configured when the app has ``OmiTools``; the API
    key is the app's ``OMI_API_KEY`` or a new one. The URLs are exactly what ``flask omi check``
    prints for pasting into OMI, so a wrong instruction fails the tests that use the fake.
    Returns the fake's record and the key.
    """
    urls = app_urls(app, base_url)
    handled = {
        trigger: urls[webhook_field(trigger)] for trigger in TRIGGERS if webhook_field(trigger) in urls
    }
    first = next(iter(handled), None)
    webhook = handled.get(first) if first else None
    # The secret OMI issued the app is the one the app checks with (the first, while it rotates).
    secrets = signing_secrets(app.config)
    settings: dict[str, object] = {
        "app_home_url": urls[APP_HOME_URL],
        "setup_completed_url": urls[SETUP_COMPLETED_URL],
        "api_key": app.config.get("OMI_API_KEY"),
        "signing_secret": secrets[0] if secrets else None,
    }
    if webhook is not None:
        settings.update(
            webhook_url=webhook,
            triggers_on=first,
            webhook_urls=handled,
            # What a transcript handler's Notify needs: the capability and every scope.
            capabilities=frozenset({"proactive_notification"}),
            proactive_scopes=PROACTIVE_SCOPES,
        )
    manifest = urls.get(MANIFEST_URL)
    if manifest is not None:
        settings.update(chat_tools_manifest_url=manifest)
    settings.update(options)
    return fake.register_app(str(app.config["OMI_APP_ID"]), **settings)  # type: ignore[arg-type]


def connect_app(fake: FakeOmiStore, fake_url: str, app: Flask, base_url: str, **options: object) -> LiveApp:
    """Register the app in the fake and point the app at it (``OMI_API_BASE``, ``OMI_API_KEY``);
    ``options`` are more of the fake's app settings (``name``, ``auth_steps``...)."""
    _, key = register_app_in_fake(fake, app, base_url, **options)
    app.config.update(OMI_API_BASE=fake_url, OMI_API_KEY=key)
    record = record_of(app)
    record.client = None  # a client built before used the old settings
    if record.signin is not None:
        record.signin.fake_omi_url = fake_url  # the confirm page links to the fake's inbox and chat
    return LiveApp(url=base_url, app=app, app_id=str(app.config["OMI_APP_ID"]), api_key=key)
