"""Chat messages (``backend/routers/notifications.py``, ``POST /v1/integrations/notification``) and
proactive notifications (``backend/utils/app_integrations.py``: a transcript answer's ``message``
and ``notification``), through the client, the receivers and the fake OMI."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from flask_omi import Notify, OmiAppNotEnabled, OmiClient, OmiRateLimited, OmiValidationError, OmiWebhooks
from flask_omi.testing import FakeOmi, LiveServer


@pytest.fixture
def world() -> Iterator[tuple[FakeOmi, OmiClient]]:
    with FakeOmi(clock=lambda: 1_800_000_000.0) as fake:  # one UTC hour, whenever the test runs
        _, key = fake.register_app("chat-app", app_home_url="http://127.0.0.1:9/cb")
        fake.enable_app("u1", "chat-app")
        client = OmiClient("chat-app", key, base_url=fake.url, timeout=5)
        yield fake, client
        client.close()


def test_notifications_send_chat_messages_when_the_manifest_enables_them(
    world: tuple[FakeOmi, OmiClient],
) -> None:
    fake, client = world
    assert client.send_chat_message("u1", "only a push") == {"status": "Ok", "rate_limit_remaining": 9}
    assert fake.chat_messages.get("u1") is None and fake.notifications["u1"] == ["only a push"]
    fake.apps["chat-app"].chat_messages = {"enabled": True, "target": "main"}
    client.send_chat_message("u1", "Your export is ready")
    assert fake.chat_messages["u1"] == [
        {"app_id": "chat-app", "message": "[Test app]: Your export is ready", "target": "main"}
    ]


def test_notifications_errors_map_like_the_other_calls(world: tuple[FakeOmi, OmiClient]) -> None:
    _, client = world
    with pytest.raises(OmiAppNotEnabled) as not_installed:
        client.send_chat_message("stranger", "hi")
    assert not_installed.value.detail == "User does not have this app installed"
    for _ in range(10):
        client.send_chat_message("u1", "m")
    with pytest.raises(OmiRateLimited) as limited:
        client.send_chat_message("u1", "one too many")
    assert limited.value.retry_after is not None
    assert limited.value.detail == "Rate limit exceeded. Maximum 10 notifications per hour."


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"uid": "u1", "message": "m"}, 400, "aid (app id) in request body is required"),
        ({"aid": "chat-app", "message": "m"}, 400, "uid is required"),
        ({"aid": "chat-app", "uid": "u1"}, 400, "message is required"),  # notifications.py 05dc5115
        ({"aid": "chat-app", "uid": "u1", "message": ""}, 400, "message is required"),
        # OMI checks the app id first, then the message, then the uid (notifications.py 05dc5115).
        ({"uid": "u1", "message": ""}, 400, "aid (app id) in request body is required"),
        ({"aid": "chat-app", "message": ""}, 400, "message is required"),
    ],
)
def test_notifications_request_checks(
    world: tuple[FakeOmi, OmiClient], body: dict[str, Any], status: int, detail: str | None
) -> None:
    fake, _ = world
    key = next(k for k, a in fake.api_keys.items() if a == "chat-app")
    answer = requests.post(
        f"{fake.url}/v1/integrations/notification",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    assert answer.status_code == status
    if detail:
        assert answer.json() == {"detail": detail}
    with pytest.raises(OmiValidationError):
        OmiClient("chat-app", key, base_url=fake.url)._transport.request(
            "POST",
            "/v1/integrations/notification",
            params={},
            json={"uid": "u1", "message": "m"},
            idempotent=False,
        )


# -- proactive notifications ---------------------------------------------------------------------------
def test_notify_validates_what_omi_would_refuse() -> None:
    with pytest.raises(ValueError, match="prompt"):
        Notify(prompt=" ")
    with pytest.raises(ValueError, match="128000"):
        Notify(prompt="x" * 128_001)
    with pytest.raises(ValueError, match="unknown scope 'user_email'"):
        Notify(prompt="hi", params=("user_email",))
    assert OmiWebhooks.Notify is Notify
    assert Notify("Tip for {{user_name}}", params=["user_name"], message="Heads up!").as_answer() == {
        "notification": {"prompt": "Tip for {{user_name}}", "params": ["user_name"]},
        "message": "Heads up!",
    }


class Handlers:
    def __init__(self) -> None:
        self.answer: Any = None

    def transcript(self, batch: Any) -> Any:
        return self.answer

    def conversation(self, event: Any) -> Any:
        return self.answer


@pytest.fixture
def receiver() -> Iterator[tuple[str, Handlers]]:
    handlers = Handlers()
    app = Flask(__name__)
    hooks = OmiWebhooks()
    hooks.on_transcript(handlers.transcript)
    hooks.on_conversation_created(handlers.conversation)
    app.register_blueprint(hooks)
    with LiveServer(app) as server:
        yield server.url, handlers


def test_a_transcript_answer_becomes_omis_notifications(receiver: tuple[str, Handlers]) -> None:
    url, handlers = receiver
    clock = [1_800_000_000.0]
    with FakeOmi(clock=lambda: clock[0]) as fake:
        fake.register_app(
            "coach", app_home_url="http://127.0.0.1:9/cb", webhook_url=f"{url}/omi/webhooks/transcript",
            triggers_on="transcript_processed", capabilities=frozenset({"proactive_notification"}),
            proactive_scopes=("user_name", "user_facts"),
        )  # fmt: skip
        fake.user_names["u1"] = "Ada"
        fake.add_memory("u1", "Ada runs on Sundays")
        handlers.answer = Notify(
            "Coach {{user_name}}. Facts: {{user_facts}}. Chat: {{user_chat}}",
            params=("user_name", "user_facts", "user_chat"),
            context={"question": "running"},
            message="Nice pace today!",
        )
        assert fake.trigger("coach", "u1", [{"text": "I ran 5k"}]).statuses == [200]
        (written,) = fake.proactive_notifications["u1"]
        # user_chat was asked for but not granted: its placeholder stays, as OMI leaves it
        assert written["prompt"] == "Coach Ada. Facts: Ada runs on Sundays. Chat: {{user_chat}}"
        assert written["scopes"] == ["user_name", "user_facts"] and written["context"] == {
            "question": "running"
        }
        assert fake.notifications["u1"] == ["Nice pace today!"]
        clock[0] += 10  # OMI sends one proactive notification per user and app every 30 s
        fake.trigger("coach", "u1", [{"text": "more"}])
        assert len(fake.proactive_notifications["u1"]) == 1
        clock[0] += 30
        fake.trigger("coach", "u1", [{"text": "more"}])
        assert len(fake.proactive_notifications["u1"]) == 2
        handlers.answer = "ok"  # 5 characters or fewer: not pushed
        fake.trigger("coach", "u1", [{"text": "x"}])
        assert fake.notifications["u1"] == ["Nice pace today!", "Nice pace today!", "Nice pace today!"]


def test_without_the_capability_a_notification_answer_is_ignored(receiver: tuple[str, Handlers]) -> None:
    url, handlers = receiver
    with FakeOmi() as fake:
        fake.register_app(
            "plain", app_home_url="http://127.0.0.1:9/cb", webhook_url=f"{url}/omi/webhooks/transcript",
            triggers_on="transcript_processed",
        )  # fmt: skip
        handlers.answer = Notify("Say hi")
        fake.trigger("plain", "u1", [])
        assert fake.proactive_notifications == {}


def test_notify_from_a_conversation_handler_is_a_logged_500(
    receiver: tuple[str, Handlers], caplog: pytest.LogCaptureFixture
) -> None:
    url, handlers = receiver
    handlers.answer = Notify("not here")
    with caplog.at_level(logging.ERROR, logger="flask_omi.webhooks"):
        answer = requests.post(f"{url}/omi/webhooks/conversation?uid=u1", json={"id": "c1"}, timeout=5)
    assert answer.status_code == 500 and "only from transcripts" in caplog.text
