"""Call events relayed between server processes through a real PostgreSQL (LISTEN/NOTIFY).

Two hubs with their own registries and relays stand for two ``voice serve --event-relay``
processes on one database: what one publishes, the other lists, replays and streams."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from voice.errors import ConfigError
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.server.relay import MAX_PAYLOAD, RELAY_CHANNEL, EventRelay, relay_conninfo


def _process(conninfo: str) -> tuple[EventHub, CallRegistry, EventRelay]:
    hub, registry = EventHub(), CallRegistry()
    return hub, registry, EventRelay(conninfo, hub, registry)


def _words(n: int) -> list[dict[str, Any]]:
    return [{"text": f"word{i}", "start": i * 0.3, "end": i * 0.3 + 0.25, "probability": 0.9} for i in range(n)]


async def _until(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "relayed events did not arrive"
        await asyncio.sleep(0.02)


@pytest.mark.e2e
def test_events_of_one_process_reach_the_other(postgres_url: str) -> None:
    conninfo = relay_conninfo(postgres_url)
    hub_a, registry_a, relay_a = _process(conninfo)
    hub_b, registry_b, relay_b = _process(conninfo)

    async def run() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        relay_a.start(loop)
        relay_b.start(loop)
        await _until(lambda: relay_a.listening.is_set() and relay_b.listening.is_set())
        streamed: list[dict[str, Any]] = []

        async def follow() -> None:  # every event process B gets, live (as the supervisor feed)
            async for event in hub_b.subscribe_all():
                streamed.append(event)
                if event["type"] == "call.ended":
                    return

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.05)
        with psycopg.connect(conninfo, autocommit=True) as stray:  # junk on the channel
            stray.execute("SELECT pg_notify(%s, %s)", (RELAY_CHANNEL, "not an event"))
        hub_a.publish("call-1", {"type": "call.started", "audio_time": 0.0, "tenant": "acme",
                                 "agent_id": "a1", "legs": {"inbound": "customer"}, "source": "twilio"})
        hub_a.publish("call-1", {"type": "transcript.final", "audio_time": 4.2, "role": "customer",
                                 "text": "I want to cancel", "words": _words(4)})
        hub_a.publish("call-1", {"type": "transcript.partial", "audio_time": 40.0, "role": "agent",
                                 "text": "long", "committed": _words(200), "tentative": []})
        hub_a.publish("call-1", {"type": "call.ended", "audio_time": 41.0, "reason": "hangup"})
        await asyncio.wait_for(follower, 10)
        return streamed

    try:
        streamed = asyncio.run(run())
    finally:
        relay_a.close()
        relay_b.close()
    local = hub_a.history("call-1")
    assert [e["type"] for e in streamed] == [e["type"] for e in local]  # in order, nothing lost
    assert [(e["seq"], e["emitted_at"]) for e in streamed] == [(e["seq"], e["emitted_at"]) for e in local]
    assert streamed[1]["words"] == local[1]["words"]
    assert len(local[2]["committed"]) == 200 and "committed" not in streamed[2] and streamed[2]["words_omitted"]
    state = registry_b.get("call-1")
    assert state is not None and (state.agent_id, state.tenant, state.status) == ("a1", "acme", "ended")
    assert state.last_text == "customer: I want to cancel" and state.end_reason == "hangup"
    # replay from a sequence number; the ended call's history keeps no partials (seq 3)
    assert [e["seq"] for e in hub_b.history("call-1", since=1)] == [2, 4]
    assert relay_b.counts["received"] == 4 and relay_b.counts["malformed"] == 1
    assert relay_a.counts["sent"] == 4 and relay_a.counts["words_omitted"] == 1
    assert len(hub_a.history("call-1")) == 4  # its own events did not come back to A


@pytest.mark.e2e
def test_a_process_that_joins_midway_gets_the_call_history(postgres_url: str) -> None:
    """A restarted process hears of a running call midway: it asks for the history once, and
    then lists the call and replays it from the start (partials excepted), in order."""
    conninfo = relay_conninfo(postgres_url)
    hub_a, registry_a, relay_a = _process(conninfo)
    hub_b, registry_b, relay_b = _process(conninfo)
    hub_c, _, relay_c = _process(conninfo)  # listening all along: the back-fill is not for it

    async def run() -> None:
        loop = asyncio.get_running_loop()
        relay_a.start(loop)
        relay_c.start(loop)
        await _until(lambda: relay_a.listening.is_set() and relay_c.listening.is_set())
        hub_a.publish("call-2", {"type": "call.started", "audio_time": 0.0, "tenant": "acme",
                                 "agent_id": "a7", "legs": {}, "source": "sip"})
        hub_a.publish("call-2", {"type": "transcript.final", "audio_time": 3.0, "role": "customer",
                                 "text": "my order never came", "words": _words(4)})
        hub_a.publish("call-2", {"type": "transcript.partial", "audio_time": 4.0, "role": "agent",
                                 "text": "sorry", "committed": [], "tentative": []})
        hub_a.publish("call-2", {"type": "transcript.final", "audio_time": 6.0, "role": "agent",
                                 "text": "sorry to hear that", "words": _words(4)})
        await _until(lambda: relay_a.counts["sent"] == 4)  # all before B listens
        relay_b.start(loop)  # B (re)starts while the call runs
        await _until(relay_b.listening.is_set)
        hub_a.publish("call-2", {"type": "transcript.final", "audio_time": 9.0, "role": "customer",
                                 "text": "can you resend it", "words": _words(4)})
        await _until(lambda: hub_b.knows("call-2"), seconds=10.0)  # the first it hears of the call

        async def agent_screen() -> None:  # opened at once, while the history is on its way
            async for event in hub_b.subscribe("call-2"):
                screen.append(event["seq"])

        screen_task = asyncio.create_task(agent_screen())
        await _until(lambda: hub_b.first_seq("call-2") == 1 and len(hub_b.history("call-2")) == 4)
        hub_a.publish("call-2", {"type": "call.ended", "audio_time": 10.0, "reason": "hangup"})
        await _until(lambda: len(hub_b.history("call-2")) == 5)
        await asyncio.wait_for(screen_task, 10)

    screen: list[int] = []
    try:
        asyncio.run(run())
    finally:
        for relay in (relay_a, relay_b, relay_c):
            relay.close()
    assert [e["seq"] for e in hub_b.history("call-2")] == [1, 2, 4, 5, 6]  # the partial is not back-filled
    assert [e["seq"] for e in hub_b.history("call-2", since=2)] == [4, 5, 6]
    assert [e["emitted_at"] for e in hub_b.history("call-2")] == [
        e["emitted_at"] for e in hub_a.history("call-2") if e["type"] != "transcript.partial"]
    state = registry_b.get("call-2")
    assert state is not None and (state.agent_id, state.tenant, state.status) == ("a7", "acme", "ended")
    assert state.turns == 3 and state.last_text == "customer: can you resend it"  # newest, not back-filled
    assert relay_b.counts["history_requests"] == 1 and relay_a.counts["backfilled"] == 4
    assert relay_b.counts["histories_received"] == 1 and relay_c.counts["histories_received"] == 0
    assert screen == [1, 2, 4, 5, 6]  # the screen opened midway got the whole call, in order
    assert relay_c.counts["received"] == 6  # live only, whole
    assert [e["seq"] for e in hub_c.history("call-2")] == [1, 2, 4, 5, 6]  # ended: its partial dropped
    assert registry_a.get("call-2") is None  # A's own registry is the server's business, not the relay's


@pytest.mark.unit
def test_the_relay_needs_postgresql() -> None:
    with pytest.raises(ConfigError, match="PostgreSQL"):
        relay_conninfo("sqlite:///nextline.db")
    assert relay_conninfo("postgresql+psycopg://u:p@127.0.0.1:5432/db").startswith("postgresql://u:p@")
    assert MAX_PAYLOAD < 8000


@pytest.mark.e2e
def test_two_servers_on_one_database_each_show_every_call(postgres_url: str, tmp_path: Path) -> None:
    """Two apps as ``voice serve --event-relay`` builds them, one database: a call carried by
    server A is listed and streamed to its agent by server B, and only to its agent."""
    from starlette.testclient import TestClient

    from tests.server.harness import Env, make_services, new_app, scripted
    from voice.store.agents import AgentStore

    a = make_services(tmp_path / "a", db_url=postgres_url, event_relay=True)
    b = make_services(tmp_path / "b", db_url=postgres_url, event_relay=True)
    agents = AgentStore(a.store)
    tokens = {name: agents.add(name, role="agent")[1] for name in ("alice", "bob")}
    app_a, app_b = new_app(a), new_app(b)
    with TestClient(app_a) as client_a, TestClient(app_b) as client_b:
        for app in (app_a, app_b):
            assert app.state.relay.listening.wait(10)
        env_a = Env(client_a, a, tokens)
        scripted(env_a, "CA-relayed", "alice", end=True)
        alice, bob = env_a.headers("alice"), env_a.headers("bob")
        deadline = time.monotonic() + 10
        while not (listed := client_b.get("/api/calls", headers=alice).json()["calls"]):
            assert time.monotonic() < deadline, "server B never listed the call"
            time.sleep(0.05)
        assert [c["call_id"] for c in listed] == ["CA-relayed"]
        assert client_b.get("/api/calls", headers=bob).json()["calls"] == []
        with client_b.stream("GET", "/api/calls/CA-relayed/events", headers=alice) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
        types = [line.split('"type":"')[1].split('"')[0] for line in (x.replace(" ", "") for x in lines)]
        assert types[0] == "call.started" and types[-1] == "call.ended" and types.count("transcript.final") == 2
        assert client_b.get("/healthz").json()["event_relay"]["received"] == len(types)


@pytest.mark.unit
def test_live_events_go_out_before_back_fill() -> None:
    """A history answer queues back-fill; live events published meanwhile are sent first."""
    hub, registry, relay = _process("postgresql://unused@127.0.0.1:1/none")
    hub.observers.append(relay.offer)  # what start() does, without the threads
    for seq in range(3):
        hub.publish("old-call", {"type": "transcript.final", "text": f"old {seq}"})
    while relay._outbox.qsize():  # what the sender had already sent before the request
        relay._next_payload()
    relay._answer_history("old-call", "asker")
    relay._answer_history("someone-elses-call", "asker")  # not carried here: no answer
    hub.publish("new-call", {"type": "transcript.final", "text": "live"})
    sent = []
    while relay._outbox.qsize() or relay._backfill.qsize():
        payload = relay._next_payload()
        if payload:
            sent.append(json.loads(payload))
    assert [m["event"]["text"] for m in sent[:-1]] == ["live", "old 0", "old 1", "old 2"]
    assert sent[-1] == {"to": "asker", "origin": relay.origin, "synced": "old-call"}  # the history is complete
    assert [m.get("to") for m in sent] == [None] + ["asker"] * 4 and relay.counts["backfilled"] == 3


@pytest.mark.unit
def test_an_unreachable_database_never_holds_up_a_call() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hub, registry, relay = _process(f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=1")

    async def run() -> None:
        relay.start(asyncio.get_running_loop())
        started = time.monotonic()
        for seq in range(50):
            hub.publish("call-x", {"type": "transcript.partial", "audio_time": seq, "text": "x"})
        # Publishing only queues: waiting on the sender even once would take its 1 s retry (the
        # database never answers), so under 1 s is the behaviour; the rest is a loaded core's margin.
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(0.3)

    asyncio.run(run())
    relay.close()
    # Both threads ended within close()'s joins, rather than being left running when a join's 5 s
    # timeout ran out (what the wall-clock bound used to stand for).
    assert not any(thread.is_alive() for thread in relay._threads)
    assert len(hub.history("call-x")) == 50 and relay.counts["sent"] == 0 and not relay.listening.is_set()


@pytest.mark.unit
def test_history_requests_are_remembered_for_a_bounded_number_of_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voice.server.relay.REQUESTED_KEPT", 50)
    _, _, relay = _process("postgresql://unused")  # never started: requests stay in its outbox
    for number in range(120):
        relay._ask_history(f"CA-{number}")
    relay._ask_history("CA-119")  # asked once only
    assert relay.counts["history_requests"] == 120
    assert list(relay._requested) == [f"CA-{n}" for n in range(70, 120)]
