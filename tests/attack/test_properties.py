"""Property-based: whatever the callback's query string or ``next``, never a 500, never off-origin."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_omi import OmiBlueprint

from ..conftest import make_app
from .browser_url import same_origin

ORIGIN = "https://app.example"
APP = make_app(OmiBlueprint())
EXAMPLES = 300
#: Examples run so far; recorded as this suite's "cases" (record_property is stateless, so reuse is safe).
counted = {"callback": 0, "next": 0}

query_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200
) | st.sampled_from(["uid=u1&state=None", "state=", "uid=&state=&state=", "%", "%zz", "&&==", "uid=%00"])


def check(client: FlaskClient, response_status: int, location: str | None) -> None:
    assert response_status < 500
    if location is not None:
        assert same_origin(location, f"{ORIGIN}/omi/callback"), location


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=query_text, with_real_state=st.booleans())
def test_callback_query_never_500_nor_offsite(
    raw: str, with_real_state: bool, record_property: pytest.RecordProperty
) -> None:
    counted["callback"] += 1
    record_property("cases", counted["callback"])
    client = APP.test_client()
    query = quote(raw, safe="=&%")
    if with_real_state:
        state = client.get("/omi/login", base_url=ORIGIN).headers["Location"].rsplit("state=", 1)[1]
        query = f"{query}&state={state}"
    response = client.get(f"/omi/callback?{query}", base_url=ORIGIN)
    check(client, response.status_code, response.headers.get("Location"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    target=st.text(max_size=300)
    | st.builds(
        lambda a, b: a + b,
        st.sampled_from(["/", "//", "\\", "/\\", "http:", "https://", " /", "\t/"]),
        st.text(max_size=50),
    )
)
def test_next_never_offsite(target: str, record_property: pytest.RecordProperty) -> None:
    counted["next"] += 1
    record_property("cases", counted["next"])
    client = APP.test_client()
    login = client.get(f"/omi/login?next={quote(target, safe='')}", base_url=ORIGIN)
    assert login.status_code == 302
    state = login.headers["Location"].rsplit("state=", 1)[1]
    response = client.get(f"/omi/callback?uid=u1&state={state}", base_url=ORIGIN)
    assert response.status_code == 302
    check(client, response.status_code, response.headers["Location"])
