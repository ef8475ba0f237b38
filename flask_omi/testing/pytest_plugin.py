"""pytest fixtures for apps that use flask-omi (registered through the ``pytest11`` entry point).

- ``fake_omi``: a :class:`~flask_omi.testing.FakeOmi` serving on a free loopback port.
- ``omi_sign_in``: ``omi_sign_in(client, uid)`` signs a Flask test client in, as a callback does.
- ``omi_sign_out``: ``omi_sign_out(client)`` signs it out, as ``POST /omi/logout`` does.
- ``omi_live_app``: your ``app`` fixture served on loopback and connected to ``fake_omi``.

flask-omi itself is imported inside the fixtures, not at plugin load, so that merely having the
package installed costs other projects' test runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from flask_omi.testing import FakeOmi, LiveApp


@pytest.fixture
def fake_omi() -> Iterator[FakeOmi]:
    """A fake OMI on a free 127.0.0.1 port for this test: OMI's sign-in pages and app API, in memory.

    Register apps with ``fake_omi.register_app(...)``, seed data with ``add_memory`` and friends,
    inject faults with ``inject_fault``; ``fake_omi.url`` is its base URL.
    """
    from flask_omi.testing import FakeOmi

    with FakeOmi() as fake:
        yield fake


@pytest.fixture
def omi_sign_in() -> Callable[..., None]:
    """``omi_sign_in(client, uid)``: sign a Flask test client in as a successful OMI callback does;
    ``omi_sign_in(client, uid, confirmed=True)`` as if the code sent to the user's OMI app had been
    typed too (``OMI_CONFIRM_SIGNIN``).

    The session is cleared and ``omi_logged_in`` is sent (so a Flask-Login bridge signs in too);
    only the round trip through OMI and the uid checks are skipped.
    """
    from flask_omi.testing import sign_in_test_client

    return sign_in_test_client


@pytest.fixture
def omi_sign_out() -> Callable[[FlaskClient], None]:
    """``omi_sign_out(client)``: sign a Flask test client out as ``POST /omi/logout`` does."""
    from flask_omi.testing import sign_out_test_client

    return sign_out_test_client


@pytest.fixture
def omi_live_app(request: pytest.FixtureRequest, fake_omi: FakeOmi) -> Iterator[LiveApp]:
    """Your ``app`` fixture, served on a free 127.0.0.1 port and connected to ``fake_omi``.

    The app's ``OMI_APP_ID`` is registered in the fake with the App Home, setup-completed and
    (when it registered ``OmiWebhooks``) webhook URLs of its own routes, and the app's
    ``OMI_API_BASE`` and ``OMI_API_KEY`` point at the fake. Gives ``.url``, ``.app``, ``.app_id`` and
    ``.api_key``. Needs a fixture named ``app`` that returns the Flask app.
    """
    from flask_omi.testing import LiveServer, connect_app

    app = request.getfixturevalue("app")
    server = LiveServer(app).bind()
    live = connect_app(fake_omi, fake_omi.url, app, server.url)
    server.start()
    try:
        yield live
    finally:
        server.stop()
