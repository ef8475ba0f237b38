"""End to end in a real headless Chromium: the example app, the fake OMI's page, real cookies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from example_app import create_app
from flask_omi.testing import FakeOmi, LiveServer, connect_app

from .attack.load import finish, start
from .chromium import chromium
from .helpers import free_port

pytestmark = pytest.mark.browser

TOOLS_SECRET = "whsec_e2e_tools"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


class Site:
    """The example app and the fake OMI, both on loopback, with one set-up user."""

    def __init__(self, app_url: str, fake: FakeOmi) -> None:
        self.url, self.fake = app_url, fake


@contextmanager
def example_site(tmp_path: Path, users: dict[str, str], **config: Any) -> Iterator[Site]:
    """The example app and a fake OMI on loopback, the app registered in the fake with exactly what
    `flask omi check` prints for pasting into OMI, and ``users`` (uid -> name) set up."""
    port = free_port()
    with FakeOmi() as fake:
        app = create_app(
            {
                "OMI_APP_ID": "e2e-app",
                "OMI_API_BASE": fake.url,
                "EXAMPLE_DB": str(tmp_path / "e2e.db"),
                "OMI_SIGNING_SECRET": TOOLS_SECRET,
                "OMI_EXTERNAL_URL": f"http://127.0.0.1:{port}",
                **config,
            }
        )
        server = LiveServer(app, port).bind()
        connect_app(fake, fake.url, app, server.url, name="Example OMI app")
        for uid, name in users.items():
            fake.enable_app(uid, "e2e-app")
            app.extensions["example_setups"].complete(uid, name)
        server.start()
        try:
            yield Site(server.url, fake)
        finally:
            server.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with example_site(tmp_path, {"alice": "Alice", "bob": "Bob"}) as site:
        site.fake.add_memory("alice", "Alice likes green tea")
        yield site


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def sign_in_on_omi(page: Any, uid: str) -> None:
    page.wait_for_selector("#uid-input")
    page.fill("#uid-input", uid)
    page.click("#sign-in-button")


def test_sign_in_reload_sign_out_and_protected_page(page: Any, site: Site) -> None:
    page.goto(site.url)
    shot(page, "01-landing")
    page.click("#sign-in")
    assert page.url.startswith(f"{site.fake.url}/v1/oauth/authorize?app_id=e2e-app&state=")
    shot(page, "02-fake-omi-authorize")
    sign_in_on_omi(page, "alice")
    page.wait_for_url(f"{site.url}/dashboard")
    assert page.text_content("#uid") == "alice"
    assert "(Alice)" in page.text_content("main")
    assert page.text_content("#memories") == "Alice likes green tea"
    page.fill("#content", "Alice plays chess on Sundays")
    page.click("#add-memory")
    page.wait_for_selector("#flash:has-text('Memory added to OMI.')")
    assert page.text_content("#memories li:first-child") == "Alice plays chess on Sundays"
    shot(page, "03-dashboard")

    page.reload()
    assert page.url == f"{site.url}/dashboard"
    assert page.text_content("#uid") == "alice"

    page.click("#sign-out")
    page.wait_for_url(f"{site.url}/")
    assert page.is_visible("#sign-in")
    shot(page, "04-signed-out")

    page.goto(f"{site.url}/dashboard")
    page.wait_for_url(f"{site.fake.url}/v1/oauth/authorize?*")
    assert page.is_visible("#uid-input")


def test_forged_callback_shows_readable_error(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/omi/callback?uid=attacker&state=" + "A" * 43)
    assert page.text_content("h1") == "Sign-in did not work"
    assert page.text_content("#omi-error-code") == "state_mismatch"
    shot(page, "05-forged-callback")
    page.goto(f"{site.url}/dashboard")
    page.wait_for_url(f"{site.fake.url}/**")  # still signed out


def test_setup_not_completed_is_shown_on_omi_page(page: Any, site: Site) -> None:
    """An app whose setup-completed URL answers false: OMI's page shows its refusal."""
    gate = Flask("gate")
    gate.get("/setup-completed")(lambda: {"is_setup_completed": False})
    with LiveServer(gate) as gate_server:
        site.fake.register_app(
            "gated-app",
            app_home_url=f"{site.url}/omi/callback",
            setup_completed_url=f"{gate_server.url}/setup-completed",
        )
        page.goto(f"{site.fake.url}/v1/oauth/authorize?app_id=gated-app&state=" + "A" * 43)
        sign_in_on_omi(page, "newcomer")
        page.wait_for_selector("#error-message:has-text('setup is not completed')")
        shot(page, "06-setup-not-completed")


def test_new_user_signs_in_then_chooses_a_display_name(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/omi/login?next=/dashboard")
    sign_in_on_omi(page, "newcomer")
    page.wait_for_url(f"{site.url}/dashboard")
    page.click("#choose-name")
    page.fill("#display_name", "Newcomer")
    page.click("#finish-setup")
    page.wait_for_url(f"{site.url}/dashboard")
    assert "(Newcomer)" in page.text_content("main")


def test_two_tabs_only_the_newest_omi_page_finishes_oauth_py_62f4b462(browser: Any, site: Site) -> None:
    """OMI keeps one CSRF cookie per browser (``omi_oauth_csrf``), so of two OMI pages open at once
    only the newest can finish; the older one is refused by OMI and is started again from the app,
    whose own pending sign-ins (OMI_MAX_PENDING_SIGNINS) are not the limit."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    try:
        first, second = context.new_page(), context.new_page()
        first.goto(f"{site.url}/omi/login?next=/dashboard")
        first.wait_for_selector("#uid-input")
        second.goto(f"{site.url}/omi/login?next=/")
        second.wait_for_selector("#uid-input")
        first.fill("#uid-input", "bob")
        first.click("#sign-in-button")
        first.wait_for_function("document.getElementById('error-message').textContent.length > 0")
        assert "Please restart the connection from the app" in first.text_content("#error-message")
        assert first.url.startswith(site.fake.url)  # OMI refused it: the app never saw a callback
        sign_in_on_omi(second, "bob")
        second.wait_for_url(f"{site.url}/")
        assert "signed in as" in second.text_content("main")
        shot(second, "07-second-tab")
        first.goto(f"{site.url}/omi/login?next=/dashboard")  # started again, it finishes
        sign_in_on_omi(first, "bob")
        first.wait_for_url(f"{site.url}/dashboard")
        assert first.text_content("#uid") == "bob"
    finally:
        context.close()


def test_mobile_app_visit_without_state_offers_sign_in(page: Any, site: Site) -> None:
    page.goto(f"{site.url}/omi/callback?uid=alice")
    assert page.text_content("h1") == "Continue with OMI"
    shot(page, "08-app-home-from-omi-app")
    page.click("#omi-sign-in")
    sign_in_on_omi(page, "alice")
    page.wait_for_url(f"{site.url}/")
    assert "alice" in page.text_content("main")


def test_omis_chat_calls_the_apps_tool_on_the_notes_written_there(page: Any, site: Site) -> None:
    """The demo's chat box: a note written in the app is found by OMI's chat through the tool."""
    page.goto(f"{site.url}/omi/login?next=/dashboard")
    sign_in_on_omi(page, "alice")
    page.wait_for_url(f"{site.url}/dashboard")
    page.fill("#note", "Buy oolong tea for Sam")
    page.click("#add-note")
    page.wait_for_selector("#notes li:has-text('Buy oolong tea for Sam')")
    page.goto(f"{site.fake.url}/_fake/chat?app_id=e2e-app&uid=alice")
    page.fill("#arg-search_notes-query", "tea")
    page.click("#tool-search_notes .call-tool")
    page.wait_for_selector(".tool-answer")
    assert page.text_content(".tool-answer") == "1 note(s) about 'tea':\n- Buy oolong tea for Sam"
    shot(page, "09-omi-chat-calls-the-tool")
    page.goto(f"{site.fake.url}/_fake/chat?app_id=e2e-app&uid=mallory")  # never signed in here
    page.fill("#arg-search_notes-query", "tea")
    page.click("#tool-search_notes .call-tool")
    page.wait_for_selector(".tool-answer")
    assert "Sign in to this app with OMI first" in (page.text_content(".tool-answer") or "")


@pytest.fixture
def confirming_site(tmp_path: Path) -> Iterator[Site]:
    """The example with every sign-in confirmed by a code sent to the user's OMI app."""
    users = {"alice": "Alice", "mallory": "Mallory"}
    with example_site(tmp_path, users, OMI_API_KEY="sk_e2e_confirm", OMI_CONFIRM_SIGNIN=True) as site:
        yield site


def test_a_confirmed_sign_in_reads_the_code_off_the_phone(page: Any, confirming_site: Site) -> None:
    site = confirming_site
    page.goto(f"{site.url}/dashboard")
    sign_in_on_omi(page, "alice")
    page.wait_for_url(f"{site.url}/omi/confirm")
    assert site.fake.notifications_for("alice")  # the code went to alice's phone
    inbox = page.context.new_page()
    inbox.goto(page.get_attribute("#omi-fake-inbox", "href"))
    code = inbox.text_content(".message").split(" is ")[1][:9]
    shot(inbox, "08-phone-inbox")
    page.fill("#omi-code", code)
    page.click("#omi-confirm-button")
    page.wait_for_url(f"{site.url}/dashboard")
    assert page.text_content("#uid") == "alice"


def test_the_forged_uid_attack_fails_in_a_browser(page: Any, confirming_site: Site) -> None:
    """Mallory starts a sign-in with her own account, then swaps alice's uid into OMI's redirect."""
    site = confirming_site
    page.goto(f"{site.url}/omi/login")
    page.wait_for_selector("#uid-input")
    forged: list[str] = []
    page.route(
        f"{site.url}/omi/callback?*",
        lambda route: (
            forged.append(route.request.url),
            route.continue_(url=route.request.url.replace("uid=mallory", "uid=alice")),
        ),
    )
    page.fill("#uid-input", "mallory")
    page.click("#sign-in-button")
    page.wait_for_url(f"{site.url}/omi/confirm")
    assert forged and "uid=mallory" in forged[0]
    assert len(site.fake.notifications_for("alice")) == 1 and site.fake.notifications_for("mallory") == []
    for _ in range(5):
        page.fill("#omi-code", "0000 0000")
        page.click("#omi-confirm-button")
    assert "code_tries_exhausted" in page.text_content("main")
    page.goto(f"{site.url}/dashboard")
    assert page.url.startswith(site.fake.url)  # still signed out: sent to sign in again


def test_a_flood_of_sign_ins_with_alices_uid_leaves_her_the_chat_channel(
    page: Any, confirming_site: Site
) -> None:
    """Anyone who knows alice's uid spends the app's part of OMI's notification quota for her; she
    still signs in by sending the page's short code to the app in OMI's (fake) chat."""
    site = confirming_site
    for _ in range(5):  # OMI_CONFIRM_SENDS_PER_UID
        attacker = requests.Session()
        state = start(attacker, site.url)
        assert finish(attacker, site.url, "alice", state).status_code == 303
    assert len(site.fake.notifications_for("alice")) == 5
    page.goto(f"{site.url}/dashboard")
    sign_in_on_omi(page, "alice")
    page.wait_for_url(f"{site.url}/omi/confirm")
    assert page.is_visible("#omi-no-code-sent") and len(site.fake.notifications_for("alice")) == 5
    confirm_in_omis_chat(page)
    page.wait_for_url(f"{site.url}/dashboard")
    assert page.text_content("#uid") == "alice"


def confirm_in_omis_chat(page: Any) -> None:
    """Read the short code off the confirm page, send it in the fake OMI's chat (which calls the
    app's omi_confirm_sign_in tool, signed, as OMI's assistant does), then press Continue."""
    code = page.text_content("#omi-chat-code")
    chat = page.context.new_page()
    chat.goto(page.get_attribute("#omi-fake-chat", "href"))
    chat.fill("#arg-omi_confirm_sign_in-code", code)
    chat.click("#tool-omi_confirm_sign_in .call-tool")
    chat.wait_for_selector(".tool-answer")
    assert (chat.text_content(".tool-answer") or "").startswith("Confirmed: your sign-in to 127.0.0.1:")
    shot(chat, "10-confirm-in-omis-chat")
    chat.close()
    page.click("#omi-chat-done")


@contextmanager
def demo(tmp_path: Path) -> Iterator[tuple[str, FakeOmi]]:
    """``make demo``'s app and fake OMI, on free loopback ports."""
    from example_app.__main__ import demo_app

    port = free_port()
    app, fake = demo_app(port=port, fake_port=0, db_path=str(tmp_path / "demo.db"))
    server = LiveServer(app, port).start()
    try:
        yield server.url, fake
    finally:
        server.stop()
        fake.stop()


def write_a_note_then_delete(page: Any, base: str) -> None:
    page.goto(f"{base}/dashboard")
    sign_in_on_omi(page, "fake-user-1")
    page.wait_for_url("**/dashboard")
    page.fill("#note", "a private note")
    page.click("#add-note")
    page.click("#delete-notes")
    page.wait_for_url("**/omi/confirm?next=/notes/delete")
    page.click("#omi-send-button")


def test_the_demo_asks_for_a_code_before_deleting_notes(page: Any, tmp_path: Path) -> None:
    """make demo's step-up: signed in at once, a code before the sensitive action."""
    with demo(tmp_path) as (base, fake):
        write_a_note_then_delete(page, base)
        code = fake.notifications_for("fake-user-1")[-1].split(" is ")[1][:9]
        page.fill("#omi-code", code)
        page.click("#omi-confirm-button")
        page.wait_for_url("**/notes/delete")
        page.click("#confirm-delete")
        page.wait_for_url("**/dashboard")
        assert "Deleted 1 note(s)." in page.text_content("main")


def test_the_demo_confirms_through_omis_chat(page: Any, tmp_path: Path) -> None:
    """make demo with both channels: the short code sent in the fake OMI's chat confirms too."""
    with demo(tmp_path) as (base, _):
        write_a_note_then_delete(page, base)
        shot(page, "11-confirm-page-with-chat-code")
        confirm_in_omis_chat(page)
        page.wait_for_url("**/notes/delete")
        page.click("#confirm-delete")
        page.wait_for_url("**/dashboard")
        assert "Deleted 1 note(s)." in page.text_content("main")


DOCS = Path(__file__).resolve().parent.parent / "build" / "docs"


@pytest.mark.parametrize("page_name", ["flow.html", "deployment.html"])
def test_the_docs_diagrams_draw_offline(page: Any, page_name: str) -> None:
    """The docs ship Mermaid (make docs) instead of loading it from a CDN: served from loopback,
    with no other network, every diagram draws, without a syntax error."""
    import functools
    import http.server
    import os
    import threading

    if not (DOCS / page_name).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("build/docs is missing: make test builds the docs before the suite")
        pytest.skip("the docs are not built (make docs)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DOCS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    outside: list[str] = []
    page.on("request", lambda request: None if "127.0.0.1" in request.url else outside.append(request.url))
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/{page_name}")
        page.wait_for_selector(".mermaid svg")
        texts = [
            page.locator(".mermaid").nth(n).inner_text() for n in range(page.locator(".mermaid").count())
        ]
    finally:
        server.shutdown()
        server.server_close()
    assert texts and not any("Syntax error" in text for text in texts)
    assert outside == []
