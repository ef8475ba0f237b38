"""The README's Python code blocks, run as written, so that they cannot drift from the library.

Each block is marked ``<!-- readme-test: NAME -->`` in the README. It runs in a fresh interpreter
(so blocks that use the module-level ``omi_bp`` start clean), between a prelude that supplies what
the surrounding prose assumes (a ``User`` model, an ``app``) and checks of what the block promises.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"<!-- readme-test: ([a-z-]+) -->\n```python\n(.*?)```", re.DOTALL)
BLOCKS = dict(BLOCK.findall(README))

STUBS = """
class _Query:
    def __init__(self, found): self.found = found
    def get(self, key): return self.found(key)

class User:
    query = _Query(lambda uid: User(uid) if uid != "ghost" else None)
    def __init__(self, uid): self.uid, self.id = uid, uid
    is_authenticated, is_active, is_anonymous = True, True, False
    def get_id(self): return self.uid
    known = set()
    @classmethod
    def get(cls, uid): return cls(uid) if uid in cls.known else None
    @classmethod
    def create(cls, uid):
        if uid == "banned":
            return None
        cls.known.add(uid)
        return cls(uid)

class Banned:
    query = _Query(lambda uid: uid if uid == "banned" else None)

class Settings:
    query = _Query(lambda uid: {} if uid == "set_up" else None)
"""

SIGN_IN = """
def sign_in(client, uid):
    from urllib.parse import parse_qs, urlsplit
    state = parse_qs(urlsplit(client.get("/omi/login").headers["Location"]).query)["state"][0]
    return client.get(f"/omi/callback?uid={uid}&state={state}")
"""

#: name -> (prelude, checks after the block)
HARNESS: dict[str, tuple[str, str]] = {
    "quickstart": (
        "",
        """
client = app.test_client()
answer = client.get("/")
assert answer.status_code == 302 and answer.headers["Location"] == "/omi/login?next=/", answer.headers
""",
    ),
    "callbacks": (
        STUBS,
        SIGN_IN
        + """
from flask import Flask
app = Flask(__name__)
app.config.update(SECRET_KEY="a" * 32, OMI_APP_ID="app")
app.register_blueprint(omi_bp)
@app.get("/who")
def who():
    from flask_omi import current_omi_user
    return f"{type(current_omi_user._get_current_object()).__name__} {current_omi_user.uid}"
client = app.test_client()
assert sign_in(client, "banned").status_code == 400
assert sign_in(client, "alice").status_code == 302
assert client.get("/who").text == "User alice", client.get("/who").text
assert client.get("/omi/setup-completed?uid=set_up").json == {"is_setup_completed": True}
assert client.get("/omi/setup-completed?uid=new").json == {"is_setup_completed": False}
""",
    ),
    "user-class": (
        """
from flask import Flask
from flask_omi import OmiBlueprint
class Account:  # an app's own user class: no uid attribute, no is_authenticated
    plan = "pro"
app = Flask(__name__)
app.config.update(SECRET_KEY="a long random secret", OMI_APP_ID="your-omi-app-id")
bp = OmiBlueprint()
bp.user_loader(lambda uid: Account())
app.register_blueprint(bp)
"""
        + SIGN_IN,
        """
client = app.test_client()
assert sign_in(client, "u1").status_code == 302
assert client.get("/account").json == {"uid": "u1", "plan": "pro"}
""",
    ),
    "factory": (
        """
class Account:
    @staticmethod
    def by_uid(uid):
        return Account() if uid != "ghost" else None
"""
        + SIGN_IN,
        """
first, second = create_app(), create_app({"OMI_APP_ID": "another-app"})
for app in (first, second):
    client = app.test_client()
    assert sign_in(client, "u1").status_code == 302
assert first.config["OMI_APP_ID"] != second.config["OMI_APP_ID"]
""",
    ),
    "flask-login": (
        STUBS,
        SIGN_IN
        + """
from flask_login import current_user
@app.get("/who")
def who():
    return str(current_user.get_id())
client = app.test_client()
assert User.get("alice") is None  # nobody until a sign-in
sign_in(client, "alice")
assert client.get("/who").text == "alice" and User.get("alice") is not None
client.post("/omi/logout")
assert client.get("/who").text == "None"
sign_in(client, "banned")
assert client.get("/who").text == "None" and User.get("banned") is None
""",
    ),
    "api": (
        """
from flask import Flask
from flask_omi import OmiBlueprint, login_omi_user
from flask_omi.testing import FakeOmi, connect_app
fake = FakeOmi().start()
app = Flask(__name__)
app.config.update(SECRET_KEY="a" * 32, OMI_APP_ID="your-omi-app-id")
app.register_blueprint(OmiBlueprint())
connect_app(fake, fake.url, app, "http://127.0.0.1:9")
fake.enable_app("u1", "your-omi-app-id")
fake.add_conversation("u1", "the design review went well")
context = app.test_request_context()
context.push()
login_omi_user("u1")
""",
        """
assert [m["content"] for m in fake.memories["u1"]] == ["Prefers morning meetings"]
assert len(fake.conversations["u1"]) == 2 and fake.notifications["u1"] == ["Your weekly summary is ready"]
assert "the design review went well" in [c["structured"]["title"] for c in found["conversations"]]
context.pop()
fake.stop()
""",
    ),
    "tools": (
        """
class Note:
    @staticmethod
    def owner(uid):
        return {"uid": uid} if uid == "alice" else None
    @staticmethod
    def search(uid, query, limit):
        return None if query == "busy" else [f"{uid}: tea with Sam"][:limit] if query == "tea" else []
""",
        """
import json
from flask_omi.inbound.request_signing import signed_headers
client = app.test_client()
manifest = client.get("/.well-known/omi-tools.json").json
assert manifest["tools"][0]["endpoint"] == "http://localhost/omi/tools/search_notes", manifest
def call(uid, query):
    body = json.dumps({"uid": uid, "app_id": "your-omi-app-id", "tool_name": "search_notes", "query": query}).encode()
    headers = signed_headers("whsec_...", method="POST", path="/omi/tools/search_notes", query="", body=body)
    return client.post("/omi/tools/search_notes", data=body, headers=headers, content_type="application/json")
assert call("alice", "tea").json == {"result": "alice: tea with Sam"}
assert call("alice", "cake").json == {"result": "No notes mention 'cake'."}
assert call("alice", "busy").status_code == 400
assert "Sign in to this app with OMI first" in call("bob", "tea").json["error"]
""",
    ),
    "notify": (
        "",
        """
from flask import Flask
app = Flask(__name__)
app.register_blueprint(omi_webhooks)
client = app.test_client()
answer = client.post("/omi/webhooks/transcript?uid=u1", json={"session_id": "u1", "segments": [{"text": "the deadline is Friday"}]})
assert answer.json["notification"]["params"] == ["user_name", "user_facts"], answer.json
assert client.post("/omi/webhooks/transcript?uid=u1", json={"session_id": "u1", "segments": []}).json == {}
""",
    ),
    "webhooks": (
        """
from flask import Flask
app = Flask(__name__)
stored = []
def store(*args):
    stored.append(args)
""",
        """
import json
from flask_omi.inbound.signing import signature_header
body = json.dumps({"id": "c1", "structured": {"title": "Standup"}, "transcript_segments": [{"text": "hi"}]}).encode()
headers = {"X-Omi-Signature": signature_header("whsec_...", "u1", body)}
answer = app.test_client().post("/omi/webhooks/conversation?uid=u1", data=body, headers=headers)
assert answer.json == {"message": "Saved to your notebook"}, answer.json
assert stored == [("u1", "c1", "Standup", ["hi"])]
""",
    ),
}


def test_every_python_block_is_marked_and_run() -> None:
    assert README.count("```python") == len(BLOCKS), "a Python block in the README has no readme-test marker"
    assert set(BLOCKS) == set(HARNESS) | {"pytest"}


@pytest.mark.parametrize("name", sorted(HARNESS))
def test_block_runs_as_written(name: str, tmp_path: Path) -> None:
    prelude, checks = HARNESS[name]
    program = "\n".join((textwrap.dedent(prelude), BLOCKS[name], textwrap.dedent(checks)))
    script = tmp_path / f"readme_{name.replace('-', '_')}.py"
    script.write_text(program)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert run.returncode == 0, f"{name}:\n{run.stdout}\n{run.stderr}"


def test_the_testing_block_passes_under_pytest(tmp_path: Path) -> None:
    test_file = tmp_path / "test_readme_example.py"
    test_file.write_text(BLOCKS["pytest"])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
