"""The sign-in routes driven through the Flask test client, as OMI's page would drive them."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import OmiBlueprint, omi_bp
from flask_omi.signin.state import PENDING_KEY

from .conftest import APP_ID, Clock, make_app, start_login


def test_login_redirects_to_omi_authorize_with_fresh_url_safe_state(client: FlaskClient) -> None:
    response = client.get("/omi/login")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "api.omi.me", "/v1/oauth/authorize")
    query = parse_qs(location.query)
    state = query["state"][0]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", state)  # 256 bits, survives OMI's unencoded concatenation
    assert query["app_id"] == [APP_ID]
    assert response.headers["Cache-Control"] == "no-store"
    assert state != start_login(client)


def test_api_base_is_configurable(bp: OmiBlueprint) -> None:
    app = make_app(bp, OMI_API_BASE="http://127.0.0.1:8765/")
    location = app.test_client().get("/omi/login").headers["Location"]
    assert location.startswith("http://127.0.0.1:8765/v1/oauth/authorize?app_id=")


def test_callback_signs_in_and_returns_to_next(client: FlaskClient) -> None:
    state = start_login(client, "/dashboard?tab=2")
    response = client.get(f"/omi/callback?uid=user_1&state={state}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard?tab=2"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/dashboard").get_data(as_text=True) == "hello user_1"


def test_callback_without_next_goes_to_login_redirect(bp: OmiBlueprint) -> None:
    client = make_app(bp, OMI_LOGIN_REDIRECT="/welcome").test_client()
    state = start_login(client)
    assert client.get(f"/omi/callback?uid=u1&state={state}").headers["Location"] == "/welcome"


def test_unsafe_next_is_dropped_at_login(client: FlaskClient) -> None:
    state = start_login(client, "//evil.example/")
    assert client.get(f"/omi/callback?uid=u1&state={state}").headers["Location"] == "/"


def test_next_is_kept_server_side_not_in_state(client: FlaskClient) -> None:
    response = client.get("/omi/login?next=/secret-place")
    assert "secret-place" not in response.headers["Location"]


def test_two_tabs_both_complete(client: FlaskClient) -> None:
    first = start_login(client, "/one")
    second = start_login(client, "/two")
    assert client.get(f"/omi/callback?uid=u1&state={second}").headers["Location"] == "/two"
    assert client.get(f"/omi/callback?uid=u1&state={first}").headers["Location"] == "/one"


def test_session_fixation_planted_values_do_not_survive(app: Flask, client: FlaskClient) -> None:
    with client.session_transaction() as s:
        s["planted"] = "by-attacker"
        s["_omi_uid"] = "attacker"
    state = start_login(client)
    client.get(f"/omi/callback?uid=victim&state={state}")
    with client.session_transaction() as s:
        assert "planted" not in s
        assert s["_omi_uid"] == "victim"


def test_visit_without_state_never_signs_in_and_offers_sign_in(client: FlaskClient) -> None:
    # The OMI mobile app opens App Home as ?uid=... with no state.
    response = client.get("/omi/callback?uid=user_1")
    assert response.status_code == 200
    assert 'href="/omi/login"' in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302
    with client.session_transaction() as s:
        assert "_omi_uid" not in s


def test_visit_without_state_when_already_signed_in_as_that_uid_continues(client: FlaskClient) -> None:
    state = start_login(client)
    client.get(f"/omi/callback?uid=user_1&state={state}")
    response = client.get("/omi/callback?uid=user_1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    # Signed in as someone else: the page, not a silent switch.
    assert client.get("/omi/callback?uid=someone_else").status_code == 200
    assert client.get("/dashboard").get_data(as_text=True) == "hello user_1"


def test_logout_post_signs_out(client: FlaskClient) -> None:
    state = start_login(client)
    client.get(f"/omi/callback?uid=u1&state={state}")
    response = client.post("/omi/logout")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/dashboard").status_code == 302


def test_logout_get_refused_unless_allowed(bp: OmiBlueprint) -> None:
    client = make_app(bp).test_client()
    state = start_login(client)
    client.get(f"/omi/callback?uid=u1&state={state}")
    response = client.get("/omi/logout")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert client.get("/dashboard").status_code == 200


def test_logout_get_when_allowed_and_custom_redirect() -> None:
    client = make_app(OmiBlueprint(), OMI_LOGOUT_ALLOW_GET=True, OMI_LOGOUT_REDIRECT="/bye").test_client()
    state = start_login(client)
    client.get(f"/omi/callback?uid=u1&state={state}")
    response = client.get("/omi/logout")
    assert response.headers["Location"] == "/bye"
    assert client.get("/dashboard").status_code == 302


def test_custom_url_prefix_and_blueprint_name() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 32, OMI_APP_ID=APP_ID)
    app.register_blueprint(OmiBlueprint(), url_prefix="/auth/omi", name="signin")

    @app.get("/p")
    def protected() -> str:
        from flask_omi import omi_login_required

        return omi_login_required(lambda: "ok")()  # type: ignore[no-any-return]

    client = app.test_client()
    assert client.get("/p").headers["Location"] == "/auth/omi/login?next=/p"
    state = start_login_at(client, "/auth/omi/login")
    assert client.get(f"/auth/omi/callback?uid=u1&state={state}").status_code == 302
    assert client.get("/p").get_data(as_text=True) == "ok"


def start_login_at(client: FlaskClient, path: str) -> str:
    return parse_qs(urlsplit(client.get(path).headers["Location"]).query)["state"][0]


def test_default_blueprint_serves_several_apps() -> None:
    first, second = make_app(omi_bp), make_app(omi_bp)
    for app in (first, second):
        client = app.test_client()
        state = start_login(client)
        assert client.get(f"/omi/callback?uid=u1&state={state}").status_code == 302
        assert client.get("/dashboard").status_code == 200


def test_expired_state_is_refused(app: Flask, client: FlaskClient, clock: Clock) -> None:
    state = start_login(client)
    clock.now += 601
    response = client.get(f"/omi/callback?uid=u1&state={state}")
    assert response.status_code == 400
    assert "state_expired" in response.get_data(as_text=True)


def test_state_max_age_is_configurable(bp: OmiBlueprint) -> None:
    app = make_app(bp, OMI_STATE_MAX_AGE=30)
    clock = Clock()
    app.extensions["omi"].signin.clock = clock
    client = app.test_client()
    stale = start_login(client)
    clock.now += 31
    assert client.get(f"/omi/callback?uid=u1&state={stale}").status_code == 400
    assert client.get(f"/omi/callback?uid=u1&state={start_login(client)}").status_code == 302


def test_pending_sign_ins_are_capped(app: Flask, client: FlaskClient) -> None:
    states = [start_login(client) for _ in range(8)]
    with client.session_transaction() as s:
        assert len(s[PENDING_KEY]) == 5
    response = client.get(f"/omi/callback?uid=u1&state={states[0]}")
    assert response.status_code == 400
    assert "state_superseded" in response.get_data(as_text=True)
    assert client.get(f"/omi/callback?uid=u1&state={states[-1]}").status_code == 302


@pytest.mark.parametrize("max_pending", [1, 3])
def test_pending_cap_is_configurable(max_pending: int) -> None:
    client = make_app(OmiBlueprint(), OMI_MAX_PENDING_SIGNINS=max_pending).test_client()
    for _ in range(max_pending + 2):
        start_login(client)
    with client.session_transaction() as s:
        assert len(s[PENDING_KEY]) == max_pending


def test_jinja_sees_current_omi_user(app: Flask, client: FlaskClient) -> None:
    from flask import render_template_string

    @app.get("/who")
    def who() -> str:
        return render_template_string("{{ current_omi_user.is_authenticated }}:{{ current_omi_user.uid }}")

    assert client.get("/who").get_data(as_text=True) == "False:None"
    client.get(f"/omi/callback?uid=u9&state={start_login(client)}")
    assert client.get("/who").get_data(as_text=True) == "True:u9"


def test_login_route_keeps_the_apps_own_session_data(client: FlaskClient) -> None:
    with client.session_transaction() as s:
        s["cart"] = [1, 2]
    start_login(client)
    with client.session_transaction() as s:
        assert s["cart"] == [1, 2]
