"""An erased call is served by no running server process, whoever erased it: ``voice calls erase``
(another process on the same database), ``DELETE /api/calls/{id}`` or the retention purge of this
process, or, with ``--event-relay``, of another server process.

The server keeps ended calls in memory (the recent-call list, the replay history); none of that
may outlive the call's database rows. Calls in progress, whose row may not be written yet, are
served as before.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from starlette.testclient import TestClient, WebSocketDenialResponse

from tests.server.harness import Env, make_services, new_app, scripted
from tests.voice.conftest import postgres_admin_url, postgres_url  # noqa: F401 - fixtures of the e2e test
from tests.voice.console_app import console_env
from voice.cli import cli
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.server.relay import EventRelay
from voice.server.retention_api import sweep_erased
from voice.store.agents import AgentStore

SECRET = "Hi, my order never arrived."
"""The customer's line of every scripted call (``tests.server.harness.scripted``)."""
UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"
"""A relay that is never started connects nowhere: tests hand its messages over themselves."""


def cli_erase(env: Env, *call_ids: str) -> None:
    """``voice calls erase <ids> --yes`` on the server's database and data folder."""
    common = ["--db", env.services.config.database_url, "--data-dir", env.services.config.data_dir]
    done = CliRunner().invoke(cli, ["calls", "erase", *call_ids, "--yes", *common])
    assert done.exit_code == 0, done.output
    assert f"erased {len(call_ids)} calls" in done.output


def listed(env: Env, who: str = "sue") -> list[str]:
    return [c["call_id"] for c in env.client.get("/api/calls", headers=env.headers(who)).json()["calls"]]


def websocket_refusal(env: Env, call_id: str, who: str = "alice") -> int:
    with pytest.raises(WebSocketDenialResponse) as refused:
        with env.client.websocket_connect(f"/ws/calls/{call_id}/events", headers=env.headers(who)):
            pass
    return refused.value.status_code


def replayed(env: Env, call_id: str, count: int, who: str = "alice") -> list[dict[str, Any]]:
    with env.client.websocket_connect(f"/ws/calls/{call_id}/events", headers=env.headers(who)) as ws:
        return [json.loads(ws.receive_text()) for _ in range(count)]


@pytest.mark.unit
def test_a_call_erased_by_the_cli_is_served_by_no_route(env: Env) -> None:
    scripted(env, "CA-gone", "alice", end=True, audio=True)
    scripted(env, "CA-kept", "alice", end=True)
    assert SECRET in [e.get("text") for e in replayed(env, "CA-gone", 4)]  # before: served from memory
    cli_erase(env, "CA-gone")
    c = env.client
    for who in ("alice", "sue"):
        assert c.get("/api/calls/CA-gone", headers=env.headers(who)).status_code == 404
        assert c.get("/api/calls/CA-gone/events", headers=env.headers(who)).status_code == 404  # SSE
        assert websocket_refusal(env, "CA-gone", who) == 404
        assert c.get("/api/calls/CA-gone/audio", headers=env.headers(who)).status_code == 404
    # the lookup that found the row gone dropped the call from memory: not listed either
    assert listed(env) == listed(env, "alice") == ["CA-kept"]
    assert env.services.registry.get("CA-gone") is None and not env.services.hub.knows("CA-gone")
    # the other call is served as before
    assert c.get("/api/calls/CA-kept", headers=env.headers("alice")).json()["call"]["status"] == "ended"
    assert SECRET in [e.get("text") for e in replayed(env, "CA-kept", 4)]


@pytest.mark.unit
def test_the_sweep_drops_calls_erased_elsewhere_from_the_list(env: Env) -> None:
    for call_id in ("CA-1", "CA-2", "CA-3"):
        scripted(env, call_id, "alice", end=True)
    scripted(env, "CA-live", "bob")  # in progress: never looked at
    cli_erase(env, "CA-1", "CA-3")
    assert env.run(sweep_erased, env.services) == ["CA-1", "CA-3"]  # before any request on them
    assert listed(env) == ["CA-live", "CA-2"]
    assert not env.services.hub.knows("CA-1") and env.services.hub.knows("CA-2")
    assert env.run(sweep_erased, env.services) == []


@pytest.mark.unit
def test_the_running_server_sweeps_by_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voice.server.retention_api.SWEEP_EVERY_SECONDS", 0.05)
    with console_env(tmp_path) as env:
        scripted(env, "CA-swept", "alice", end=True)
        assert listed(env) == ["CA-swept"]
        cli_erase(env, "CA-swept")
        deadline = time.monotonic() + 5
        while listed(env):
            assert time.monotonic() < deadline, "the server kept listing the erased call"
            time.sleep(0.02)
        assert not env.services.hub.knows("CA-swept")


@pytest.mark.unit
def test_a_call_in_progress_is_served_before_its_row_is_written(env: Env) -> None:
    scripted(env, "CA-live", "alice")
    turns = ("SELECT count(*) FROM live_turns JOIN calls ON calls.id = live_turns.call_pk "
             "WHERE calls.call_id = 'CA-live'")
    deadline = time.monotonic() + 10
    while _scalar(env, turns) < 2:  # the recorder writes the row and the turns on its own thread:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with env.services.store.engine.begin() as connection:  # ... take them away: not written yet
        connection.execute(text("DELETE FROM calls WHERE call_id = 'CA-live'"))
    response = env.client.get("/api/calls/CA-live", headers=env.headers("alice"))
    assert response.status_code == 200 and response.json()["call"]["status"] == "active"
    assert env.run(sweep_erased, env.services) == [] and listed(env, "alice") == ["CA-live"]
    assert [e["type"] for e in replayed(env, "CA-live", 3)] == ["call.started", "transcript.final",
                                                               "transcript.final"]
    assert websocket_refusal(env, "CA-live", "bob") == 403  # still someone else's


@pytest.mark.unit
def test_an_erasure_through_the_api_reaches_the_other_processes(env: Env) -> None:
    relay_a = EventRelay(UNUSED_DB, env.services.hub, env.services.registry)
    env.services.hub.erasure_observers.append(relay_a.announce_erasure)  # what start() does
    scripted(env, "CA-x", "alice", end=True)
    hub_b, registry_b = EventHub(), CallRegistry()
    relay_b = EventRelay(UNUSED_DB, hub_b, registry_b)
    history = env.services.hub.history("CA-x")

    async def carried_to_b() -> None:
        for event in history:
            relay_b.deliver("CA-x", event)

    asyncio.run(carried_to_b())
    assert registry_b.get("CA-x") is not None and SECRET in [e.get("text") for e in hub_b.history("CA-x")]
    assert env.client.delete("/api/calls/CA-x", headers=env.headers("sue")).status_code == 200
    message = relay_a._outbox.get_nowait()
    assert json.loads(message) == {"origin": relay_a.origin, "erased": "CA-x"}
    assert relay_a.counts["erasures_sent"] == 1

    async def received_by_b() -> None:
        relay_b._loop = asyncio.get_running_loop()  # what start() does, without the threads
        relay_b._received(message)
        await asyncio.sleep(0.01)

    asyncio.run(received_by_b())
    assert registry_b.get("CA-x") is None and not hub_b.knows("CA-x") and hub_b.history("CA-x") == []
    assert relay_b.counts["erasures_received"] == 1
    relay_b.deliver("CA-x", history[-1])  # a late event of the erased call is not kept
    assert not hub_b.knows("CA-x") and registry_b.get("CA-x") is None


@pytest.mark.unit
def test_an_erasure_message_ends_a_relayed_call_still_shown_in_progress() -> None:
    """The erasure may overtake the carrier's ``call.ended`` (or the carrier died without one):
    the call's open streams end, and nothing of it is kept. Calls a process carries itself, and
    its own announcements coming back, are left alone."""
    hub, registry = EventHub(), CallRegistry()
    relay = EventRelay(UNUSED_DB, hub, registry)
    hub.observers.append(relay.offer)
    started = {"type": "call.started", "audio_time": 0.0, "tenant": "acme", "agent_id": "a1", "legs": {},
               "source": "sip"}

    async def run() -> list[dict[str, Any]]:
        relay._loop = asyncio.get_running_loop()
        relay.deliver("CA-relayed", {**started, "seq": 1, "call_id": "CA-relayed"})
        relay.deliver("CA-relayed", {"type": "transcript.final", "text": SECRET, "seq": 2, "call_id": "CA-relayed"})
        hub.publish("CA-own", started)  # carried by this process, in progress
        streamed: list[dict[str, Any]] = []

        async def follow() -> None:
            async for event in hub.subscribe("CA-relayed"):
                streamed.append(event)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.01)
        for call_id in ("CA-relayed", "CA-own"):
            relay._received(json.dumps({"origin": "other-process", "erased": call_id}))
        relay._received(json.dumps({"origin": relay.origin, "erased": "CA-relayed"}))  # its own: skipped
        await asyncio.wait_for(follower, 2)  # the stream ended
        relay.deliver("CA-relayed", {"type": "call.ended", "reason": "hangup", "seq": 3, "call_id": "CA-relayed"})
        return streamed

    streamed = asyncio.run(run())
    assert [e["seq"] for e in streamed] == [1, 2]
    assert registry.get("CA-relayed") is None and not hub.knows("CA-relayed")
    assert relay.counts["erasures_received"] == 2
    own = registry.get("CA-own")
    assert hub.knows("CA-own") and (own is None or own.status == "active")


@pytest.mark.e2e
def test_two_servers_on_postgresql_forget_an_erased_call(request: pytest.FixtureRequest, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two apps as ``voice serve --event-relay`` builds them, one PostgreSQL: a call carried by A
    and erased through A's API, or with the CLI, is served by neither afterwards."""
    monkeypatch.setattr("voice.server.retention_api.SWEEP_EVERY_SECONDS", 0.2)
    monkeypatch.setattr("voice.server.calls.RELAYED_ROW_GRACE", 0.5)  # B's sweep then looks at A's calls too
    url = str(request.getfixturevalue("postgres_url"))
    a = make_services(tmp_path / "a", db_url=url, event_relay=True)
    b = make_services(tmp_path / "b", db_url=url, event_relay=True)
    agents = AgentStore(a.store)
    tokens = {name: agents.add(name, role=role)[1] for name, role in (("alice", "agent"), ("sue", "supervisor"))}
    app_a, app_b = new_app(a), new_app(b)
    with TestClient(app_a) as client_a, TestClient(app_b) as client_b:
        for app in (app_a, app_b):
            assert app.state.relay.listening.wait(10)
        env_a, env_b = Env(client_a, a, tokens), Env(client_b, b, tokens)
        scripted(env_a, "CA-api", "alice", end=True)
        scripted(env_a, "CA-cli", "alice", end=True)
        _until(lambda: listed(env_b) == ["CA-cli", "CA-api"], "server B never listed the calls")
        assert client_a.delete("/api/calls/CA-api", headers=env_a.headers("sue")).status_code == 200
        _until(lambda: listed(env_b) == ["CA-cli"], "server B kept listing the call erased through A")
        assert client_b.get("/api/calls/CA-api", headers=env_b.headers("alice")).status_code == 404
        assert app_b.state.relay.counts["erasures_received"] == 1
        cli_erase(env_a, "CA-cli")
        for env in (env_a, env_b):  # refused at once, forgotten within the sweep
            assert env.client.get("/api/calls/CA-cli/events", headers=env.headers("alice")).status_code == 404
        _until(lambda: listed(env_a) == listed(env_b) == [], "a server kept listing the call erased with the CLI")


def _scalar(env: Env, query: str) -> int:
    with env.services.store.engine.connect() as connection:
        return int(connection.execute(text(query)).scalar_one())


def _until(check: Any, why: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


@pytest.mark.unit
def test_a_retention_purge_announces_only_the_calls_this_process_holds(env: Env) -> None:
    """A purge of thousands of old calls must not fill the relay's queue ahead of live events:
    calls no process holds any more are left to each process's sweep."""
    from voice.server.retention_api import forget_erased
    from voice.store.retention import ErasureReport

    relay = EventRelay(UNUSED_DB, env.services.hub, env.services.registry)
    env.services.hub.erasure_observers.append(relay.announce_erasure)
    scripted(env, "CA-recent", "alice", end=True)
    old = [f"CA-old-{i}" for i in range(3000)]

    async def purge() -> None:  # on the event loop, as the retention task runs it
        forget_erased(env.services, ErasureReport(calls=[*old, "CA-recent"]))

    asyncio.run(purge())
    assert relay.counts["erasures_sent"] == 1 and relay.counts["dropped"] == 0
    assert json.loads(relay._outbox.get_nowait())["erased"] == "CA-recent"
