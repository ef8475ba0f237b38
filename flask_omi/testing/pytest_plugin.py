"""pytest fixtures for apps that use flask-omi (registered through the ``pytest11`` entry point).

- ``fake_omi``: a :class:`~flask_omi.testing.FakeOmi` serving on a free loopback port for the test.
- ``omi_sign_in``: ``omi_sign_in(client, uid)`` signs a Flask test client in without OMI.

flask-omi itself is imported inside the fixtures, not at plugin load, so that merely having the
package installed costs other projects' test runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from flask_omi.testing import FakeOmi


@pytest.fixture
def fake_omi() -> Iterator[FakeOmi]:
    from flask_omi.testing import FakeOmi

    with FakeOmi() as fake:
        yield fake


@pytest.fixture
def omi_sign_in() -> Callable[[FlaskClient, str], None]:
    from flask_omi.testing import sign_in_test_client

    return sign_in_test_client
