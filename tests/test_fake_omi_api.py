"""The fake OMI's app API: OMI's endpoints, error order, bodies and rate limits, over HTTP."""

from __future__ import annotations

import pytest
import requests

from flask_omi.testing import FakeOmi


class Api:
    def __init__(self, fake: FakeOmi, key: str, app_id: str = "app1") -> None:
        self.fake, self.key, self.app_id = fake, key, app_id

    def call(self, method: str, path: str, *, key: str | None = None, **kwargs: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        url = f"{self.fake.url}/v2/integrations/{self.app_id}{path}"
        return requests.request(method, url, headers=headers, timeout=5, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def api(fake_omi: FakeOmi) -> Api:
    _, key = fake_omi.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    fake_omi.enable_app("u1", "app1")
    return Api(fake_omi, key)


def detail(response: requests.Response) -> object:
    return response.json()["detail"]


def test_error_order(fake_omi: FakeOmi, api: Api) -> None:
    url = f"{fake_omi.url}/v2/integrations/app1/memories?uid=u1"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Basic x"}, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer "}, timeout=5).status_code == 401
    wrong = api.call("GET", "/memories", key="sk_wrong", params={"uid": "u1"})
    assert (wrong.status_code, detail(wrong)) == (403, "Invalid API key")
    assert api.call("GET", "/memories", params={}).status_code == 422
    not_enabled = api.call("GET", "/memories", params={"uid": "stranger"})
    assert (not_enabled.status_code, detail(not_enabled)) == (403, "App is not enabled for this user")
    fake_omi.register_app("limited", app_home_url="http://x/cb", api_key="sk_limited", actions=frozenset())
    fake_omi.enable_app("u1", "limited")
    no_cap = Api(fake_omi, "sk_limited", "limited").call("GET", "/memories", params={"uid": "u1"})
    assert no_cap.status_code == 403 and "capability" in str(detail(no_cap))
    del fake_omi.apps["limited"]  # the key still exists, the app does not
    gone = Api(fake_omi, "sk_limited", "limited").call("GET", "/memories", params={"uid": "u1"})
    assert (gone.status_code, detail(gone)) == (404, "App not found")
    assert api.call("GET", "/memories", params={"uid": "u1", "limit": 0}).status_code == 422
    assert (
        api.call("GET", "/conversations", params={"uid": "u1", "start_date": "yesterday"}).status_code == 400
    )


def test_key_of_another_app_is_invalid(fake_omi: FakeOmi, api: Api) -> None:
    _, other_key = fake_omi.register_app("app2", app_home_url="http://x/cb")
    assert api.call("GET", "/memories", key=other_key, params={"uid": "u1"}).status_code == 403


def test_memories_round_trip(api: Api) -> None:
    created = api.call(
        "POST",
        "/user/memories",
        params={"uid": "u1"},
        json={"memories": [{"content": "likes tea", "tags": ["food"]}], "text_source": "other"},
    )
    assert (created.status_code, created.json()) == (200, {})
    assert api.call("POST", "/user/memories", params={"uid": "u1"}, json={}).status_code == 422
    assert (
        api.call(
            "POST", "/user/memories", params={"uid": "u1"}, json={"text": "x", "text_source": "tv"}
        ).status_code
        == 422
    )
    api.call(
        "POST", "/user/memories", params={"uid": "u1"}, json={"text": "from an email", "text_source": "email"}
    )
    memories = api.call("GET", "/memories", params={"uid": "u1", "limit": 1}).json()["memories"]
    assert [m["content"] for m in memories] == ["from an email"]
    second = api.call("GET", "/memories", params={"uid": "u1", "limit": 1, "offset": 1}).json()["memories"]
    assert second[0]["content"] == "likes tea" and second[0]["tags"] == ["food"]


def test_conversations_and_search(api: Api) -> None:
    body = {"text": "We planned the trip to Lisbon", "started_at": "2026-01-02T10:00:00+00:00"}
    assert api.call("POST", "/user/conversations", params={"uid": "u1"}, json=body).json() == {}
    assert api.call("POST", "/user/conversations", params={"uid": "u1"}, json={"text": ""}).status_code == 422
    assert (
        api.call(
            "POST", "/user/conversations", params={"uid": "u1"}, json={"text": "x", "text_source": "fax"}
        ).status_code
        == 422
    )
    assert (
        api.call(
            "POST",
            "/user/conversations",
            params={"uid": "u1"},
            json={"text": "x", "geolocation": {"latitude": 1}},
        ).status_code
        == 422
    )
    assert (
        api.call(
            "POST", "/user/conversations", params={"uid": "u1"}, json={"text": "x", "started_at": "soon"}
        ).status_code
        == 400
    )
    conversations = api.call(
        "GET", "/conversations", params={"uid": "u1", "max_transcript_segments": 0}
    ).json()["conversations"]
    assert conversations[0]["structured"]["title"].startswith("We planned")
    assert conversations[0]["transcript_segments"] == []
    assert conversations[0]["finished_at"] == "2026-01-02T10:05:00+00:00"
    assert (
        api.call("GET", "/conversations", params={"uid": "u1", "max_transcript_segments": 1001}).status_code
        == 422
    )
    assert (
        api.call("GET", "/conversations", params={"uid": "u1", "include_discarded": "maybe"}).status_code
        == 422
    )
    assert (
        api.call("GET", "/conversations", params={"uid": "u1", "statuses": "processing"}).json()[
            "conversations"
        ]
        == []
    )
    found = api.call("POST", "/search/conversations", params={"uid": "u1"}, json={"query": "lisbon"}).json()
    assert (found["total_pages"], found["current_page"], found["per_page"], len(found["conversations"])) == (
        1,
        1,
        10,
        1,
    )
    assert (
        api.call(
            "POST", "/search/conversations", params={"uid": "u1"}, json={"query": "x", "page": 0}
        ).status_code
        == 422
    )
    assert (
        api.call(
            "POST", "/search/conversations", params={"uid": "u1"}, json={"query": "x", "per_page": 0}
        ).status_code
        == 422
    )
    assert api.call("POST", "/search/conversations", params={"uid": "u1"}, data="nope").status_code == 422


def test_tasks(api: Api) -> None:
    api.fake.add_task("u1", "buy milk")
    api.fake.add_task("u1", "call mum", completed=True)
    tasks = api.call("GET", "/tasks", params={"uid": "u1", "completed": "false"}).json()["tasks"]
    assert [t["description"] for t in tasks] == ["buy milk"]
    assert (
        len(api.call("GET", "/tasks", params={"uid": "u1", "start_date": "2000-01-01"}).json()["tasks"]) == 2
    )
    assert api.call("GET", "/tasks", params={"uid": "u1", "end_date": "2000-01-01"}).json()["tasks"] == []
    assert api.call("GET", "/tasks", params={"uid": "u1", "limit": "ten"}).status_code == 422


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_notification_limit_per_clock_hour() -> None:
    clock = FrozenClock()
    with FakeOmi(clock=clock) as fake:
        _, key = fake.register_app("app1", app_home_url="http://x/cb")
        fake.enable_app("u1", "app1")
        api = Api(fake, key)
        answers = [
            api.call("POST", "/notification", params={"uid": "u1", "message": f"m{i}"}) for i in range(11)
        ]
        assert [a.status_code for a in answers] == [200] * 10 + [429]
        assert answers[0].json() == {"status": "Ok"}
        assert answers[0].headers["X-RateLimit-Remaining"] == "9"
        assert int(answers[-1].headers["Retry-After"]) == 3600 - int(clock.now % 3600)
        assert fake.notifications["u1"] == [f"m{i}" for i in range(10)]
        clock.now += 3600
        assert api.call("POST", "/notification", params={"uid": "u1", "message": "later"}).status_code == 200
        assert api.call("POST", "/notification", params={"uid": "u2", "message": "hi"}).status_code == 403
        assert api.call("POST", "/notification", params={"uid": "u1"}).status_code == 422


def test_conversation_limit_is_ten_per_hour(api: Api) -> None:
    api.fake.clock = lambda: 1_800_000_000.0  # one rate-limit hour, whenever the test runs
    statuses = [
        api.call("POST", "/user/conversations", params={"uid": "u1"}, json={"text": f"c{i}"}).status_code
        for i in range(11)
    ]
    assert statuses == [200] * 10 + [429]
