"""OMI-confirmed sign-in (``OMI_CONFIRM_SIGNIN``): the uid in OMI's redirect is unsigned, so a code
pushed to that uid's phone through OMI's notification API must come back before anyone is signed in.
Every request goes to the fake OMI over loopback, as it would to OMI."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_omi import (
    OmiBlueprint,
    OmiConfigError,
    current_omi_user,
    omi_confirm_flooded,
    omi_logged_in,
    omi_login_required,
)
from flask_omi.testing import FakeOmi

from ..conftest import APP_ID, Clock, make_app, start_login
from ..helpers import assert_refused

CODE = re.compile(r"is (\d{4}) (\d{4})\.")
SITE = "https://notes.example.com"


def confirming_app(fake: FakeOmi, mode: Any = True, **config: Any) -> Flask:
    _, key = fake.register_app(APP_ID, app_home_url="http://127.0.0.1:9/omi/callback")
    for uid in ("victim", "attacker", "owner"):
        fake.enable_app(uid, APP_ID)
    settings = {"OMI_EXTERNAL_URL": SITE, **config}
    app = make_app(
        OmiBlueprint(), OMI_API_KEY=key, OMI_API_BASE=fake.url, OMI_CONFIRM_SIGNIN=mode, **settings
    )
    app.extensions["omi"].signin.fake_omi_url = fake.url

    @app.get("/api/me")
    @omi_login_required
    def me() -> dict[str, Any]:
        return {"uid": current_omi_user.uid}

    @app.post("/notes/delete")
    @omi_login_required(confirmed=True)
    def delete_notes() -> str:
        return f"deleted the notes of {current_omi_user.uid}"

    return app


def latest_code(fake: FakeOmi, uid: str) -> str:
    found = CODE.search(fake.notifications_for(uid)[-1])
    assert found, fake.notifications_for(uid)
    return found.group(1) + found.group(2)


def form_token(client: FlaskClient) -> str:
    """The confirm form's token, as the page shows it (or, once the page shows no form, as the
    browser kept it from the last page it showed)."""
    page = client.get("/omi/confirm").get_data(as_text=True)
    token = re.search(r'name="form_token" value="([^"]*)"', page)
    if token:
        return token.group(1)
    with client.session_transaction() as session:
        return str(session.get("_omi_confirm_form", ""))


def type_code(client: FlaskClient, code: str) -> Any:
    return client.post("/omi/confirm", data={"code": code, "form_token": form_token(client)})


def callback(client: FlaskClient, uid: str, next_path: str | None = None) -> Any:
    return client.get(f"/omi/callback?uid={uid}&state={start_login(client, next_path)}")


def signed_in_as(client: FlaskClient) -> str | None:
    answer = client.get("/api/me", headers={"Accept": "application/json"})
    return answer.get_json()["uid"] if answer.status_code == 200 else None


# -- the attack it exists for ---------------------------------------------------------------------------
def test_the_forged_uid_attack_signs_no_one_in(
    fake_omi: FakeOmi, record_property: pytest.RecordProperty
) -> None:
    """The attacker starts a sign-in here, then puts the victim's uid beside their own valid state.
    Without confirmation that signed them in as the victim; now the code goes to the victim's phone."""
    record_property("cases", 7)
    app = confirming_app(fake_omi)
    attacker = app.test_client()
    sent = callback(attacker, "victim")
    assert sent.status_code == 303 and sent.headers["Location"].endswith("/omi/confirm")
    assert signed_in_as(attacker) is None and attacker.get("/dashboard").status_code == 302
    assert "Never share this code" in fake_omi.notifications_for("victim")[-1]
    for guess in ("00000000", "12345678", "99999999", "1234 5678"):
        assert type_code(attacker, guess).status_code == 400
    assert_refused(type_code(attacker, "11111111"), 400, "code_tries_exhausted")
    assert signed_in_as(attacker) is None
    assert_refused(type_code(attacker, latest_code(fake_omi, "victim")), 400, "confirmation_missing")


def test_the_owner_signs_in_with_the_code_from_their_phone(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    signed: list[str] = []
    omi_logged_in.connect(lambda sender, uid, **_: signed.append(uid), app, weak=False)
    owner = app.test_client()
    callback(owner, "owner", "/dashboard")
    assert signed == [] and signed_in_as(owner) is None  # nothing written for the uid yet
    message = fake_omi.notifications_for("owner")[-1]
    assert "sign in to notes.example.com" in message and "UTC" in message and "127.0.0.1" not in message
    done = type_code(owner, latest_code(fake_omi, "owner")[:4] + " " + latest_code(fake_omi, "owner")[4:])
    assert done.status_code == 302 and done.headers["Location"] == "/dashboard"
    assert signed == ["owner"] and signed_in_as(owner) == "owner"
    assert owner.post("/notes/delete").get_data(as_text=True) == "deleted the notes of owner"


def test_a_code_is_bound_to_the_browser_that_asked_and_works_once(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    first, second = app.test_client(), app.test_client()
    callback(first, "owner")
    code_for_first = latest_code(fake_omi, "owner")
    callback(second, "owner")
    assert type_code(second, code_for_first).status_code == 400  # another browser's code
    assert type_code(first, code_for_first).status_code == 302
    assert_refused(type_code(first, code_for_first), 400, "confirmation_missing")  # used


def test_guesses_are_bounded_per_uid_across_browsers(fake_omi: FakeOmi) -> None:
    """Restarting the sign-in buys no more guesses: 20 wrong codes per uid per hour, whatever the
    browser (with OMI_STATE_REGISTRY, whatever the process)."""
    app = confirming_app(fake_omi, OMI_CONFIRM_SENDS_PER_UID=10)
    for _ in range(5):
        browser = app.test_client()
        callback(browser, "victim")
        for _ in range(4):
            assert type_code(browser, "00000000").status_code == 400
    fresh = app.test_client()
    callback(fresh, "victim")
    assert_refused(type_code(fresh, "00000000"), 400, "code_tries_exhausted")


def test_an_expired_code_is_refused(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    clock = Clock()
    app.extensions["omi"].signin.clock = clock
    owner = app.test_client()
    callback(owner, "owner")
    clock.now += 301
    assert_refused(type_code(owner, latest_code(fake_omi, "owner")), 400, "code_expired")
    assert signed_in_as(owner) is None


def test_a_new_code_after_the_cool_down_replaces_the_old(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    clock = Clock()
    app.extensions["omi"].signin.clock = clock
    owner = app.test_client()
    callback(owner, "owner")
    old = latest_code(fake_omi, "owner")
    too_soon = owner.post("/omi/confirm", data={"send": "1", "form_token": form_token(owner)})
    assert_refused(too_soon, 429, "You can ask for another in")
    clock.now += 61
    assert owner.post("/omi/confirm", data={"send": "1", "form_token": form_token(owner)}).status_code == 303
    new = latest_code(fake_omi, "owner")
    assert len(fake_omi.notifications_for("owner")) == 2
    if new != old:
        assert type_code(owner, old).status_code == 400
    assert type_code(owner, new).status_code == 302


# -- OMI refusing to send -----------------------------------------------------------------------------
def test_a_uid_without_the_app_gets_a_403_page(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    stranger = app.test_client()
    assert_refused(callback(stranger, "stranger"), 403, "confirmation_refused")
    assert signed_in_as(stranger) is None


def test_omis_hourly_limit_is_a_429_page_with_retry_after(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi, OMI_CONFIRM_SENDS_PER_UID=10)
    for _ in range(10):  # OMI's 10 notifications per hour for this app and user
        callback(app.test_client(), "owner")
    refused = callback(app.test_client(), "owner")
    assert_refused(refused, 429, "confirmation_rate_limited")
    assert int(refused.headers["Retry-After"]) > 0


def test_omi_down_is_a_503_and_logged(fake_omi: FakeOmi, caplog: pytest.LogCaptureFixture) -> None:
    app = confirming_app(fake_omi, OMI_API_MAX_ATTEMPTS=1)
    fake_omi.inject_fault("/notification", status=500, body='{"detail": "boom"}', times=3)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="flask_omi"):
        assert_refused(callback(client, "owner"), 503, "confirmation_unavailable")
    assert "could not send the code" in caplog.text and signed_in_as(client) is None


# -- what views do meanwhile, and step-up ---------------------------------------------------------------
def test_while_a_code_is_owed_views_ask_for_it(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi)
    client = app.test_client()
    callback(client, "owner")
    browser = client.get("/dashboard", headers={"Accept": "text/html"})
    assert browser.status_code == 302 and browser.headers["Location"].startswith("/omi/confirm")
    api = client.get("/api/me", headers={"Accept": "application/json"})
    assert api.status_code == 401 and api.get_json()["error"] == "confirmation_required"


def test_step_up_signs_in_at_once_and_asks_on_one_view_only(fake_omi: FakeOmi) -> None:
    app = confirming_app(fake_omi, "step-up")
    client = app.test_client()
    assert callback(client, "owner").status_code == 302 and signed_in_as(client) == "owner"
    assert fake_omi.notifications_for("owner") == []  # nothing sent for a plain sign-in
    api = client.post("/notes/delete", headers={"Accept": "application/json"})
    assert api.status_code == 401 and api.get_json()["error"] == "confirmation_required"
    asked = client.post("/notes/delete", headers={"Accept": "text/html"})
    assert asked.headers["Location"] == "/omi/confirm?next=/notes/delete"
    page = client.get(asked.headers["Location"]).get_data(as_text=True)
    assert 'id="omi-send-button"' in page and fake_omi.notifications_for("owner") == []  # a GET sends nothing
    sent = client.post(
        "/omi/confirm", data={"send": "1", "next": "/notes/delete", "form_token": form_token(client)}
    )
    assert sent.status_code == 303
    assert type_code(client, latest_code(fake_omi, "owner")).headers["Location"] == "/notes/delete"
    assert client.post("/notes/delete").get_data(as_text=True) == "deleted the notes of owner"


def test_the_flask_login_bridge_signs_in_only_after_confirmation(fake_omi: FakeOmi) -> None:
    from flask_login import LoginManager, UserMixin, current_user

    from flask_omi.contrib.flask_login import FlaskLoginBridge

    class User(UserMixin):
        def __init__(self, uid: str) -> None:
            self.id = uid

    app = confirming_app(fake_omi)
    LoginManager(app).user_loader(User)
    FlaskLoginBridge(load_user=User).init_app(app)

    @app.get("/fl")
    def fl() -> str:
        return str(current_user.get_id() if current_user.is_authenticated else None)

    client = app.test_client()
    callback(client, "owner")
    assert client.get("/fl").get_data(as_text=True) == "None"
    type_code(client, latest_code(fake_omi, "owner"))
    assert client.get("/fl").get_data(as_text=True) == "owner"


def test_confirmation_needs_the_api_key() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 40, OMI_APP_ID="01APP", OMI_CONFIRM_SIGNIN=True)
    with pytest.raises(OmiConfigError, match=r"OMI_CONFIRM_SIGNIN .* needs OMI_API_KEY"):
        app.register_blueprint(OmiBlueprint())


def test_the_confirm_page_links_the_fakes_inbox_only_for_the_fake(fake_omi: FakeOmi) -> None:
    import requests

    app = confirming_app(fake_omi)
    client = app.test_client()
    callback(client, "owner")
    page = client.get("/omi/confirm").get_data(as_text=True)
    link = re.search(r'id="omi-fake-inbox" href="([^"]+)"', page)
    assert link and link.group(1) == f"{fake_omi.url}/_fake/inbox?uid=owner"
    inbox = requests.get(link.group(1), timeout=5).text
    assert latest_code(fake_omi, "owner")[:4] in inbox
    # An app run beside `flask omi fake-server` (OMI_API_BASE on loopback) links to it too.
    app.extensions["omi"].signin.fake_omi_url = None
    assert f'href="{fake_omi.url}/_fake/inbox?uid=owner"' in client.get("/omi/confirm").get_data(as_text=True)
    app.config["OMI_API_BASE"] = "https://api.omi.me"  # an app talking to the real OMI
    assert "omi-fake-inbox" not in client.get("/omi/confirm").get_data(as_text=True)


# -- the Flask ecosystem -------------------------------------------------------------------------------
def csrf_field(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_both_confirm_forms_work_with_flask_wtfs_csrfprotect_on(fake_omi: FakeOmi) -> None:
    """CSRFProtect refuses every POST without its token: the confirm page's forms carry it."""
    from flask_wtf.csrf import CSRFProtect

    app = confirming_app(fake_omi, "step-up")
    CSRFProtect(app)
    client = app.test_client()
    assert callback(client, "owner").status_code == 302
    bare = client.post("/omi/confirm", data={"send": "1", "form_token": form_token(client)})
    assert bare.status_code == 400 and "CSRF token is missing" in bare.get_data(as_text=True)
    page = client.get("/omi/confirm?next=/notes/delete").get_data(as_text=True)
    sent = client.post(
        "/omi/confirm",
        data={
            "send": "1",
            "next": "/notes/delete",
            "form_token": form_token(client),
            "csrf_token": csrf_field(page),
        },
    )
    assert sent.status_code == 303, sent.get_data(as_text=True)
    page = client.get("/omi/confirm").get_data(as_text=True)
    done = client.post(
        "/omi/confirm",
        data={
            "code": latest_code(fake_omi, "owner"),
            "form_token": form_token(client),
            "csrf_token": csrf_field(page),
        },
    )
    assert done.status_code == 302 and done.headers["Location"] == "/notes/delete"
    # Sign-in renewed the session, and CSRFProtect's token with it: the next page carries a new one.
    page = client.get("/omi/confirm").get_data(as_text=True)
    deleted = client.post("/notes/delete", data={"csrf_token": csrf_field(page)})
    assert deleted.get_data(as_text=True) == "deleted the notes of owner"


def test_a_needs_confirmation_handler_replaces_the_confirm_redirect(fake_omi: FakeOmi) -> None:
    """Flask-Login's needs_refresh_handler, for OMI's confirmation."""
    _, key = fake_omi.register_app(APP_ID, app_home_url="http://127.0.0.1:9/omi/callback")
    bp = OmiBlueprint()

    @bp.needs_confirmation_handler
    def ask_for_a_passkey() -> tuple[str, int]:
        return "confirm with your passkey", 401

    app = make_app(
        bp, OMI_API_KEY=key, OMI_API_BASE=fake_omi.url, OMI_CONFIRM_SIGNIN="step-up", OMI_EXTERNAL_URL=SITE
    )

    @app.post("/notes/delete")
    @omi_login_required(confirmed=True)
    def delete_notes() -> str:
        return "deleted"

    client = app.test_client()
    assert callback(client, "owner").status_code == 302
    asked = client.post("/notes/delete")
    assert asked.status_code == 401 and asked.get_data(as_text=True) == "confirm with your passkey"


def test_confirm_omi_sign_in_marks_the_sign_in_confirmed_for_an_apps_own_second_factor(
    fake_omi: FakeOmi,
) -> None:
    from flask_omi import confirm_omi_sign_in

    app = confirming_app(fake_omi, "step-up")

    @app.post("/passkey")
    def passkey() -> str:
        confirm_omi_sign_in()  # the app checked a second factor of its own here
        return "ok"

    client = app.test_client()
    with app.test_request_context(), pytest.raises(RuntimeError, match="needs a signed-in OMI user"):
        confirm_omi_sign_in()
    callback(client, "owner")
    assert client.post("/notes/delete", headers={"Accept": "application/json"}).status_code == 401
    assert client.post("/passkey").get_data(as_text=True) == "ok"
    assert client.post("/notes/delete").get_data(as_text=True) == "deleted the notes of owner"
    assert fake_omi.notifications_for("owner") == []  # no code was needed


def test_the_confirm_page_takes_the_apps_layout_without_copying_the_template(
    fake_omi: FakeOmi, tmp_path: Any
) -> None:
    (tmp_path / "site.html").write_text(
        '<html><body class="my-site"><h2>Notes</h2>{% block content %}{% endblock %}</body></html>'
    )
    app = confirming_app(fake_omi, OMI_TEMPLATE_LAYOUT="site.html")
    app.template_folder = str(tmp_path)
    client = app.test_client()
    callback(client, "owner")
    page = client.get("/omi/confirm").get_data(as_text=True)
    assert '<body class="my-site"><h2>Notes</h2>' in page and 'id="omi-confirm-form"' in page
    assert "<style>" not in page  # flask-omi's own layout is not used


def test_a_flood_is_signalled_and_logged_without_the_uid(
    fake_omi: FakeOmi, caplog: pytest.LogCaptureFixture
) -> None:
    app = confirming_app(fake_omi, OMI_CONFIRM_SENDS_PER_UID=1)
    seen: list[tuple[str, str]] = []
    omi_confirm_flooded.connect(lambda sender, limit, uid: seen.append((limit, uid)), app, weak=False)
    callback(app.test_client(), "victim")
    with caplog.at_level(logging.WARNING, logger="flask_omi"):
        assert_refused(callback(app.test_client(), "victim"), 429, "confirmation_rate_limited")
    assert seen == [("sends_per_uid", "victim")]
    ours = " ".join(r.getMessage() for r in caplog.records if r.name == "flask_omi")
    assert "sends_per_uid limit is reached" in ours and "victim" not in ours
