"""Test helpers for apps that use flask-omi: a fake OMI and a way to sign test clients in.

The pytest plugin (:mod:`flask_omi.testing.pytest_plugin`) is registered automatically and offers
the ``fake_omi`` and ``omi_sign_in`` fixtures.
"""

from __future__ import annotations

from flask.testing import FlaskClient

from ..user import UID_KEY
from ..validation import is_valid_uid
from .fake_omi import FakeOmi, FakeOmiRefused
from .server import LiveServer
from .store import ALL_ACTIONS, FakeApp, FakeOmiStore, Fault
from .webhook_sender import Delivery, deliver_webhook, send_webhook, webhook_url


def sign_in_test_client(client: FlaskClient, uid: str) -> None:
    """Sign a Flask test client in as ``uid`` without the round trip through OMI."""
    if not is_valid_uid(uid):
        raise ValueError(f"not a valid OMI uid: {uid!r}")
    with client.session_transaction() as session:
        session[UID_KEY] = uid


__all__ = [
    "ALL_ACTIONS",
    "Delivery",
    "FakeApp",
    "FakeOmi",
    "FakeOmiRefused",
    "FakeOmiStore",
    "Fault",
    "LiveServer",
    "deliver_webhook",
    "send_webhook",
    "sign_in_test_client",
    "webhook_url",
]
