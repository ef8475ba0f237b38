"""The testing guide's promise: ``omi_live_app`` sets up every trigger and capability the app
declares, so a transcript handler's ``Notify``, an audio handler, a tool that needs a sign-in and
OMI's retries can all be tested through the fake, with no reading of ``FakeApp``'s fields."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_omi import AudioChunk, Notify, OmiBlueprint, OmiTools, OmiWebhooks, TranscriptBatch
from flask_omi.testing import FakeOmi, LiveApp

heard: list[Any] = []


@pytest.fixture
def app() -> Flask:
    heard.clear()
    app = Flask(__name__)
    app.config.update(SECRET_KEY="c" * 8 + "9f3a1e7b5d2c4f6a8e0b1d3c5a7f9e2b", OMI_APP_ID="guide-app")
    app.config["OMI_SIGNING_SECRET"] = "whsec_guide"
    omi = OmiBlueprint()
    omi.user_loader(lambda uid: {"name": uid.title()} if uid == "alice" else None)
    app.register_blueprint(omi)
    hooks = OmiWebhooks()

    @hooks.on_transcript
    def transcript(batch: TranscriptBatch) -> Notify | None:
        if any("deadline" in segment.text for segment in batch.segments):
            return Notify(prompt="Remind {{user_name}} of the deadline.", params=("user_name",))
        return None

    @hooks.on_audio
    def audio(chunk: AudioChunk) -> None:
        heard.append((chunk.uid, chunk.sample_rate, chunk.samples))

    attempts: list[str] = []

    @hooks.on_conversation_created
    def conversation(event: Any) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("the first attempt fails; OMI retries")
        heard.append(("conversation", event.id))

    app.register_blueprint(hooks)
    tools = OmiTools()

    @tools.tool(requires_sign_in=True)
    def greet(user: dict[str, str]) -> str:
        """Greet the signed-in user."""
        return f"hello {user['name']}"

    app.register_blueprint(tools)
    return app


def test_a_transcript_handlers_notify_becomes_a_proactive_notification(
    omi_live_app: LiveApp, fake_omi: FakeOmi
) -> None:
    fake_omi.user_names["u1"] = "Sam"
    batch = {"session_id": "u1", "segments": [{"text": "the deadline is Friday"}]}
    delivery = fake_omi.trigger(omi_live_app.app_id, "u1", batch, trigger="transcript_processed")
    assert delivery.statuses == [200]
    assert fake_omi.proactive_notifications["u1"][0]["prompt"] == "Remind Sam of the deadline."


def test_audio_reaches_the_audio_handler(omi_live_app: LiveApp, fake_omi: FakeOmi) -> None:
    delivery = fake_omi.trigger(
        omi_live_app.app_id, "u1", b"\x00\x01" * 800, trigger="audio_bytes", sample_rate=8000
    )
    assert delivery.statuses == [200] and heard == [("u1", 8000, 800)]


def test_a_conversation_is_retried_after_a_failure_and_handled_once(
    omi_live_app: LiveApp, fake_omi: FakeOmi
) -> None:
    conversation = fake_omi.make_conversation("Lunch")
    delivery = fake_omi.trigger(omi_live_app.app_id, "u1", conversation, retry_wait=0)
    assert delivery.statuses == [500, 200]
    assert [h for h in heard if h[0] == "conversation"] == [("conversation", conversation["id"])]


def test_a_tool_that_needs_a_sign_in(omi_live_app: LiveApp, fake_omi: FakeOmi) -> None:
    fake_omi.enable_app("alice", omi_live_app.app_id)
    assert fake_omi.call_tool(omi_live_app.app_id, "alice", "greet", {}).text == "hello Alice"
    stranger = fake_omi.call_tool(omi_live_app.app_id, "bob", "greet", {})
    assert stranger.status == 400 and "Sign in to this app with OMI first" in stranger.text
