"""In-process publish/subscribe of call events, with per-call history for replay.

Every event of a call gets an increasing ``seq``; a client that reconnects asks for the events
after the last ``seq`` it saw and loses nothing. History is kept for active calls and for the
most recent ended ones (bounded), which is what agent screens and supervisors need; the full
record of a call lives in the database.

Subscribers are asyncio queues; a slow subscriber's queue is bounded and it is dropped (and
must reconnect with ``since``) rather than slowing the call down.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Event = dict[str, Any]
SUBSCRIBER_QUEUE = 1000
"""Events a subscriber may fall behind by before it is dropped (then it reconnects with since)."""
BACKFILL_WAIT = 2.0
"""Seconds a stream opened on a call whose history is being back-filled waits for it, at most."""
UNKNOWN_CALL_WAIT = 2.0
"""Seconds a stream opened on a call the hub does not hold waits for its first event, then ends.

Long enough for a call relayed from another process (or a screen opened as the call starts) to
arrive; an ended call that left the hub (restart, or ``keep_ended_calls`` later calls) gets an
ended stream instead of one that never sends anything."""


@dataclass
class _CallChannel:
    events: list[Event] = field(default_factory=list)
    subscribers: set[_Subscription] = field(default_factory=set)
    closed: bool = False
    backfilled: asyncio.Event | None = None
    """Set while the call's history is on its way (a relayed call joined midway)."""
    backfill_deadline: float = 0.0
    newest_partials: dict[str, int] = field(default_factory=dict)
    """``seq`` of each leg's newest partial transcript, the only one of the leg kept."""


@dataclass
class _Arrival:
    """Streams waiting for the first event of a call the hub does not hold yet."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0


class _Subscription:
    """A subscriber's bounded queue; ``dropped`` once it fell too far behind."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.dropped = False

    async def next(self) -> Event | None:
        """The next event, or ``None`` when the stream ended or this subscriber was dropped."""
        if self.dropped and self.queue.empty():
            return None
        return await self.queue.get()


class EventHub:
    """Fan-out of call events to WebSocket/SSE subscribers, with replay from a sequence number."""

    def __init__(self, keep_ended_calls: int = 200) -> None:
        self._channels: OrderedDict[str, _CallChannel] = OrderedDict()
        self._keep_ended = keep_ended_calls
        self._global: set[_Subscription] = set()
        self._arrivals: dict[str, _Arrival] = {}
        self.observers: list[Callable[[Event], None]] = []
        """Called with every published event (the server's metrics); must neither raise nor block."""
        self.erasure_observers: list[Callable[[str], None]] = []
        """Called with the id of each call this process erased (``voice.server.retention_api``):
        the event relay tells the other processes to forget it. Must neither raise nor block."""

    def publish(self, call_id: str, event: Event) -> Event:
        """Stamp ``seq`` and ``emitted_at`` and deliver to every subscriber of the call."""
        channel = self._channel(call_id)
        # Not len(events) + 1: an ended call's history drops its partials.
        seq = (channel.events[-1]["seq"] if channel.events else 0) + 1
        event = {**event, "call_id": call_id, "seq": seq, "emitted_at": round(time.time(), 4)}
        _keep(channel, event)
        for observe in self.observers:
            observe(event)
        for sub in list(channel.subscribers) + list(self._global):
            self._offer(sub, event, channel.subscribers)
        return event

    def ingest(self, call_id: str, event: Event) -> Literal["latest", "backfill", "held"]:
        """Deliver an event another server process published (``voice.server.relay``): it keeps
        its own ``seq`` and ``emitted_at``, and observers (this process's metrics) skip it.

        An event older than the newest one held is a back-fill of a call joined midway (the
        relay asked its process for the history): it is put in ``seq`` order for replay, and
        not streamed to subscribers, who have moved past it. One already held is skipped.
        Returns which of the three happened.
        """
        channel = self._channel(call_id)
        seq = event["seq"]
        if channel.events and seq <= channel.events[-1]["seq"]:
            at = bisect.bisect_left(channel.events, seq, key=lambda e: e["seq"])
            if channel.events[at]["seq"] == seq or _superseded(event, channel.events[at:]):
                return "held"
            channel.events.insert(at, event)
            return "backfill"
        _keep(channel, event)
        for sub in list(channel.subscribers) + list(self._global):
            self._offer(sub, event, channel.subscribers)
        return "latest"

    def expect_backfill(self, call_id: str, wait: float = BACKFILL_WAIT) -> None:
        """The call's history was asked for: streams opened before :meth:`backfill_done` (or
        ``wait`` seconds) wait for it, so that they replay the call from its start."""
        channel = self._channel(call_id)
        channel.backfilled = asyncio.Event()
        channel.backfill_deadline = time.monotonic() + wait

    def backfill_done(self, call_id: str) -> None:
        """The call's history is all here: streams waiting for it replay now."""
        channel = self._channels.get(call_id)
        if channel is not None and channel.backfilled is not None:
            channel.backfilled.set()
            channel.backfilled = None

    def first_seq(self, call_id: str) -> int | None:
        """``seq`` of the oldest event held for the call (None: none); above 1 means history is
        missing (a relayed call joined midway)."""
        channel = self._channels.get(call_id)
        return channel.events[0]["seq"] if channel is not None and channel.events else None

    def close_call(self, call_id: str) -> None:
        """No more events for this call: end its subscriptions; keep its history (bounded, without
        the partial transcripts)."""
        channel = self._channels.get(call_id)
        if channel is None or channel.closed:
            return
        channel.closed = True
        for sub in list(channel.subscribers):
            self._offer(sub, None, channel.subscribers)
        # An ended call's partials are superseded by its finals: the history kept for replay,
        # feedback and QA holds the rest (partials are most of a call's events, each with words).
        channel.events = [e for e in channel.events if e.get("type") != "transcript.partial"]
        channel.newest_partials.clear()
        self._channels.move_to_end(call_id)
        ended = [cid for cid, ch in self._channels.items() if ch.closed]
        for cid in ended[: max(0, len(ended) - self._keep_ended)]:
            del self._channels[cid]

    def forget(self, call_id: str) -> None:
        """Drop an ended call's history (its data was erased); subscribers of an active call stay."""
        channel = self._channels.get(call_id)
        if channel is not None and channel.closed:
            del self._channels[call_id]

    def history(self, call_id: str, since: int = 0) -> list[Event]:
        """Events of a call with ``seq > since``."""
        channel = self._channels.get(call_id)
        return [] if channel is None else _after(channel.events, since)

    def knows(self, call_id: str) -> bool:
        """Whether the hub has (or had recently) this call."""
        return call_id in self._channels

    async def subscribe(self, call_id: str, since: int = 0) -> AsyncIterator[Event]:
        """Replay events after ``since`` (a negative one: from the start), then follow live ones
        until the call ends.

        A call whose history is being back-filled is replayed once that is done (bounded wait).
        A call the hub does not hold gets :data:`UNKNOWN_CALL_WAIT` seconds to appear, else the
        stream ends, empty; no channel is made for it (a stream per unknown id must not
        leave memory behind).
        """
        channel = self._channels.get(call_id) or await self._arrival_of(call_id)
        if channel is None:
            return
        if (backfilled := channel.backfilled) is not None:
            with contextlib.suppress(TimeoutError):  # the carrier never answered: replay what is here
                await asyncio.wait_for(backfilled.wait(), max(0.0, channel.backfill_deadline - time.monotonic()))
        sub = _Subscription()
        replay = _after(channel.events, since)
        closed = channel.closed
        channel.subscribers.add(sub)
        try:
            for event in replay:
                yield event
            if closed:
                return
            last = replay[-1]["seq"] if replay else since
            while True:
                following = await sub.next()
                if following is None:
                    return
                if following["seq"] > last:
                    last = following["seq"]
                    yield following
        finally:
            channel.subscribers.discard(sub)

    async def subscribe_all(self) -> AsyncIterator[Event]:
        """Every event of every call from now on (supervisor view)."""
        sub = _Subscription()
        self._global.add(sub)
        try:
            while (event := await sub.next()) is not None:
                yield event
        finally:
            self._global.discard(sub)

    def _channel(self, call_id: str) -> _CallChannel:
        """The call's channel, made on its first event; wakes streams waiting for the call."""
        channel = self._channels.get(call_id)
        if channel is None:
            channel = self._channels[call_id] = _CallChannel()
            if (arrival := self._arrivals.get(call_id)) is not None:
                arrival.event.set()
        return channel

    async def _arrival_of(self, call_id: str) -> _CallChannel | None:
        """Wait (bounded) for an unknown call's first event; its channel, or None if none came."""
        arrival = self._arrivals.setdefault(call_id, _Arrival())
        arrival.waiters += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrival.event.wait(), UNKNOWN_CALL_WAIT)
        finally:
            arrival.waiters -= 1
            if arrival.waiters == 0 and self._arrivals.get(call_id) is arrival:
                del self._arrivals[call_id]
        return self._channels.get(call_id)

    def _offer(self, sub: _Subscription, event: Event | None, owners: set[_Subscription]) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:  # too slow: drop it; it reconnects with `since` and replays
            sub.dropped = True
            owners.discard(sub)
            self._global.discard(sub)


def _keep(channel: _CallChannel, event: Event) -> None:
    """Append ``event`` to the call's history; a leg's partial or final drops the leg's previous
    partial, which it supersedes. An hour of partials (two a second per leg) held 57 MB per call,
    and every screen opened mid-call replayed them all."""
    kind, leg = event.get("type"), event.get("leg")
    if kind in ("transcript.partial", "transcript.final") and isinstance(leg, str):
        superseded = channel.newest_partials.pop(leg, None)
        if superseded is not None:
            at = bisect.bisect_left(channel.events, superseded, key=lambda e: e["seq"])
            if at < len(channel.events) and channel.events[at]["seq"] == superseded:
                del channel.events[at]
        if kind == "transcript.partial":
            channel.newest_partials[leg] = event["seq"]
    channel.events.append(event)


def _superseded(event: Event, later: list[Event]) -> bool:
    """A partial transcript followed by a partial or final of its leg (see :func:`_keep`)."""
    return event.get("type") == "transcript.partial" and any(
        e.get("leg") == event.get("leg") and e.get("type") in ("transcript.partial", "transcript.final")
        for e in later)


def _after(events: list[Event], since: int) -> list[Event]:
    """Events with ``seq > since``: a local call's ``seq`` is its index + 1; a relayed call's
    history may start later or have gaps (partials are not back-filled)."""
    since = max(since, 0)  # events[-n:] would replay only the last n: a negative since means all
    if not events or events[-1]["seq"] == len(events):
        return events[since:]
    return events[bisect.bisect_right(events, since, key=lambda e: e["seq"]) :]
