"""The setup-completed URL that OMI calls before enabling the app for a user."""

from __future__ import annotations

import logging

import pytest

from flask_omi import OmiBlueprint

from .conftest import make_app


def test_without_a_checker_setup_is_complete(client: object) -> None:
    response = client.get("/omi/setup-completed?uid=u1")  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.get_json() == {"is_setup_completed": True}


def test_checker_decides(bp: OmiBlueprint) -> None:
    done = {"u1"}

    @bp.setup_checker
    def check(uid: str) -> bool:
        return uid in done

    client = make_app(bp).test_client()
    assert client.get("/omi/setup-completed?uid=u1").get_json() == {"is_setup_completed": True}
    assert client.get("/omi/setup-completed?uid=u2").get_json() == {"is_setup_completed": False}


def test_async_checker(bp: OmiBlueprint) -> None:
    @bp.setup_checker
    async def check(uid: str) -> bool:
        return False

    client = make_app(bp).test_client()
    assert client.get("/omi/setup-completed?uid=u1").get_json() == {"is_setup_completed": False}


@pytest.mark.parametrize(
    ("query", "code"), [("", "uid_missing"), ("?uid=", "uid_missing"), ("?uid=a%20b", "uid_invalid")]
)
def test_bad_uid_is_400_json(client: object, query: str, code: str) -> None:
    response = client.get(f"/omi/setup-completed{query}")  # type: ignore[attr-defined]
    assert response.status_code == 400
    assert response.get_json()["error"] == code


def test_checker_that_raises_is_logged_and_500_json(
    bp: OmiBlueprint, caplog: pytest.LogCaptureFixture
) -> None:
    @bp.setup_checker
    def broken(uid: str) -> bool:
        raise RuntimeError("database down")

    client = make_app(bp).test_client()
    with caplog.at_level(logging.ERROR, logger="flask_omi"):
        response = client.get("/omi/setup-completed?uid=u1")
    assert response.status_code == 500
    assert response.get_json()["error"] == "setup_check_failed"
    assert "database down" not in response.get_data(as_text=True)
    assert "setup-completed checker failed" in caplog.text
