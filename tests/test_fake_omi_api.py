"""The fake OMI's app API over HTTP, checked against what OMI's backend does.

Test names say which OMI file the behaviour comes from: ``integration`` is
``backend/routers/integration.py``, ``endpoints`` is ``backend/utils/other/endpoints.py`` (the
429), ``redis_db`` is ``backend/database/redis_db.py`` (the limiter), ``search`` is
``backend/utils/conversations/search.py`` and ``models`` is ``backend/models/integrations.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from flask_omi.testing import FakeOmi

from .conftest import Clock
from .helpers import assert_refused

UID = {"uid": "u1"}


class Api:
    def __init__(self, fake: FakeOmi, key: str, app_id: str = "app1") -> None:
        self.fake, self.key, self.app_id = fake, key, app_id

    def call(
        self, method: str, path: str, *, key: str | None = None, auth: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Authorization": auth if auth is not None else f"Bearer {key or self.key}"}
        url = f"{self.fake.url}/v2/integrations/{self.app_id}{path}"
        return requests.request(method, url, headers=headers, timeout=5, **kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Any:
    with FakeOmi(clock=clock) as fake:
        yield fake


@pytest.fixture
def api(fake: FakeOmi) -> Api:
    _, key = fake.register_app("app1", app_home_url="http://127.0.0.1:9/cb")
    fake.enable_app("u1", "app1")
    return Api(fake, key)


def detail(response: requests.Response) -> Any:
    return response.json()["detail"]


# -- the order of checks ----------------------------------------------------------------------------
def test_integration_validation_comes_before_the_key(api: Api) -> None:
    """FastAPI validates before the handler runs: a bad request with no key is 422, not 401."""
    no_uid = api.call("GET", "/memories", auth="")
    assert no_uid.status_code == 422
    assert detail(no_uid)[0] == {
        "type": "missing",
        "loc": ["query", "uid"],
        "msg": "Field required",
        "input": None,
    }
    bad_limit = api.call("GET", "/memories", key="sk_wrong", params={**UID, "limit": 0})
    assert bad_limit.status_code == 422 and detail(bad_limit)[0]["type"] == "greater_than_equal"
    both = api.call("GET", "/memories", auth="", params={"limit": "x", "offset": -1})
    assert [p["loc"][1] for p in detail(both)] == ["uid", "limit", "offset"]
    body = api.call("POST", "/user/memories", key="sk_wrong", params=UID, data="nope")
    assert body.status_code == 422 and detail(body)[0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("method", "path", "json", "wording"),
    [
        ("GET", "/memories", None, "Invalid integrationAPI key"),
        ("POST", "/user/memories", {"text": "x"}, "Invalid integrationAPI key"),
        ("POST", "/user/conversations", {"text": "x"}, "Invalid integration API key"),
        ("GET", "/conversations", None, "Invalid API key"),
        ("POST", "/search/conversations", {"query": "x"}, "Invalid API key"),
        ("GET", "/tasks", None, "Invalid API key"),
    ],
)
def test_integration_each_endpoint_words_a_wrong_key_its_own_way(
    api: Api, method: str, path: str, json: Any, wording: str
) -> None:
    missing = api.call(method, path, auth="", params=UID, json=json)
    assert (missing.status_code, detail(missing)) == (
        401,
        "Missing or invalid Authorization header. Must be 'Bearer API_KEY'",
    )
    assert api.call(method, path, auth="Basic abc", params=UID, json=json).status_code == 401
    for auth in ("Bearer ", "Bearer sk_wrong"):  # an empty key is a wrong key: 403
        wrong = api.call(method, path, auth=auth, params=UID, json=json)
        assert (wrong.status_code, detail(wrong)) == (403, wording)


def test_integration_not_found_then_not_enabled_then_capability(fake: FakeOmi, api: Api) -> None:
    not_enabled = api.call("GET", "/memories", params={"uid": "stranger"})
    assert (not_enabled.status_code, detail(not_enabled)) == (403, "App is not enabled for this user")
    fake.register_app("limited", app_home_url="http://x/cb", api_key="sk_limited", actions=frozenset())
    limited = Api(fake, "sk_limited", "limited")
    assert (
        detail(limited.call("GET", "/memories", params={"uid": "stranger"}))
        == "App is not enabled for this user"
    )
    fake.enable_app("u1", "limited")
    no_cap = limited.call("GET", "/memories", params=UID)
    assert (no_cap.status_code, detail(no_cap)) == (403, "App does not have the capability to read memories")
    empty = limited.call("POST", "/user/memories", params=UID, json={"text": None})
    assert detail(empty) == "App does not have the capability to create memories"  # before the empty check
    del fake.apps["limited"]  # the key still exists, the app does not
    gone = limited.call("GET", "/memories", params=UID)
    assert (gone.status_code, detail(gone)) == (404, "App not found")


def test_integration_key_of_another_app_is_invalid(fake: FakeOmi, api: Api) -> None:
    _, other_key = fake.register_app("app2", app_home_url="http://x/cb")
    assert_refused(api.call("GET", "/memories", key=other_key, params=UID), 403, "Invalid integrationAPI key")


# -- rate limits ------------------------------------------------------------------------------------
def test_redis_db_window_starts_at_the_first_counted_request_and_refusals_count(
    api: Api, clock: Clock
) -> None:
    clock.now = 1_800_001_000.0  # not on an hour boundary: the window is not a clock hour
    answers = [api.call("POST", "/user/conversations", params=UID, json={"text": f"c{i}"}) for i in range(12)]
    assert [a.status_code for a in answers] == [200] * 10 + [429] * 2
    refused = answers[10]
    assert detail(refused) == "Rate limit exceeded. Try again in 3600s."  # endpoints' wording
    assert refused.headers["Retry-After"] == "3600"
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("10", "0")
    clock.now += 3599
    still = api.call("POST", "/user/conversations", params=UID, json={"text": "late"})
    assert still.status_code == 429 and still.headers["Retry-After"] == "1"
    clock.now += 1
    assert api.call("POST", "/user/conversations", params=UID, json={"text": "new window"}).status_code == 200


def test_redis_db_rate_limit_comes_before_app_checks(fake: FakeOmi, api: Api) -> None:
    fake.rate_limits.policies["integration:memories"] = (1, 60)
    stranger = {"uid": "stranger"}
    first = api.call("POST", "/user/memories", params=stranger, json={"text": "x"})
    assert (first.status_code, detail(first)) == (403, "App is not enabled for this user")  # counted
    assert_refused(
        api.call("POST", "/user/memories", params=stranger, json={"text": "x"}), 429, "Rate limit exceeded"
    )


def test_rate_limits_are_settings_of_the_fake(clock: Clock) -> None:
    """OMI multiplies its limits in production (rate_limit_config.py RATE_LIMIT_BOOST)."""
    with FakeOmi(
        clock=clock, rate_limits={"integration:conversations": (2, 60), "integration:memories": (60, 3600)}
    ) as fake:
        _, key = fake.register_app("app1", app_home_url="http://x/cb")
        fake.enable_app("u1", "app1")
        api = Api(fake, key)
        codes = [
            api.call("POST", "/user/conversations", params=UID, json={"text": "x"}).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]


def test_integration_notifications_ten_per_utc_hour_routers_integration_0def44eb(
    fake: FakeOmi, api: Api, clock: Clock
) -> None:
    clock.now = 1_800_000_000.0 + 600  # ten minutes into a UTC hour
    answers = [api.call("POST", "/notification", params={**UID, "message": f"m{i}"}) for i in range(12)]
    assert [a.status_code for a in answers] == [200] * 10 + [429] * 2
    assert answers[0].json() == {"status": "Ok"}
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:10]] == [str(n) for n in range(9, -1, -1)]
    assert answers[0].headers["X-RateLimit-Limit"] == "10"
    reset = str(3600 - (int(clock.now) % 3600))
    assert answers[0].headers["X-RateLimit-Reset"] == reset
    refused = answers[10]
    assert detail(refused) == "Rate limit exceeded. Maximum 10 notifications per hour."
    assert refused.headers["Retry-After"] == reset and refused.headers["X-RateLimit-Remaining"] == "0"
    assert fake.notifications["u1"] == [f"m{i}" for i in range(10)]
    clock.now += 3000  # the next UTC hour starts a new count
    assert api.call("POST", "/notification", params={**UID, "message": "later"}).status_code == 200


def test_integration_notification_order_and_wording(fake: FakeOmi, api: Api) -> None:
    assert api.call("POST", "/notification", params=UID).status_code == 422  # message is required
    wrong = api.call("POST", "/notification", key="sk_wrong", params={**UID, "message": "m"})
    assert (wrong.status_code, detail(wrong)) == (403, "Invalid API key")
    stranger = api.call("POST", "/notification", params={"uid": "stranger", "message": "m"})
    assert (stranger.status_code, detail(stranger)) == (403, "User does not have this app installed")


# -- memories ---------------------------------------------------------------------------------------
def test_models_create_memories_needs_the_text_key(api: Api) -> None:
    """``text: Optional[str]`` with no default: Pydantic v2 requires the key, null allowed."""
    without = api.call("POST", "/user/memories", params=UID, json={"memories": [{"content": "likes tea"}]})
    assert without.status_code == 422
    assert detail(without)[0]["loc"] == ["body", "text"] and detail(without)[0]["type"] == "missing"
    ok = api.call(
        "POST",
        "/user/memories",
        params=UID,
        json={"text": None, "memories": [{"content": "likes tea", "tags": ["food"]}]},
    )
    assert (ok.status_code, ok.json()) == (200, {})


@pytest.mark.parametrize("body", [{"text": None}, {"text": "   "}, {"text": "", "memories": []}])
def test_integration_empty_memories_are_refused_after_the_checks(api: Api, body: dict[str, Any]) -> None:
    empty = api.call("POST", "/user/memories", params=UID, json=body)
    assert (empty.status_code, detail(empty)) == (
        422,
        "Either text or explicit memories(facts) are required and cannot be empty",
    )


def test_models_memory_fields(api: Api) -> None:
    bad = api.call("POST", "/user/memories", params=UID, json={"text": "x", "text_source": "tv"})
    assert bad.status_code == 422 and detail(bad)[0]["type"] == "enum"
    api.call(
        "POST",
        "/user/memories",
        params=UID,
        json={
            "text": None,
            "memories": [{"content": "likes tea", "artifact_ref": {"kind": "note", "id": "n1"}}],
        },
    )
    api.call("POST", "/user/memories", params=UID, json={"text": "from an email", "text_source": "email"})
    newest, older = api.call("GET", "/memories", params=UID).json()["memories"]
    assert newest["content"] == "from an email" and newest["uid"] == "u1"
    assert older["artifact_ref"] == {"kind": "note", "id": "n1"}
    assert newest["created_at"].endswith("Z") and "source_id" not in newest  # nulls left out


def test_integration_memories_paging(api: Api) -> None:
    for n in range(3):
        api.fake.add_memory("u1", f"m{n}")
    assert [
        m["content"]
        for m in api.call("GET", "/memories", params={**UID, "limit": 1, "offset": 1}).json()["memories"]
    ] == ["m1"]
    assert_refused(api.call("GET", "/memories", params={**UID, "limit": 1001}), 422, "limit")


# -- conversations ----------------------------------------------------------------------------------
def test_integration_create_conversation(api: Api) -> None:
    body = {"text": "We planned the trip to Lisbon", "started_at": "2026-01-02T10:00:00+00:00"}
    assert api.call("POST", "/user/conversations", params=UID, json=body).json() == {}
    for bad in (
        {"text": "x", "text_source": "fax"},
        {"text": "x", "geolocation": {"latitude": 1}},
        {"text": "x", "started_at": "soon"},
        {},
    ):
        assert api.call("POST", "/user/conversations", params=UID, json=bad).status_code == 422, bad
    (conversation,) = api.call("GET", "/conversations", params={**UID, "max_transcript_segments": 0}).json()[
        "conversations"
    ]
    assert conversation["structured"]["title"].startswith("We planned")
    assert conversation["transcript_segments"] == []
    assert conversation["finished_at"] == "2026-01-02T10:05:00Z"  # start + 300 s, written with Z
    assert "geolocation" not in conversation  # null left out


def test_integration_conversations_defaults_and_filters(api: Api) -> None:
    fake = api.fake
    for n in range(105):
        fake.add_conversation("u1", f"talk {n}", status="completed")
    fake.add_conversation("u1", "still going", status="in_progress")
    fake.add_conversation("u1", "thrown away", discarded=True)
    page = api.call("GET", "/conversations", params=UID).json()["conversations"]
    assert len(page) == 100  # OMI's default limit
    both = api.call("GET", "/conversations", params={**UID, "statuses": ["in_progress", "completed"]})
    assert len(both.json()["conversations"]) == 100
    joined = api.call("GET", "/conversations", params={**UID, "statuses": "in_progress,completed"})
    assert joined.json()["conversations"] == []  # one status named "in_progress,completed"
    progress = api.call("GET", "/conversations", params={**UID, "statuses": "in_progress"}).json()
    assert [c["structured"]["title"] for c in progress["conversations"]] == ["still going"]
    with_discarded = api.call(
        "GET", "/conversations", params={**UID, "include_discarded": "true", "limit": 1}
    )
    assert with_discarded.json()["conversations"][0]["discarded"] is True
    assert api.call("GET", "/conversations", params={**UID, "include_discarded": "maybe"}).status_code == 422
    assert (
        api.call("GET", "/conversations", params={**UID, "max_transcript_segments": 1001}).status_code == 422
    )


def test_integration_dates_end_of_day_and_bad_dates(api: Api, clock: Clock) -> None:
    clock.now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    api.fake.add_conversation("u1", "morning")
    day = "2027-01-15"
    same_day = api.call("GET", "/conversations", params={**UID, "end_date": day}).json()["conversations"]
    assert len(same_day) == 1  # an end date means the end of that day
    assert (
        api.call("GET", "/conversations", params={**UID, "start_date": "2027-01-16"}).json()["conversations"]
        == []
    )
    assert (
        len(
            api.call("GET", "/conversations", params={**UID, "end_date": "2027-01-15T08:00:00Z"}).json()[
                "conversations"
            ]
        )
        == 1
    )
    bad = api.call("GET", "/conversations", params={**UID, "start_date": "yesterday"})
    assert (bad.status_code, detail(bad)) == (
        400,
        "Invalid start_date format. Use ISO format (YYYY-MM-DDTHH:MM:SS.sssZ) or YYYY-MM-DD",
    )
    assert "end_date" in detail(api.call("GET", "/conversations", params={**UID, "end_date": "2027-13-45"}))


def test_search_defaults_clamps_and_speakers(api: Api) -> None:
    fake = api.fake
    fake.add_conversation(
        "u1", "Lisbon trip plans", transcript_segments=[{"text": "hi", "is_user": True, "person_id": None}]
    )
    fake.add_conversation(
        "u1",
        "Lisbon food",
        discarded=True,
        transcript_segments=[{"text": "yo", "is_user": False, "person_id": "p7"}],
    )
    found = api.call("POST", "/search/conversations", params=UID, json={"query": "lisbon"}).json()
    assert len(found["conversations"]) == 2  # discarded ones are included by default
    assert (found["total_pages"], found["current_page"], found["per_page"]) == (1, 1, 10)
    kept = api.call(
        "POST", "/search/conversations", params=UID, json={"query": "lisbon", "include_discarded": False}
    )
    assert len(kept.json()["conversations"]) == 1
    full = api.call(
        "POST", "/search/conversations", params=UID, json={"query": "lisbon", "per_page": 1}
    ).json()
    assert (full["total_pages"], full["per_page"]) == (2, 1)  # a full page: maybe more
    clamped = api.call(
        "POST", "/search/conversations", params=UID, json={"query": "x", "page": 0, "per_page": 5000}
    ).json()
    assert (clamped["current_page"], clamped["per_page"]) == (1, 250)
    assert api.call("POST", "/search/conversations", params=UID, json={}).json()["conversations"] == []
    person = api.call("POST", "/search/conversations", params=UID, json={"speaker_id": "p7"}).json()
    assert [c["structured"]["title"] for c in person["conversations"]] == ["Lisbon food"]
    user = api.call(
        "POST", "/search/conversations", params=UID, json={"query": "lisbon", "speaker_id": "user"}
    ).json()
    assert [c["structured"]["title"] for c in user["conversations"]] == ["Lisbon trip plans"]
    segments = api.call(
        "POST",
        "/search/conversations",
        params={**UID, "max_transcript_segments": 0},
        json={"query": "lisbon"},
    )
    assert all(c["transcript_segments"] == [] for c in segments.json()["conversations"])
    assert_refused(
        api.call("POST", "/search/conversations", params=UID, data="nope"), 422, "JSON decode error"
    )


# -- tasks ------------------------------------------------------------------------------------------
def test_integration_tasks_filters_and_fields(api: Api, clock: Clock) -> None:
    fake = api.fake
    fake.add_task("u1", "buy milk", due_at="2027-01-20T09:00:00+00:00", conversation_id="c1")
    fake.add_task("u1", "call mum", completed=True)
    tasks = api.call("GET", "/tasks", params={**UID, "completed": "false"}).json()["tasks"]
    assert [t["description"] for t in tasks] == ["buy milk"]
    assert set(tasks[0]) == {
        "id",
        "description",
        "completed",
        "created_at",
        "updated_at",
        "due_at",
        "conversation_id",
    }
    done = api.call("GET", "/tasks", params={**UID, "completed": "true"}).json()["tasks"][0]
    assert done["completed_at"].endswith("Z")
    assert [
        t["description"]
        for t in api.call("GET", "/tasks", params={**UID, "conversation_id": "c1"}).json()["tasks"]
    ] == ["buy milk"]
    due = api.call(
        "GET", "/tasks", params={**UID, "due_start_date": "2027-01-20", "due_end_date": "2027-01-20"}
    )
    assert [t["description"] for t in due.json()["tasks"]] == ["buy milk"]
    assert api.call("GET", "/tasks", params={**UID, "due_end_date": "2027-01-19"}).json()["tasks"] == []
    bad = api.call("GET", "/tasks", params={**UID, "due_start_date": "soon"})
    assert bad.status_code == 400 and "due_start_date" in detail(bad)
    assert_refused(api.call("GET", "/tasks", params={**UID, "limit": "ten"}), 422, "limit")


# -- request validation as Pydantic v2 does it --------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "kwargs", "loc", "kind"),
    [
        ("/user/memories", {}, ["body"], "missing"),
        ("/user/memories", {"json": [1, 2]}, ["body"], "model_attributes_type"),
        ("/user/memories", {"json": {"text": 5}}, ["body", "text"], "string_type"),
        ("/user/memories", {"json": {"text": None, "memories": "tea"}}, ["body", "memories"], "list_type"),
        (
            "/user/memories",
            {"json": {"text": None, "memories": [{"content": "x", "tags": [1]}]}},
            ["body", "memories", 0, "tags", 0],
            "string_type",
        ),
        ("/user/memories", {"json": {"text": None, "memories": [7]}}, ["body", "memories", 0], "model_type"),
        (
            "/user/memories",
            {"json": {"text": "x", "artifact_ref": "r"}},
            ["body", "artifact_ref"],
            "dict_type",
        ),
        (
            "/user/conversations",
            {"json": {"text": "x", "geolocation": {"latitude": "north", "longitude": 1}}},
            ["body", "geolocation", "latitude"],
            "float_parsing",
        ),
        (
            "/user/conversations",
            {"json": {"text": "x", "geolocation": {"latitude": True, "longitude": 1}}},
            ["body", "geolocation", "latitude"],
            "float_type",
        ),
        (
            "/search/conversations",
            {"json": {"query": "x", "per_page": "ten"}},
            ["body", "per_page"],
            "int_parsing",
        ),
        ("/search/conversations", {"json": {"query": "x", "page": [1]}}, ["body", "page"], "int_type"),
        (
            "/search/conversations",
            {"json": {"query": "x", "include_discarded": "maybe"}},
            ["body", "include_discarded"],
            "bool_parsing",
        ),
    ],
)
def test_models_validation_problems(
    api: Api, path: str, kwargs: dict[str, Any], loc: list[Any], kind: str
) -> None:
    answer = api.call("POST", path, params=UID, **kwargs)
    assert answer.status_code == 422
    assert [(p["loc"], p["type"]) for p in detail(answer)] == [(loc, kind)]


def test_models_lax_conversions_are_accepted(api: Api) -> None:
    """Pydantic's lax mode, as FastAPI uses it: numeric strings for numbers, "yes"/1 for booleans."""
    body = {"query": "x", "page": "1", "per_page": 5.0, "include_discarded": "yes"}
    found = api.call("POST", "/search/conversations", params=UID, json=body)
    assert found.status_code == 200 and found.json()["per_page"] == 5
    geo = {"text": "x", "geolocation": {"latitude": "52.5", "longitude": 13}}
    assert api.call("POST", "/user/conversations", params=UID, json=geo).status_code == 200
    assert (
        api.call("POST", "/search/conversations", params=UID, json={"include_discarded": 0}).status_code
        == 200
    )


def test_integration_notification_to_a_removed_app_is_404(fake: FakeOmi, api: Api) -> None:
    del fake.apps["app1"]
    gone = api.call("POST", "/notification", params={**UID, "message": "m"})
    assert (gone.status_code, detail(gone)) == (404, "App not found")


def test_models_datetimes_on_the_wire() -> None:
    from flask_omi.testing.fake.wire import iso_z

    assert iso_z("2026-01-02T10:00:00+02:00") == "2026-01-02T08:00:00Z"
    assert iso_z("2026-01-02T10:00:00") == "2026-01-02T10:00:00Z"  # naive: OMI appends Z
    assert iso_z("not a date") == "not a date" and iso_z(None) is None
