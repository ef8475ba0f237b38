"""The fake OMI's sign-in pages behave as OMI's do (section 1 of the platform notes), over HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask

from flask_omi.testing import FakeOmi, FakeOmiRefused, LiveServer

from .helpers import assert_refused


@pytest.fixture
def setup_server() -> Iterator[tuple[LiveServer, dict[str, object]]]:
    """A stand-in for an app's setup-completed URL whose answer each test chooses."""
    answer: dict[str, object] = {"body": {"is_setup_completed": True}, "status": 200, "seen": []}
    app = Flask("setup")

    @app.get("/setup-completed")
    def setup_completed() -> object:
        from flask import request

        answer["seen"].append(request.query_string.decode())  # type: ignore[attr-defined]
        time.sleep(float(answer.get("delay", 0)))  # type: ignore[arg-type]
        body = answer["body"]
        if isinstance(body, str):
            return body, answer["status"], {"Content-Type": "text/plain"}
        return app.response_class(
            __import__("json").dumps(body), status=answer["status"], mimetype="application/json"
        )

    with LiveServer(app) as server:
        yield server, answer


def authorize(fake: FakeOmi, app_id: str = "app1", state: str | None = "S1") -> str:
    url = f"{fake.url}/v1/oauth/authorize?app_id={app_id}"
    return url if state is None else f"{url}&state={state}"


def test_authorize_page_errors(fake_omi: FakeOmi) -> None:
    fake_omi.register_app("nohome", app_home_url=None)
    assert_refused(requests.get(f"{fake_omi.url}/v1/oauth/authorize", timeout=5), 422, "app_id")
    missing = requests.get(authorize(fake_omi, "unknown"), timeout=5)
    assert (missing.status_code, missing.json()) == (404, {"detail": "App not found"})
    assert_refused(requests.get(authorize(fake_omi, "nohome"), timeout=5), 400, "App home URL not configured")


def test_authorize_page_lists_permissions(fake_omi: FakeOmi) -> None:
    fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb", name="My App")
    page = requests.get(authorize(fake_omi), timeout=5)
    assert page.status_code == 200
    assert "Connect My App" in page.text and "read memories" in page.text


def test_redirect_is_plain_concatenation(fake_omi: FakeOmi) -> None:
    fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/omi/callback")
    assert fake_omi.sign_in(authorize(fake_omi), "u1") == "http://127.0.0.1:9/omi/callback?uid=u1&state=S1"
    # No state sent: OMI's page renders None as text, and it ends up in the URL.
    assert fake_omi.sign_in(authorize(fake_omi, state=None), "u1").endswith("?uid=u1&state=None")
    # HTML escaping, then no URL encoding: OMI's quirks, reproduced.
    escaped = fake_omi.sign_in(authorize(fake_omi, state="a%26b%3Dc"), "u1")
    assert escaped.endswith("?uid=u1&state=a&amp;b=c")
    quoted = fake_omi.sign_in(authorize(fake_omi, state="x%22y"), "u1")
    assert quoted.endswith("?uid=u1&state=x&#34;y")
    # An App Home URL that already has a query gets a second "?".
    fake_omi.register_app("app2", app_home_url="http://127.0.0.1:9/cb?x=1")
    assert fake_omi.sign_in(authorize(fake_omi, "app2"), "u1") == "http://127.0.0.1:9/cb?x=1?uid=u1&state=S1"


def token_form(fake: FakeOmi, **form: str) -> tuple[dict[str, str], dict[str, str]]:
    """A token form and the cookie a browser holds after opening OMI's page (for app1)."""
    page = requests.get(authorize(fake, "app1"), timeout=5)
    match = re.search(r'const csrfToken = "([^"]*)";', page.text)
    assert match and page.cookies.get("omi_oauth_csrf") == match.group(1)
    return {"csrf_token": match.group(1), **form}, {"omi_oauth_csrf": match.group(1)}


def test_token_errors(fake_omi: FakeOmi) -> None:
    fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    token = f"{fake_omi.url}/v1/oauth/token"
    form, cookie = token_form(fake_omi, firebase_id_token="forged", app_id="app1")
    assert_refused(
        requests.post(token, data=form, cookies=cookie, timeout=5), 401, "Invalid Firebase ID token"
    )
    form, cookie = token_form(fake_omi, firebase_id_token="fake-id-token:u1", app_id="zzz")
    assert_refused(requests.post(token, data=form, cookies=cookie, timeout=5), 404, "App not found")
    assert_refused(requests.post(token, data={"app_id": "app1"}, timeout=5), 422, "Field required")
    fake_omi.register_app("nohome", app_home_url=None)
    form, cookie = token_form(fake_omi, firebase_id_token="fake-id-token:u1", app_id="nohome")
    assert_refused(
        requests.post(token, data=form, cookies=cookie, timeout=5), 400, "App not configured for OAuth"
    )


def test_omis_csrf_step_oauth_py_62f4b462(fake_omi: FakeOmi) -> None:
    """OMI's page sets omi_oauth_csrf (HttpOnly, Secure, SameSite=Strict, 600 s) and embeds the same
    token; the token step wants the field (422) and a matching cookie (403), checked first."""
    fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    token = f"{fake_omi.url}/v1/oauth/token"
    page = requests.get(authorize(fake_omi), timeout=5)
    set_cookie = page.headers["Set-Cookie"]
    for attribute in ("omi_oauth_csrf=", "HttpOnly", "Secure", "SameSite=Strict", "Max-Age=600"):
        assert attribute in set_cookie, set_cookie
    identity = {"firebase_id_token": "forged", "app_id": "app1"}  # a bad token: the CSRF check comes first
    missing = requests.post(token, data=identity, cookies={"omi_oauth_csrf": "x"}, timeout=5)
    assert_refused(missing, 422, "csrf_token")
    no_cookie = requests.post(token, data={**identity, "csrf_token": "x"}, timeout=5)
    assert_refused(no_cookie, 403, "Please restart the connection from the app.")
    other = requests.post(
        token, data={**identity, "csrf_token": "x"}, cookies={"omi_oauth_csrf": "y"}, timeout=5
    )
    assert_refused(other, 403, "This authorization request is invalid or expired.")


def test_in_one_browser_only_the_newest_omi_page_can_finish(fake_omi: FakeOmi) -> None:
    fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    browser = requests.Session()
    older = browser.get(authorize(fake_omi, state="S1"), timeout=5)
    assert fake_omi.sign_in(authorize(fake_omi, state="S2"), "u1", browser).endswith("state=S2")
    older_token = re.search(r'const csrfToken = "([^"]*)";', older.text)
    assert older_token
    form = {"firebase_id_token": "fake-id-token:u1", "app_id": "app1", "csrf_token": older_token.group(1)}
    answer = browser.post(f"{fake_omi.url}/v1/oauth/token", data=form, timeout=5)
    assert_refused(answer, 403, "Please restart the connection from the app.")


def test_private_app_only_for_owner_and_testers(fake_omi: FakeOmi) -> None:
    fake_omi.register_app(
        "p", app_home_url="http://127.0.0.1:9/cb", private=True, owner_uid="own", testers={"t1"}
    )
    with pytest.raises(FakeOmiRefused) as refused:
        fake_omi.sign_in(authorize(fake_omi, "p"), "stranger")
    assert refused.value.status == 403
    assert not fake_omi.is_enabled("stranger", "p")
    for uid in ("own", "t1"):
        fake_omi.sign_in(authorize(fake_omi, "p"), uid)
        assert fake_omi.is_enabled(uid, "p")


def test_paid_app_needs_purchase(fake_omi: FakeOmi) -> None:
    fake_omi.register_app("paid", app_home_url="http://127.0.0.1:9/cb", paid=True, buyers={"buyer"})
    with pytest.raises(FakeOmiRefused, match="paid app"):
        fake_omi.sign_in(authorize(fake_omi, "paid"), "u1")
    fake_omi.sign_in(authorize(fake_omi, "paid"), "buyer")


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"is_setup_completed": True}, 200, None),
        ({"is_setup_completed": False}, 200, 400),
        ({}, 200, 400),
        # Not an object: "not completed" (_setup_completed_from_payload, oauth.py 62f4b462)
        ([True], 200, 400),
        (None, 200, 400),
        (7, 200, 400),
        ("not json", 200, 503),
        ({"is_setup_completed": True}, 500, 503),
        ({"is_setup_completed": True}, 302, 503),
    ],
)
def test_setup_completed_outcomes(
    fake_omi: FakeOmi,
    setup_server: tuple[LiveServer, dict[str, object]],
    body: object,
    status: int,
    expected: int | None,
) -> None:
    server, answer = setup_server
    answer.update(body=body, status=status)
    fake_omi.register_app(
        "app1", app_home_url="http://127.0.0.1:9/cb", setup_completed_url=f"{server.url}/setup-completed"
    )
    if expected is None:
        fake_omi.sign_in(authorize(fake_omi), "u1")
        assert fake_omi.is_enabled("u1", "app1")
    else:
        with pytest.raises(FakeOmiRefused) as refused:
            fake_omi.sign_in(authorize(fake_omi), "u1")
        assert refused.value.status == expected
        assert not fake_omi.is_enabled("u1", "app1")
    assert answer["seen"] == ["uid=u1"]


def test_oauth_setup_url_always_gets_question_mark_uid_and_enabled_users_skip_checks(
    fake_omi: FakeOmi, setup_server: tuple[LiveServer, dict[str, object]]
) -> None:
    """backend/routers/oauth.py: ``setup_completed_url + f'?uid={uid}'``, whatever the URL holds."""
    server, answer = setup_server
    fake_omi.register_app(
        "app1", app_home_url="http://127.0.0.1:9/cb", setup_completed_url=f"{server.url}/setup-completed?v=2"
    )
    fake_omi.sign_in(authorize(fake_omi), "u1")
    answer.update(body={"is_setup_completed": False})
    fake_omi.sign_in(authorize(fake_omi), "u1")  # already enabled: no second check
    assert answer["seen"] == ["v=2?uid=u1"]


def test_oauth_enabling_can_fail_with_500(fake_omi: FakeOmi) -> None:
    fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    fake_omi.enable_failures = 1
    with pytest.raises(FakeOmiRefused) as refused:
        fake_omi.sign_in(authorize(fake_omi), "u1")
    assert refused.value.status == 500 and "Could not automatically enable the app" in refused.value.detail
    assert not fake_omi.is_enabled("u1", "app1")
    fake_omi.sign_in(authorize(fake_omi), "u1")  # the next try works
    assert fake_omi.is_enabled("u1", "app1")


def test_oauth_setup_check_waits_longer_than_five_seconds(
    fake_omi: FakeOmi, setup_server: tuple[LiveServer, dict[str, object]]
) -> None:
    """OMI's client for the check (utils/http_client.py) waits 10 s: a 6 s answer still counts."""
    server, answer = setup_server
    answer["delay"] = 6.0
    fake_omi.register_app(
        "app1", app_home_url="http://127.0.0.1:9/cb", setup_completed_url=f"{server.url}/setup-completed"
    )
    fake_omi.sign_in(authorize(fake_omi), "u1")
    assert fake_omi.is_enabled("u1", "app1")


def test_setup_url_unreachable_is_503(fake_omi: FakeOmi) -> None:
    with LiveServer(Flask("closed")) as closed:
        dead_url = f"{closed.url}/setup-completed"
    fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb", setup_completed_url=dead_url)
    with pytest.raises(FakeOmiRefused) as refused:
        fake_omi.sign_in(authorize(fake_omi), "u1")
    assert refused.value.status == 503


def test_fake_can_be_stopped_and_reports_when_not_running() -> None:
    fake = FakeOmi()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url
    with fake:
        assert requests.get(f"{fake.url}/_fake/health", timeout=5).json()["ok"] is True
    with pytest.raises(RuntimeError):
        _ = fake.url
