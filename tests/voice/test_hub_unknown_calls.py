"""Streams of calls the hub does not hold end instead of hanging, and leave nothing behind;
``since`` below zero replays from the start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.server.harness import ServerThread, make_services, new_app, scripted
from tests.voice.console_app import console_env
from voice.server import hub as hub_module
from voice.server.hub import EventHub

pytestmark = pytest.mark.unit


def test_a_stream_of_an_unknown_call_ends_empty_and_makes_no_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "UNKNOWN_CALL_WAIT", 0.1, raising=False)
    hub = EventHub()

    async def scenario() -> list[list[int]]:
        return [[e["seq"] async for e in hub.subscribe(f"gone-{i}")] for i in range(3)]

    # Used to wait forever. The 5 s bound also shows the lowered wait is the one used: three
    # streams at the 2 s default would take 6 s.
    streams = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert streams == [[], [], []]
    assert not any(hub.knows(f"gone-{i}") for i in range(3))


def test_unknown_call_streams_leave_the_hub_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "UNKNOWN_CALL_WAIT", 0.05, raising=False)
    hub = EventHub()

    async def scenario() -> None:
        for i in range(20):
            await asyncio.wait_for(anext(hub.subscribe(f"old-{i}"), None), 2)

    asyncio.run(scenario())
    assert not any(hub.knows(f"old-{i}") for i in range(20)) and not hub._arrivals


def test_a_stream_opened_just_before_the_call_starts_follows_it() -> None:
    async def scenario() -> list[int]:
        hub = EventHub()
        seen: list[int] = []

        async def screen() -> None:
            async for event in hub.subscribe("c1"):
                seen.append(event["seq"])

        task = asyncio.create_task(screen())
        await asyncio.sleep(0.05)
        hub.publish("c1", {"type": "call.started"})
        hub.publish("c1", {"type": "call.ended"})
        hub.close_call("c1")
        await asyncio.wait_for(task, 2)
        return seen

    assert asyncio.run(scenario()) == [1, 2]


@pytest.mark.parametrize("since", [-1, -3, -100])
def test_a_negative_since_replays_from_the_start(since: int) -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        hub = EventHub()
        for _ in range(4):
            hub.publish("c", {"type": "x"})
        hub.close_call("c")
        streamed = [e["seq"] async for e in hub.subscribe("c", since)]
        return streamed, [e["seq"] for e in hub.history("c", since)]

    assert asyncio.run(scenario()) == ([1, 2, 3, 4], [1, 2, 3, 4])


def test_sse_of_an_ended_call_after_a_restart_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "UNKNOWN_CALL_WAIT", 0.2, raising=False)
    with console_env(tmp_path) as env:
        scripted(env, "CA-old", "alice", end=True)
        tokens = env.tokens
    services = make_services(tmp_path)  # a restarted server: same database, empty hub
    with ServerThread(new_app(services)) as server:
        headers = {"Authorization": f"Bearer {tokens['alice']}"}
        for _ in range(2):
            with httpx.stream("GET", f"{server.url}/api/calls/CA-old/events", headers=headers,
                              timeout=httpx.Timeout(5.0, read=3.0)) as response:
                assert response.status_code == 200
                assert [line for line in response.iter_lines() if line.strip()] == []  # ended, not hanging
        assert not services.hub.knows("CA-old")


def test_sse_with_a_negative_since_replays_the_whole_call(tmp_path: Path) -> None:
    with console_env(tmp_path) as env:
        scripted(env, "CA-1", "alice", end=True)
        response = env.client.get("/api/calls/CA-1/events?since=-1", headers=env.headers("alice"))
        ids = [int(line[3:]) for line in response.text.splitlines() if line.startswith("id:")]
        events = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 3
    assert events[0]["type"] == "call.started" and events[-1]["type"] == "call.ended"
