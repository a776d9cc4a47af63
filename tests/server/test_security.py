"""Security edges of the console API on the real app: a revoked token's open streams end, and no
route buffers a request body beyond the cap before it checks anything."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.harness import Env, ScriptedCall, ServerThread, make_services, new_app
from voice.server import auth
from voice.server.limits import MAX_BODY_BYTES
from voice.store.agents import AgentStore

pytestmark = pytest.mark.unit

CARD = "My card number is 4111 1111 1111 1111"


@pytest.fixture
def quick_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams check their token every 50 ms instead of every few seconds."""
    monkeypatch.setattr(auth, "RECHECK_SECONDS", 0.05, raising=False)


def _revoke(env: Env, name: str) -> None:
    """Remove the agent and forget the token cache, as 10 s later."""
    AgentStore(env.services.store).remove(name)
    env.client.app.state.token_cache = None


def test_revoked_token_closes_the_call_websocket(env: Env, quick_recheck: None) -> None:
    call = ScriptedCall(env.services, "CA-live", agent_id="alice")
    env.run(call.start)
    with env.client.websocket_connect("/ws/calls/CA-live/events", headers=env.headers("alice")) as ws:
        assert json.loads(ws.receive_text())["type"] == "call.started"
        _revoke(env, "alice")
        time.sleep(0.3)
        env.run(call.final, "t1", "inbound", "customer", CARD, 0.5, 2.0)
        message = ws.receive()
    assert message["type"] == "websocket.close" and message["code"] == 1008, message


def test_replaced_token_closes_the_supervisor_websocket(env: Env, quick_recheck: None) -> None:
    call = ScriptedCall(env.services, "CA-live", agent_id="alice")
    with env.client.websocket_connect("/ws/supervisor", headers=env.headers("sue")) as ws:
        env.run(call.start)
        assert json.loads(ws.receive_text())["type"] == "call.started"
        AgentStore(env.services.store).rotate("sue")
        env.client.app.state.token_cache = None
        time.sleep(0.3)
        env.run(call.final, "t1", "inbound", "customer", CARD, 0.5, 2.0)
        message = ws.receive()
    assert message["type"] == "websocket.close" and message["code"] == 1008, message


def test_revoked_token_ends_the_sse_stream(tmp_path: Path, quick_recheck: None) -> None:
    services = make_services(tmp_path)
    token = AgentStore(services.store).add("alice")[1]
    call = ScriptedCall(services, "CA-live", agent_id="alice")
    app = new_app(services)
    with ServerThread(app) as server:
        server.run(call.start())
        seen: list[str] = []
        with httpx.stream("GET", f"{server.url}/api/calls/CA-live/events",
                          headers={"Authorization": f"Bearer {token}"}, timeout=10) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event:"):
                    break
            AgentStore(services.store).remove("alice")
            app.state.token_cache = None
            time.sleep(0.3)
            server.run(call.final("t1", "inbound", "customer", CARD, 0.5, 2.0))
            server.run(call.end(2.0))
            seen = list(lines)
    assert not any("4111" in line for line in seen), seen


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"token": "'
    for _ in range(size // 65536):
        yield b"a" * 65536
    yield b'"}'


def test_request_bodies_are_capped_before_any_check(env: Env) -> None:
    c = env.client
    declared = c.post("/api/session", content=b"x" * (MAX_BODY_BYTES + 1),
                      headers={"content-type": "application/json"})
    assert declared.status_code == 413
    chunked = c.post("/api/calls/CA-x/feedback", content=_chunks(MAX_BODY_BYTES + 1),
                     headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and "larger than" in chunked.json()["detail"]
    assert c.post("/api/session", json={"token": env.tokens["alice"]}).status_code == 200
    # Uploads stream to disk under their own cap: an agent's large upload is refused as an agent's.
    upload = c.post("/api/qa/uploads?filename=a.wav", content=b"\0" * (MAX_BODY_BYTES + 1),
                    headers=env.headers("alice"))
    assert upload.status_code == 403


def test_a_non_ascii_last_event_id_is_ignored(tmp_path: Path) -> None:
    """``\\xb2`` (Latin-1 superscript two) passes ``str.isdigit`` but not ``int``: it was a 500."""
    services = make_services(tmp_path)
    token = AgentStore(services.store).add("alice")[1]
    call = ScriptedCall(services, "CA-1", agent_id="alice")
    with ServerThread(new_app(services)) as server:
        server.run(call.start())
        server.run(call.end(1.0))
        host, port = server.host.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw:  # httpx sends only ASCII headers
            raw.sendall(b"GET /api/calls/CA-1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        b"Authorization: Bearer " + token.encode() + b"\r\nLast-Event-ID: \xb2\r\n\r\n")
            head = raw.recv(64)
    assert head.startswith(b"HTTP/1.1 200"), head


def test_a_database_error_while_rechecking_a_token_is_not_a_revocation(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import HTTPException

    from voice.server import auth
    from voice.store.agents import Agent

    checks: list[str] = []

    async def flaky(_connection: object) -> Agent:
        checks.append("checked")
        if len(checks) == 1:
            raise RuntimeError("database down")  # a stream must outlive this
        raise HTTPException(401, "revoked")

    monkeypatch.setattr(auth, "authenticate", flaky)
    monkeypatch.setattr(auth, "RECHECK_SECONDS", 0.01)
    asyncio.run(asyncio.wait_for(auth.revoked(None, Agent("sue", "supervisor")), 5))  # type: ignore[arg-type]
    assert checks == ["checked", "checked"]  # ended by the revocation, not by the outage
