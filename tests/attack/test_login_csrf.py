"""Login CSRF and session fixation."""

from __future__ import annotations

from flask_omi import OmiBlueprint

from ..conftest import make_app, start_login


def test_forged_callback_cannot_sign_a_victim_into_the_attackers_account() -> None:
    app = make_app(OmiBlueprint())
    attacker, victim = app.test_client(), app.test_client()
    # The attacker starts a real sign-in in their own browser and stops before the callback...
    attacker_state = start_login(attacker)
    forged = f"/omi/callback?uid=attacker_uid&state={attacker_state}"
    # ...then gets the victim's browser to open it, signed out or in the middle of its own sign-in.
    assert victim.get(forged).status_code == 400
    assert victim.get("/dashboard").status_code == 302
    start_login(victim)
    assert victim.get(forged).status_code == 400
    assert victim.get("/dashboard").status_code == 302
    # And a victim who is signed in stays themselves.
    victim.get(f"/omi/callback?uid=victim_uid&state={start_login(victim)}")
    assert victim.get(forged).status_code == 400
    assert victim.get("/dashboard").get_data(as_text=True) == "hello victim_uid"
    # The attacker's own state still works in the attacker's browser: the refusal was not a lockout.
    assert attacker.get(forged).status_code == 302


def test_values_planted_before_sign_in_do_not_survive() -> None:
    app = make_app(OmiBlueprint())
    client = app.test_client()
    with client.session_transaction() as session:
        session["is_admin"] = True
        session["_omi_uid"] = "planted_uid"
        session["_user_id"] = "flask-login-planted"
    state = start_login(client)
    client.get(f"/omi/callback?uid=real_uid&state={state}")
    with client.session_transaction() as session:
        assert dict(session).keys() <= {"_omi_uid", "_omi_pending", "_omi_retired"}
        assert session["_omi_uid"] == "real_uid"


def test_a_session_cookie_from_before_sign_in_is_not_the_one_after() -> None:
    client = make_app(OmiBlueprint()).test_client()
    state = start_login(client)
    before = client.get_cookie("session")
    client.get(f"/omi/callback?uid=u1&state={state}")
    after = client.get_cookie("session")
    assert before is not None and after is not None and before.value != after.value


def test_server_side_session_gets_a_new_id_at_sign_in() -> None:
    """With Flask-Session, a session id planted or seen before sign-in is dead after it."""
    import redis
    from flask_session import Session

    from .servers import redis_server

    with redis_server() as url:
        store = redis.from_url(url)
        app = make_app(OmiBlueprint(), SESSION_TYPE="redis", SESSION_REDIS=store, SESSION_PERMANENT=False)
        Session(app)
        client = app.test_client()
        state = start_login(client)
        planted = client.get_cookie("session")
        assert planted is not None and store.exists(f"session:{planted.value}")
        client.get(f"/omi/callback?uid=u1&state={state}")
        fresh = client.get_cookie("session")
        assert fresh is not None and fresh.value != planted.value
        assert not store.exists(f"session:{planted.value}")
        assert client.get("/dashboard").get_data(as_text=True) == "hello u1"
