"""The README's quickstart and the example app, signed in through the fake OMI over real HTTP."""

from __future__ import annotations

import importlib.util
import re
import socket
from pathlib import Path

import requests
from flask import Flask

from example_app import create_app
from example_app.__main__ import DEMO_UID, demo_app
from flask_omi.testing import FakeOmi, LiveServer, sign_in_test_client

from .helpers import assert_refused

ROOT = Path(__file__).resolve().parent.parent


def quickstart_source() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's quickstart has no python block"
    return match.group(1)


def test_readme_quickstart_pasted_into_a_file_signs_in(tmp_path: Path, fake_omi: FakeOmi) -> None:
    path = tmp_path / "quickstart_app.py"
    path.write_text(quickstart_source())
    spec = importlib.util.spec_from_file_location("quickstart_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: Flask = module.app
    app.config["OMI_API_BASE"] = fake_omi.url
    with LiveServer(app) as server:
        fake_omi.register_app(app.config["OMI_APP_ID"], app_home_url=f"{server.url}/omi/callback")
        browser = requests.Session()
        to_omi = browser.get(f"{server.url}/", timeout=5)
        assert to_omi.url.startswith(f"{fake_omi.url}/v1/oauth/authorize?")
        landed = browser.get(fake_omi.sign_in(to_omi.url, "quick_user", http=browser), timeout=5)
        assert landed.url == f"{server.url}/"
        assert landed.text == "hello quick_user"


def test_example_app_sign_in_then_set_up_step(tmp_path: Path, fake_omi: FakeOmi) -> None:
    """A new user signs in at once (the example has no setup gate), then picks a display name."""
    app = create_app(
        {"OMI_APP_ID": "ex", "OMI_API_BASE": fake_omi.url, "EXAMPLE_DB": str(tmp_path / "ex.db")}
    )
    with LiveServer(app) as server:
        fake_omi.register_app(
            "ex",
            app_home_url=f"{server.url}/omi/callback",
            setup_completed_url=f"{server.url}/omi/setup-completed",
        )
        browser = requests.Session()
        start = browser.get(f"{server.url}/omi/login?next=/dashboard", timeout=5)
        dashboard = browser.get(fake_omi.sign_in(start.url, "newbie", http=browser), timeout=5)
        assert dashboard.url == f"{server.url}/dashboard"
        assert 'id="choose-name"' in dashboard.text
        # OMI's auth-step link carries ?uid=; for the signed-in uid it is the same form.
        form = browser.get(f"{server.url}/setup?uid=newbie", timeout=5).text
        assert "Finish set-up" in form
        token = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        empty = browser.post(
            f"{server.url}/setup", data={"csrf_token": token, "display_name": " "}, timeout=5
        )
        assert "Please choose a display name" in empty.text
        done = browser.post(
            f"{server.url}/setup", data={"csrf_token": token, "display_name": "Newbie"}, timeout=5
        )
        assert done.url == f"{server.url}/dashboard"
        assert '<code id="uid">newbie</code> (Newbie)' in done.text
        assert "Open your dashboard" in browser.get(f"{server.url}/", timeout=5).text
        browser.post(f"{server.url}/omi/logout", timeout=5)
        assert "Sign in with OMI" in browser.get(f"{server.url}/", timeout=5).text


def test_demo_mode_wires_the_fake_omi(tmp_path: Path) -> None:
    app, fake = demo_app(port=5000, fake_port=0, db_path=str(tmp_path / "demo.db"))
    try:
        assert app.config["OMI_API_BASE"] == fake.url
        record = fake.apps["example-app"]
        # The fake is set up from what `flask omi check` prints for pasting into OMI.
        assert record.app_home_url == "http://127.0.0.1:5000/omi/callback"
        assert record.chat_tools_manifest_url == "http://127.0.0.1:5000/.well-known/omi-tools.json"
        assert record.webhook_url == "http://127.0.0.1:5000/omi/webhooks/conversation"
        assert record.signing_secret == app.config["OMI_SIGNING_SECRET"]
        client = app.test_client()
        assert (
            client.get("/", base_url="http://localhost:5000")
            .headers["Location"]
            .startswith("http://127.0.0.1:5000/")
        )
        assert client.get(
            "/omi/setup-completed", query_string={"uid": DEMO_UID}, base_url="http://127.0.0.1"
        ).get_json() == {"is_setup_completed": True}
    finally:
        fake.stop()


def test_example_dashboard_lists_and_adds_memories(tmp_path: Path, fake_omi: FakeOmi) -> None:
    _, key = fake_omi.register_app("ex", app_home_url="http://127.0.0.1:9/omi/callback")
    fake_omi.enable_app("u1", "ex")
    fake_omi.add_memory("u1", "Knows three languages")
    app = create_app(
        {
            "OMI_APP_ID": "ex",
            "OMI_API_KEY": key,
            "OMI_API_BASE": fake_omi.url,
            "EXAMPLE_DB": str(tmp_path / "m.db"),
        }
    )
    client = app.test_client()
    sign_in_test_client(client, "u1")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "<li>Knows three languages</li>" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    assert_refused(
        client.post("/memories", data={"content": "x", "csrf_token": "forged"}), 400, "Bad Request"
    )
    added = client.post(
        "/memories", data={"content": "Runs on Tuesdays", "csrf_token": token.group(1)}, follow_redirects=True
    )
    assert "Memory added to OMI." in added.get_data(as_text=True)
    assert [m["content"] for m in fake_omi.memories["u1"]] == ["Knows three languages", "Runs on Tuesdays"]
    fake_omi.disable_app("u1", "ex")
    assert "OMI did not answer (omi_app_not_enabled)" in client.get("/dashboard").get_data(as_text=True)
    refused = client.post(
        "/memories", data={"content": "y", "csrf_token": token.group(1)}, follow_redirects=True
    )
    assert "OMI refused the memory (omi_app_not_enabled)" in refused.get_data(as_text=True)


def test_demo_lists_conversations_the_fake_omi_posts_to_its_webhook(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app, fake = demo_app(port=port, fake_port=0, db_path=str(tmp_path / "demo.db"))
    try:
        with LiveServer(app, port=port) as server:
            browser = requests.Session()
            start = browser.get(f"{server.url}/omi/login?next=/dashboard", timeout=5)
            page = browser.get(fake.sign_in(start.url, DEMO_UID, http=browser), timeout=5).text
            assert 'id="no-received"' in page
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token
            forged = browser.post(f"{server.url}/demo/send-conversation", data={"csrf_token": "x"}, timeout=5)
            assert_refused(forged, 400, "Bad Request")
            after = browser.post(
                f"{server.url}/demo/send-conversation", data={"csrf_token": token.group(1)}, timeout=10
            )
            received = re.findall(r'<ul class="items" id="received"><li>([^<]+)</li>', after.text)
            assert received and received[0].startswith("Talked about ")
            # The webhook is signed with the demo secret: an unsigned post is refused.
            unsigned = requests.post(
                f"{server.url}/omi/webhooks/conversation?uid={DEMO_UID}", json={}, timeout=5
            )
            assert_refused(unsigned, 401, "signature_missing")
    finally:
        fake.stop()
