"""Helpers that several test modules share: one copy each, so that they cannot drift apart."""

from __future__ import annotations

import socket
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from flask_omi import OmiBlueprint
from flask_omi.testing import FakeOmi

from .conftest import APP_ID, make_app, start_login


def sign_in(client: FlaskClient, uid: str = "u1") -> None:
    """Sign ``client`` in through the real login and callback routes."""
    answer = client.get(f"/omi/callback?uid={uid}&state={start_login(client)}")
    assert answer.status_code == 302, answer.get_data(as_text=True)


def free_port() -> int:
    """A loopback port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verifying_app(
    fake: FakeOmi,
    *,
    enabled: tuple[str, ...] = ("u1",),
    base_url: str | None = None,
    verify_timeout: float = 2.0,
    api_timeout: float = 1.0,
) -> Flask:
    """An app with ``OMI_VERIFY_UID`` on, registered in ``fake``, where ``enabled`` enabled it."""
    _, key = fake.register_app(APP_ID, app_home_url="http://127.0.0.1:9/omi/callback")
    for uid in enabled:
        fake.enable_app(uid, APP_ID)
    return make_app(
        OmiBlueprint(),
        OMI_API_KEY=key,
        OMI_API_BASE=base_url or fake.url,
        OMI_VERIFY_UID=True,
        OMI_VERIFY_TIMEOUT=verify_timeout,
        OMI_API_TIMEOUT=api_timeout,
    )


def assert_refused(response: Any, status: int, reason: str) -> None:
    """A refusal as its reader sees it: the status, and the reason in the body (a JSON ``error``
    or ``detail``, or the text of an error page), so that a refusal for another reason fails."""
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    assert response.status_code == status, (response.status_code, text[:500])
    assert reason in text, text[:500]
