"""The session cookie on the real app: it holds a server-side session id, not the API token, so
signing out, a new token or removing the agent ends it on every server process; bearer tokens
work as before; a cookie from before sessions (the raw token) no longer signs anyone in."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect
from starlette.testclient import TestClient

from tests.server.harness import Env, ScriptedCall, ServerThread, make_services, new_app
from voice.server import auth
from voice.store import Store
from voice.store.agents import AgentStore, AuthenticationError
from voice.store.migrate import alembic_config, head_revision
from voice.store.sessions import SessionStore

pytestmark = pytest.mark.unit

CARD = "My card number is 4111 1111 1111 1111"
COOKIE = auth.SESSION_COOKIE


@pytest.fixture
def quick_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams check their sign-in every 50 ms instead of every few seconds."""
    monkeypatch.setattr(auth, "RECHECK_SECONDS", 0.05)


def _sign_in(client: TestClient, token: str) -> str:
    """POST /api/session; returns the cookie's value and leaves the client's cookie jar empty, so
    each request below says explicitly which cookie it sends."""
    response = client.post("/api/session", json={"token": token})
    assert response.status_code == 200, response.text
    value = response.cookies[COOKIE]
    client.cookies.clear()
    return value


def _me(client: TestClient, cookie: str) -> httpx.Response:
    return client.get("/api/me", headers={"Cookie": f"{COOKIE}={cookie}"})


def _forget_cache(client: TestClient) -> None:
    """As CACHE_SECONDS later."""
    client.app.state.token_cache = None  # type: ignore[attr-defined]


def test_the_cookie_holds_a_session_id_and_signs_in(env: Env) -> None:
    response = env.client.post("/api/session", json={"token": env.tokens["alice"]})
    assert response.status_code == 200 and response.json()["name"] == "alice"
    cookie = response.cookies[COOKIE]
    assert env.tokens["alice"] not in cookie and not cookie.startswith("nl_")
    flags = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert f"max-age={auth.COOKIE_MAX_AGE}" in flags
    env.client.cookies.clear()
    assert _me(env.client, cookie).json() == {"name": "alice", "role": "agent", "tenant": None}
    assert env.client.get("/api/me").status_code == 401


def test_a_signed_out_cookie_is_refused_when_replayed(env: Env) -> None:
    cookie = _sign_in(env.client, env.tokens["alice"])
    assert _me(env.client, cookie).status_code == 200
    signed_out = env.client.delete("/api/session", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert signed_out.status_code == 204
    assert COOKIE in signed_out.headers["set-cookie"] and "max-age=0" in signed_out.headers["set-cookie"].lower()
    replayed = _me(env.client, cookie)  # at once: the process that signed out forgets its cache
    assert replayed.status_code == 401, replayed.text
    assert env.client.get("/api/calls", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code == 401
    assert env.client.delete("/api/session").status_code == 204  # signing out again is harmless


def test_signing_out_ends_the_session_on_another_server_process(env: Env, tmp_path: Path) -> None:
    other = make_services(tmp_path)  # a second server on the same database
    with TestClient(new_app(other)) as elsewhere:
        cookie = _sign_in(env.client, env.tokens["alice"])
        assert _me(elsewhere, cookie).status_code == 200
        assert env.client.delete("/api/session", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code == 204
        _forget_cache(elsewhere)
        assert _me(elsewhere, cookie).status_code == 401
    other.store.close()


def test_other_sessions_survive_a_sign_out(env: Env) -> None:
    laptop, phone = _sign_in(env.client, env.tokens["alice"]), _sign_in(env.client, env.tokens["alice"])
    assert laptop != phone
    env.client.delete("/api/session", headers={"Cookie": f"{COOKIE}={laptop}"})
    assert _me(env.client, laptop).status_code == 401
    assert _me(env.client, phone).status_code == 200


def test_signing_in_again_keeps_the_browsers_own_live_session(env: Env) -> None:
    """The pages sign in on every load: tabs share the cookie, so it must not change under them."""
    cookie = _sign_in(env.client, env.tokens["alice"])

    def again(token: str, sent: str) -> str:
        response = env.client.post("/api/session", json={"token": token}, headers={"Cookie": f"{COOKIE}={sent}"})
        env.client.cookies.clear()
        assert response.status_code == 200, response.text
        return response.cookies[COOKIE]

    assert again(env.tokens["alice"], cookie) == cookie
    bobs = again(env.tokens["bob"], cookie)  # another agent's session is neither taken over nor ended
    assert bobs != cookie
    assert _me(env.client, cookie).json()["name"] == "alice" and _me(env.client, bobs).json()["name"] == "bob"
    env.client.delete("/api/session", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert again(env.tokens["alice"], cookie) != cookie  # a signed-out session is not revived
    assert _me(env.client, cookie).status_code == 401


def test_a_new_token_ends_the_agents_sessions(env: Env) -> None:
    alice, bob = _sign_in(env.client, env.tokens["alice"]), _sign_in(env.client, env.tokens["bob"])
    new_token = AgentStore(env.services.store).rotate("alice")
    _forget_cache(env.client)
    assert _me(env.client, alice).status_code == 401
    assert _me(env.client, bob).status_code == 200
    assert env.client.post("/api/session", json={"token": env.tokens["alice"]}).status_code == 401
    again = _sign_in(env.client, new_token)
    assert _me(env.client, again).json()["name"] == "alice"


def test_removing_the_agent_ends_their_sessions(env: Env) -> None:
    cookie = _sign_in(env.client, env.tokens["bob"])
    AgentStore(env.services.store).remove("bob")
    _forget_cache(env.client)
    assert _me(env.client, cookie).status_code == 401


def test_a_cookie_holding_a_raw_token_no_longer_signs_in(env: Env) -> None:
    """A cookie set before sessions held the API token itself: it is refused, so the page signs in again."""
    response = _me(env.client, env.tokens["sue"])
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


def test_websocket_denies_a_raw_token_cookie(env: Env) -> None:
    from starlette.testclient import WebSocketDenialResponse

    with pytest.raises(WebSocketDenialResponse) as denied:
        with env.client.websocket_connect("/ws/supervisor",
                                          headers={"Cookie": f"{COOKIE}={env.tokens['sue']}"}):
            pass
    assert denied.value.status_code == 401


def test_bearer_tokens_work_as_before(env: Env) -> None:
    assert env.client.get("/api/me", headers=env.headers("sue")).json()["name"] == "sue"
    # The bearer header wins over a cookie, even a bad one.
    both = {**env.headers("sue"), "Cookie": f"{COOKIE}=not-a-session"}
    assert env.client.get("/api/me", headers=both).json()["name"] == "sue"
    assert env.client.get("/api/me", headers={"Authorization": "Bearer nl_wrong"}).status_code == 401
    old = env.tokens["sue"]
    AgentStore(env.services.store).rotate("sue")
    _forget_cache(env.client)
    assert env.client.get("/api/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_signing_out_closes_the_cookies_open_websocket(env: Env, quick_recheck: None) -> None:
    cookie = _sign_in(env.client, env.tokens["alice"])
    call = ScriptedCall(env.services, "CA-live", agent_id="alice")
    env.run(call.start)
    with env.client.websocket_connect("/ws/calls/CA-live/events", headers={"Cookie": f"{COOKIE}={cookie}"}) as ws:
        assert json.loads(ws.receive_text())["type"] == "call.started"
        assert env.client.delete("/api/session", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code == 204
        time.sleep(0.3)
        env.run(call.final, "t1", "inbound", "customer", CARD, 0.5, 2.0)
        message = ws.receive()
    assert message["type"] == "websocket.close" and message["code"] == 1008, message


def test_signing_out_ends_the_cookies_sse_stream(tmp_path: Path, quick_recheck: None) -> None:
    services = make_services(tmp_path)
    token = AgentStore(services.store).add("alice")[1]
    call = ScriptedCall(services, "CA-live", agent_id="alice")
    with ServerThread(new_app(services)) as server:
        server.run(call.start())
        signed_in = httpx.post(f"{server.url}/api/session", json={"token": token})
        cookie = {"Cookie": f"{COOKIE}={signed_in.cookies[COOKIE]}"}
        seen: list[str] = []
        with httpx.stream("GET", f"{server.url}/api/calls/CA-live/events", headers=cookie, timeout=10) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event:"):
                    break
            assert httpx.delete(f"{server.url}/api/session", headers=cookie).status_code == 204
            time.sleep(0.3)
            server.run(call.final("t1", "inbound", "customer", CARD, 0.5, 2.0))
            server.run(call.end(2.0))
            seen = list(lines)
    assert not any("4111" in line for line in seen), seen


def test_sessions_expire_and_expired_rows_are_purged(env: Env) -> None:
    sessions = SessionStore(env.services.store)
    _, stale = sessions.open(env.tokens["alice"], max_age=timedelta(seconds=-1))
    with pytest.raises(AuthenticationError):
        sessions.agent(stale)
    _, fresh = sessions.open(env.tokens["bob"], max_age=timedelta(days=30))
    assert sessions.agent(fresh).name == "bob"
    with env.services.store.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT count(*) FROM agent_sessions").scalar_one()
    assert rows == 1  # the expired one went when bob signed in


def test_an_existing_database_gains_the_sessions_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0006")  # the release before sessions
    with engine.connect() as connection:
        assert "agent_sessions" not in inspect(connection).get_table_names()
    engine.dispose()
    store = Store.open(url)
    try:
        with store.engine.connect() as connection:
            assert "agent_sessions" in inspect(connection).get_table_names()
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == head_revision()
        token = AgentStore(store).add("alice")[1]
        _, session_id = SessionStore(store).open(token, max_age=timedelta(days=30))
        assert SessionStore(store).agent(session_id).name == "alice"
    finally:
        store.close()
