"""The event hub: ordered delivery, replay after reconnect, isolation of slow subscribers."""

from __future__ import annotations

import asyncio
import time

import pytest

from voice.server import hub as hub_module
from voice.server.hub import EventHub

pytestmark = pytest.mark.unit


def test_replay_since_a_sequence_number_then_follow_live() -> None:
    async def scenario() -> list[int]:
        hub = EventHub()
        for i in range(3):
            hub.publish("c1", {"type": "transcript.final", "n": i})
        seen: list[int] = []

        async def reader() -> None:
            async for event in hub.subscribe("c1", since=1):
                seen.append(event["seq"])

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        hub.publish("c1", {"type": "transcript.final", "n": 3})
        hub.close_call("c1")
        await asyncio.wait_for(task, 1)
        return seen

    assert asyncio.run(scenario()) == [2, 3, 4]


def test_events_carry_seq_and_emitted_at_and_stay_per_call() -> None:
    hub = EventHub()
    a = hub.publish("a", {"type": "x"})
    b = hub.publish("b", {"type": "x"})
    assert a["seq"] == b["seq"] == 1 and a["call_id"] == "a" and a["emitted_at"] > 0
    assert [e["call_id"] for e in hub.history("a")] == ["a"]


def test_a_slow_subscriber_is_dropped_without_blocking_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "SUBSCRIBER_QUEUE", 2)

    async def scenario() -> tuple[list[int], int]:
        hub = EventHub()
        stream = hub.subscribe("c", 0)
        first = await anext_with_publish(hub, stream)
        for _ in range(5):  # the subscriber does not read: its queue fills and it is dropped
            hub.publish("c", {"type": "x"})
        rest = [e["seq"] async for e in stream]
        return [first] + rest, len(hub.history("c"))

    async def anext_with_publish(hub: EventHub, stream) -> int:  # noqa: ANN001
        task = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)
        hub.publish("c", {"type": "x"})
        return (await task)["seq"]

    seen, total = asyncio.run(scenario())
    assert total == 6  # the call's history is complete for a replay
    assert seen[0] == 1 and len(seen) < 6  # the slow reader got what fit, then its stream ended


def test_relayed_events_back_fill_in_order_without_streaming_old_ones() -> None:
    """A call joined midway: live events first (seq 7, 8), then the back-filled history."""

    async def scenario() -> tuple[list[int], list[str]]:
        hub = EventHub()
        streamed: list[int] = []
        placed = [hub.ingest("c", {"type": "x", "seq": 7})]

        async def reader() -> None:
            async for event in hub.subscribe("c", since=7):
                streamed.append(event["seq"])

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        for seq in (8, 1, 3, 7, 8, 9):
            placed.append(hub.ingest("c", {"type": "x", "seq": seq}))
        await asyncio.sleep(0)
        task.cancel()
        return streamed, placed

    streamed, placed = asyncio.run(scenario())
    assert streamed == [8, 9]  # back-filled ones are for replay, not pushed to live readers
    assert placed == ["latest", "latest", "backfill", "backfill", "held", "held", "latest"]


def test_replay_after_a_sequence_number_with_gaps() -> None:
    hub = EventHub()
    for seq in (4, 5, 1, 2):  # relayed: live from 4, then back-filled 1-2 (3 was a partial)
        hub.ingest("c", {"type": "x", "seq": seq})
    assert hub.first_seq("c") == 1 and hub.first_seq("unknown") is None
    assert [e["seq"] for e in hub.history("c")] == [1, 2, 4, 5]
    assert [e["seq"] for e in hub.history("c", since=2)] == [4, 5]
    assert [e["seq"] for e in hub.history("c", since=3)] == [4, 5]
    assert [e["seq"] for e in hub.history("c", since=5)] == []


def test_a_stream_opened_while_history_is_back_filled_waits_for_it() -> None:
    """A relayed call heard of midway (seq 5): a stream opened before its history arrives
    replays it from the start once it is complete; with no answer it waits a bounded time."""

    async def scenario() -> tuple[list[int], list[int], float]:
        hub = EventHub()
        hub.expect_backfill("c")
        hub.ingest("c", {"type": "x", "seq": 5})
        screen: list[int] = []

        async def reader() -> None:
            async for event in hub.subscribe("c"):
                screen.append(event["seq"])

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.01)
        assert screen == []  # waiting for the history, not streaming from the middle
        for seq in (1, 2, 4):
            hub.ingest("c", {"type": "x", "seq": seq})
        hub.backfill_done("c")
        hub.ingest("c", {"type": "x", "seq": 6})
        await asyncio.sleep(0.01)
        task.cancel()

        unanswered = EventHub()
        unanswered.expect_backfill("gone", wait=0.2)
        unanswered.ingest("gone", {"type": "x", "seq": 3})
        unanswered.close_call("gone")
        started = time.monotonic()
        replayed = [event["seq"] async for event in unanswered.subscribe("gone")]
        return screen, replayed, time.monotonic() - started

    screen, replayed, waited = asyncio.run(asyncio.wait_for(scenario(), 10))  # no hang
    assert screen == [1, 2, 4, 5, 6]
    # It waited for the history, for its own 0.2 s rather than the 2 s default: the bound halfway
    # between tells them apart and leaves 0.8 s for a loaded core.
    assert replayed == [3] and 0.15 <= waited < hub_module.BACKFILL_WAIT / 2


def test_an_ended_calls_history_keeps_everything_but_its_partials() -> None:
    hub = EventHub()
    kinds = ["call.started", "transcript.partial", "transcript.partial", "transcript.final", "nlu",
             "transcript.partial", "transcript.final", "suggestion", "call.ended"]
    for kind in kinds:
        hub.publish("CA-1", {"type": kind})
    assert [e["type"] for e in hub.history("CA-1")] == kinds  # a live call replays everything
    hub.close_call("CA-1")
    kept = hub.history("CA-1")
    assert [e["type"] for e in kept] == [k for k in kinds if k != "transcript.partial"]
    assert [e["seq"] for e in kept] == [1, 4, 5, 7, 8, 9]  # resuming after seq 5 still works
    assert [e["seq"] for e in hub.history("CA-1", since=5)] == [7, 8, 9]
    assert hub.publish("CA-1", {"type": "late"})["seq"] == 10  # not len(history) + 1, a repeat of 7


def test_a_live_call_keeps_only_each_legs_newest_partial() -> None:
    """An hour of partials (two a second per leg) was held, and replayed to every screen opened
    mid-call; a leg's partial or final supersedes the leg's previous partial."""

    async def scenario() -> tuple[list[tuple[str, str, int]], list[int], list[int]]:
        hub = EventHub()
        hub.publish("CA-1", {"type": "call.started"})
        for second in range(600):
            for leg in ("inbound", "outbound"):
                hub.publish("CA-1", {"type": "transcript.partial", "leg": leg, "n": second})
        hub.publish("CA-1", {"type": "transcript.final", "leg": "inbound", "n": 600})
        hub.publish("CA-1", {"type": "nlu"})
        hub.publish("CA-1", {"type": "transcript.partial", "leg": "inbound", "n": 601})
        opened_midway = [event async for event in _first(hub.subscribe("CA-1"), 5)]
        replayed = [(e["type"], e.get("leg", ""), e.get("n", -1)) for e in opened_midway]
        return replayed, [e["seq"] for e in opened_midway], [e["seq"] for e in hub.history("CA-1", since=1202)]

    replayed, seqs, after = asyncio.run(scenario())
    assert replayed == [("call.started", "", -1), ("transcript.partial", "outbound", 599),
                        ("transcript.final", "inbound", 600), ("nlu", "", -1),
                        ("transcript.partial", "inbound", 601)]
    assert seqs == [1, 1201, 1202, 1203, 1204] and after == [1203, 1204]


async def _first(stream, count: int):  # noqa: ANN001, ANN202
    async for event in stream:
        yield event
        count -= 1
        if count == 0:
            return


def test_a_back_filled_partial_its_leg_has_moved_past_stays_out() -> None:
    hub = EventHub()
    for seq, event in ((1, {"type": "call.started"}), (3, {"type": "transcript.partial", "leg": "a"}),
                       (5, {"type": "transcript.final", "leg": "a"})):
        hub.ingest("CA-1", {**event, "seq": seq, "call_id": "CA-1"})
    assert hub.ingest("CA-1", {"type": "transcript.partial", "leg": "a", "seq": 2, "call_id": "CA-1"}) == "held"
    assert hub.ingest("CA-1", {"type": "transcript.partial", "leg": "b", "seq": 4, "call_id": "CA-1"}) == "backfill"
    assert [e["seq"] for e in hub.history("CA-1")] == [1, 4, 5]  # b's partial is its newest
