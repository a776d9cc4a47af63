"""Call events shared by several server processes through PostgreSQL LISTEN/NOTIFY.

Why: one GPU serves 200+ calls only as several server processes (docs/results/gpu.md: 12
processes under MPS; one process is bound by its own Python at about 56 calls), and each process
knows only the calls it carries. With the relay on (``voice serve --event-relay``, a PostgreSQL
``--db`` shared by the processes), every process publishes its calls' events on one channel and
takes in everyone else's, so any process lists every call (``GET /api/calls``), streams any
call's events to the agent console and supervisors, and checks feedback against any call's
suggestions. PostgreSQL is already the shared store of such a set-up, so no new service is
needed; NOTIFY is delivered in commit order, so a call's events arrive in order.

A notification carries at most 8000 bytes: an event over :data:`MAX_PAYLOAD` travels without its
word timings (``"words_omitted": true``; the text stays), and one still too large is counted and
not relayed. Relayed events keep the ``seq`` and ``emitted_at`` of the process that made them,
and are not counted in this process's ``/metrics`` (each process counts its own calls).

A process that joins while calls are running (a restart, a rolling deploy) first hears of such a
call midway. It then asks, once per call, for the call's history (``{"sync": call_id}``). The
process carrying the call publishes the events it holds, except superseded partial transcripts,
addressed to the asker (``"to"``, which the others skip unparsed), from a back-fill queue that
its sender drains only when no live event waits, and then a closing ``{"synced": call_id}``.
So a late joiner lists the call with its tenant and agent and replays its transcript from the
start (a stream opened on it while the history is on its way waits for the ``synced``, a couple
of seconds at most), and back-fill never holds up a live event.

A call erased through one process (``DELETE /api/calls/{id}``, its retention purge) is announced
as ``{"origin": ..., "erased": call_id}``, on the live queue: every other process drops it from
memory at once (its streams on the call close) and skips whatever of it still arrives (a late
``call.ended``, a back-fill). An announcement lost (the database unreachable for long), and an
erasure by ``voice calls erase``, are caught by each process's own sweep
(``voice.server.retention_api.sweep_erased``) within seconds; no route serves an ended call
whose row is gone meanwhile (``voice.server.auth.call_owner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import uuid
from typing import Any

from sqlalchemy import make_url

from voice.errors import ConfigError
from voice.frames import CallStartedFrame
from voice.server.calls import CallRegistry, drop_erased_call
from voice.server.hub import Event, EventHub

__all__ = ["MAX_PAYLOAD", "RELAY_CHANNEL", "EventRelay", "relay_conninfo"]

log = logging.getLogger(__name__)

RELAY_CHANNEL = "nextline_events"
MAX_PAYLOAD = 7900
"""Bytes of one notification at most (PostgreSQL's limit is 8000, less some headroom)."""
_WORD_LISTS = ("words", "committed", "tentative")
_NOT_BACKFILLED = frozenset({"transcript.partial"})
"""Event types a back-fill leaves out: each partial is superseded by the next and by the final."""
BACKFILL_QUEUE = 50_000
"""Back-fill notifications waiting at most; beyond it a history request is answered in part."""
_WAKE = ""
"""Put on the live queue to wake the sender for back-fill (never sent)."""


def relay_conninfo(database_url: str) -> str:
    """A psycopg connection string for the server's SQLAlchemy ``database_url``.

    Raises:
        ConfigError: the database is not PostgreSQL.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError("the event relay needs a PostgreSQL database shared by the server processes",
                          hint="give every process the same --db postgresql+psycopg://...")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


REQUESTED_KEPT = 10_000
"""Calls whose history request is remembered; an older call asked about again is asked again."""


class EventRelay:
    """Publishes this process's call events and delivers the other processes' into the hub."""

    def __init__(self, conninfo: str, hub: EventHub, registry: CallRegistry, *,
                 channel: str = RELAY_CHANNEL) -> None:
        self.conninfo, self.hub, self.registry, self.channel = conninfo, hub, registry, channel
        self.origin = uuid.uuid4().hex[:12]
        """This process's id in the notifications (its own come back and are skipped)."""
        self._addressed_here = f'{{"to":"{self.origin}"'
        self.counts = {"sent": 0, "received": 0, "words_omitted": 0, "too_large": 0, "malformed": 0,
                       "dropped": 0, "history_requests": 0, "backfilled": 0, "histories_received": 0,
                       "erasures_sent": 0, "erasures_received": 0}
        self._outbox: queue.Queue[str | None] = queue.Queue(10_000)
        self._backfill: queue.Queue[str] = queue.Queue(BACKFILL_QUEUE)
        self._carried: set[str] = set()
        """Calls this process carries (publishes) and that have not ended: it answers for them."""
        self._requested: dict[str, None] = {}
        """Calls whose history this process asked for (once each), oldest first, at most
        :data:`REQUESTED_KEPT` (one entry per call of every process would grow for good)."""
        self._erased: dict[str, None] = {}
        """Calls another process erased, the latest :data:`REQUESTED_KEPT`: their events are skipped."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.listening = threading.Event()
        """Set once LISTEN is in place (events published after that reach this process)."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the sender and listener threads; relayed events are delivered on ``loop``."""
        self._loop = loop
        self.hub.observers.append(self.offer)
        self.hub.erasure_observers.append(self.announce_erasure)
        for name, target in (("relay-send", self._send), ("relay-listen", self._listen)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        """Stop both threads (events still queued are sent first)."""
        if self.offer in self.hub.observers:
            self.hub.observers.remove(self.offer)
        if self.announce_erasure in self.hub.erasure_observers:
            self.hub.erasure_observers.remove(self.announce_erasure)
        self._stop.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    # --- this process's events --------------------------------------------------------------

    def offer(self, event: Event) -> None:
        """Hub observer: queue one of this process's events (never blocks the call)."""
        call_id = event.get("call_id")
        if event.get("type") == "call.ended":
            self._carried.discard(call_id)  # type: ignore[arg-type]
        elif isinstance(call_id, str):
            self._carried.add(call_id)
        payload = self._payload(event)
        if payload is None:
            return
        try:
            self._outbox.put_nowait(payload)
        except queue.Full:  # the database is unreachable for long: calls go on, events are dropped
            self.counts["dropped"] += 1

    def announce_erasure(self, call_id: str) -> None:
        """Hub erasure observer: this process erased ``call_id``; the others are to forget it."""
        message = json.dumps({"origin": self.origin, "erased": call_id}, separators=(",", ":"))
        try:
            self._outbox.put_nowait(message)
        except queue.Full:  # each process's sweep still forgets it, a few seconds later
            self.counts["dropped"] += 1
            return
        self.counts["erasures_sent"] += 1

    def _payload(self, event: Event, to: str | None = None) -> str | None:
        """The notification for ``event``: without word lists when too large; None if still so.

        ``to``: the one process a back-fill is for, written first so that the others can skip
        it without parsing it.
        """
        head = {"to": to} if to else {}
        payload = json.dumps(head | {"origin": self.origin, "event": event}, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD:
            slim = {k: v for k, v in event.items() if k not in _WORD_LISTS} | {"words_omitted": True}
            payload = json.dumps(head | {"origin": self.origin, "event": slim}, separators=(",", ":"))
            self.counts["words_omitted"] += 1
            if len(payload.encode()) > MAX_PAYLOAD:
                self.counts["too_large"] += 1
                log.warning("event %s of call %s too large to relay", event.get("type"), event.get("call_id"))
                return None
        return payload

    def _send(self) -> None:
        import psycopg

        while not self._stop.is_set() or not self._outbox.empty():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as connection:
                    while (payload := self._next_payload()) is not None:
                        if payload:
                            connection.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
                            self.counts["sent"] += 1
                    return
            except psycopg.Error as exc:  # reconnect; the payload in hand is lost, later ones are not
                if self._stop.is_set():  # closing with the database gone: nothing left to do
                    return
                log.warning("event relay: cannot publish (%s); retrying", exc)
                self._stop.wait(1.0)

    def _next_payload(self) -> str | None:
        """A live payload first; back-fill only when no live one waits; None: closing."""
        if not self._backfill.empty():
            try:
                return self._outbox.get_nowait()
            except queue.Empty:
                try:
                    return self._backfill.get_nowait()
                except queue.Empty:
                    pass
        return self._outbox.get()

    def _answer_history(self, call_id: str, requester: str) -> None:
        """Another process asked for a call's history (on the event loop): back-fill it if ours."""
        if call_id not in self._carried:
            return
        for event in self.hub.history(call_id):
            if event["type"] in _NOT_BACKFILLED or (payload := self._payload(event, requester)) is None:
                continue
            try:
                self._backfill.put_nowait(payload)
            except queue.Full:
                self.counts["dropped"] += 1
                break
            self.counts["backfilled"] += 1
        done = json.dumps({"to": requester, "origin": self.origin, "synced": call_id}, separators=(",", ":"))
        with contextlib.suppress(queue.Full):  # the asker's streams then wait out BACKFILL_WAIT
            self._backfill.put_nowait(done)
        with contextlib.suppress(queue.Full):  # a full live queue keeps the sender busy anyway
            self._outbox.put_nowait(_WAKE)

    def _ask_history(self, call_id: str) -> None:
        """Ask the process carrying ``call_id`` for its history (once per call)."""
        if call_id in self._requested:
            return
        self._requested[call_id] = None
        if len(self._requested) > REQUESTED_KEPT:  # the oldest: long ended, or asked again at worst
            del self._requested[next(iter(self._requested))]
        self.counts["history_requests"] += 1
        self.hub.expect_backfill(call_id)
        message = json.dumps({"origin": self.origin, "sync": call_id}, separators=(",", ":"))
        try:
            self._outbox.put_nowait(message)
        except queue.Full:
            self.counts["dropped"] += 1

    # --- the other processes' events --------------------------------------------------------

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as connection:
                    connection.execute(f'LISTEN "{self.channel}"')
                    self.listening.set()
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self._received(notice.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("event relay: listener lost its connection (%s); reconnecting", exc)
                self._stop.wait(1.0)

    def _received(self, payload: str) -> None:
        assert self._loop is not None
        if payload.startswith('{"to":"') and not payload.startswith(self._addressed_here):
            return  # a back-fill for another process
        try:
            message = json.loads(payload)
            origin = message["origin"]
            if isinstance(message.get("sync"), str):
                if origin != self.origin:
                    self._loop.call_soon_threadsafe(self._answer_history, message["sync"], origin)
                return
            if isinstance(message.get("erased"), str):
                if origin != self.origin:
                    self.counts["erasures_received"] += 1
                    self._loop.call_soon_threadsafe(self.forget_erased, message["erased"])
                return
            if isinstance(message.get("synced"), str):  # addressed here: the history is complete
                self.counts["histories_received"] += 1
                self._loop.call_soon_threadsafe(self.hub.backfill_done, message["synced"])
                return
            event, call_id = message["event"], message["event"]["call_id"]
        except (ValueError, KeyError, TypeError):
            event = None
        if not isinstance(event, dict) or not {"type", "seq"} <= event.keys():
            self.counts["malformed"] += 1
            return
        if origin == self.origin:
            return
        self.counts["received"] += 1
        self._loop.call_soon_threadsafe(self.deliver, call_id, event)

    def deliver(self, call_id: str, event: Event) -> None:
        """Take in another process's event (on the event loop): subscribers, then the registry.

        The first event of a call that started before this process listened asks for the
        call's history; the back-filled ``call.started`` then registers the call, and the events
        that had arrived live before it are counted into the call's view.
        """
        if call_id in self._erased:
            return  # erased meanwhile: a late event or a back-fill of it is not kept
        kind = event["type"]
        if self.hub.first_seq(call_id) is None and event["seq"] > 1:
            self._ask_history(call_id)
        placed = self.hub.ingest(call_id, event)
        if placed == "held":
            return  # a back-fill of what this process already had
        if kind == "call.started" and self.registry.get(call_id) is None:
            self.registry.started(_started_frame(call_id, event))
            for live in self.hub.history(call_id, since=event["seq"]) if placed == "backfill" else ():
                self.registry.observe(call_id, live)
        self.registry.observe(call_id, event, latest=placed == "latest")
        if kind == "call.ended":
            self.registry.ended(call_id, str(event.get("reason") or "ended"))
            self.hub.close_call(call_id)

    def forget_erased(self, call_id: str) -> None:
        """Another process erased ``call_id`` (on the event loop): drop it from memory, closing
        the streams still open on it, and skip whatever of it still arrives. A call this process
        carries is left alone: it is in progress here, and erasure refuses calls in progress."""
        if call_id in self._carried:
            return
        self._erased[call_id] = None
        if len(self._erased) > REQUESTED_KEPT:
            del self._erased[next(iter(self._erased))]
        drop_erased_call(self.hub, self.registry, call_id)


def _started_frame(call_id: str, event: dict[str, Any]) -> CallStartedFrame:
    return CallStartedFrame(call_id=call_id, tenant=str(event.get("tenant") or "default"),
                            agent_id=event.get("agent_id"), legs=dict(event.get("legs") or {}),
                            source=str(event.get("source") or "unknown"), metadata={"relayed": True})
