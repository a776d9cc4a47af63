"""What an agent's screen sees of a live call, and the checks every live test applies to it.

A call is found in ``GET /api/calls`` (by a predicate on its listing: source, agent, ingress
ids), then read from the start (``since=0``: nothing is lost however late we subscribe) through
``WS /ws/calls/{id}/events`` or the SSE twin until the server closes the stream at call end.
Afterwards ``GET /api/calls/{id}`` returns the transcript stored in the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect

from asr.wer import normalize, word_errors

Event = dict[str, Any]
CallListing = dict[str, Any]


@dataclass
class CallRecord:
    """A finished call as the API showed it: its events, its stored transcript and turns."""

    call: CallListing
    events: list[Event] = field(default_factory=list)
    transcript: dict[str, Any] | None = None
    stored_turns: list[Any] = field(default_factory=list)

    @property
    def call_id(self) -> str:
        return str(self.call["call_id"])

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["type"] == kind]

    def finals(self, leg: str | None = None) -> list[Event]:
        return [e for e in self.of_type("transcript.final") if leg is None or e["leg"] == leg]

    def text(self, leg: str | None = None) -> str:
        """The final transcripts (of one leg), in event order."""
        return " ".join(e["text"] for e in self.finals(leg)).strip()

    def roles(self, leg: str | None = None) -> set[str]:
        return {e["role"] for e in self.finals(leg) if e["text"].strip()}


class EventClient:
    """The supervisor's view of the server: call listings, event streams, stored transcripts."""

    def __init__(self, host: str, token: str) -> None:
        self.host = host
        self.headers = {"Authorization": f"Bearer {token}"}

    async def find_call(self, match: Callable[[CallListing], bool]) -> CallListing:
        """The newest call in ``GET /api/calls`` that ``match`` accepts (waits for it to appear)."""
        async with httpx.AsyncClient(headers=self.headers, timeout=10) as http:
            while True:
                response = await http.get(f"http://{self.host}/api/calls")
                response.raise_for_status()
                for call in response.json()["calls"]:
                    if match(call):
                        return call
                await asyncio.sleep(0.1)

    async def call_ids(self) -> set[str]:
        """Ids of the calls the server lists now (to tell a new call from earlier ones)."""
        async with httpx.AsyncClient(headers=self.headers, timeout=10) as http:
            response = await http.get(f"http://{self.host}/api/calls")
            response.raise_for_status()
            return {c["call_id"] for c in response.json()["calls"]}

    async def websocket_events(
        self, call_id: str, since: int = 0
    ) -> tuple[list[Event], int | None]:
        """Every event of the call after ``since`` until the server closes (code returned)."""
        url = f"ws://{self.host}/ws/calls/{call_id}/events?since={since}"
        events: list[Event] = []
        async with connect(url, additional_headers=self.headers, max_size=2**24) as ws:
            async for message in ws:
                events.append(json.loads(message))
            return events, ws.close_code

    async def sse_events(self, call_id: str) -> list[Event]:
        """The same stream as Server-Sent Events (``data:`` lines carry the JSON)."""
        events: list[Event] = []
        url = f"http://{self.host}/api/calls/{call_id}/events"
        async with httpx.AsyncClient(headers=self.headers, timeout=None) as http:
            async with http.stream("GET", url) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        events.append(json.loads(line[5:].strip()))
        return events

    async def stored(self, call_id: str) -> dict[str, Any]:
        """``GET /api/calls/{id}``: the live view and the transcript stored at call end."""
        async with httpx.AsyncClient(headers=self.headers, timeout=30) as http:
            response = await http.get(f"http://{self.host}/api/calls/{call_id}")
            response.raise_for_status()
            return response.json()

    async def follow(
        self, match: Callable[[CallListing], bool], *, sse: bool = False, limit: float = 240.0
    ) -> CallRecord:
        """Find the call, read its whole event stream, then its stored transcript (at most
        ``limit`` seconds in all)."""
        async with asyncio.timeout(limit):
            call = await self.find_call(match)
            if sse:
                events = await self.sse_events(call["call_id"])
            else:
                events, code = await self.websocket_events(call["call_id"])
                assert code == 1000, f"event stream closed with {code}"
            stored = await self.stored(call["call_id"])
        return CallRecord(call, events, stored["transcript"])


# --- the checks ---------------------------------------------------------------------------------


def check_event_order(record: CallRecord) -> None:
    """call.started first, call.ended last, seq 1..n, every final after its turn's partials,
    every nlu after its final."""
    events = record.events
    assert events, "no events"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "seq must count up from 1"
    assert events[0]["type"] == "call.started" and events[-1]["type"] == "call.ended"
    assert sum(e["type"] in ("call.started", "call.ended") for e in events) == 2
    assert all(e["call_id"] == record.call_id for e in events)
    final_seq: dict[str, int] = {}
    for event in events:
        if event["type"] == "transcript.final":
            assert event["turn_id"] not in final_seq, f"turn {event['turn_id']} finalised twice"
            final_seq[event["turn_id"]] = event["seq"]
        elif event["type"] in ("nlu", "suggestion"):
            turn = event["turn_id"]
            assert turn in final_seq and final_seq[turn] < event["seq"], (
                f"{event['type']} before final {turn}"
            )
    for final in record.finals():
        later = [
            e
            for e in record.of_type("transcript.partial")
            if e["leg"] == final["leg"] and e["seq"] > final["seq"]
        ]
        stale = [e for e in later if e["audio_time"] <= final["end"] + 1e-3]
        assert not stale, f"partials of turn {final['turn_id']} after its final: {stale[:1]}"
    nlu_turns = [e["turn_id"] for e in record.of_type("nlu")]
    assert sorted(nlu_turns) == sorted(f["turn_id"] for f in record.finals() if f["text"].strip())


def check_stored(record: CallRecord, live_store: Any) -> None:
    """The database holds every final turn as it happened (``live_turns``) and, from call end,
    the transcript (same text, role and order) with the call's tenant, agent and legs."""
    transcript = record.transcript
    assert transcript is not None, "no transcript stored at call end"
    finals = sorted(record.finals(), key=lambda f: (f["start"], f["leg"]))
    segments = transcript["segments"]
    assert [s["text"] for s in segments] == [f["text"] for f in finals]
    assert [s["role"] for s in segments] == [f["role"] for f in finals]
    record.stored_turns = live_store.turns(record.call_id)
    stored = sorted((t.turn_id, t.leg, t.role, t.text) for t in record.stored_turns)
    assert stored == sorted((f["turn_id"], f["leg"], f["role"], f["text"]) for f in finals)
    options = transcript["options"]
    started = record.events[0]
    assert (options["tenant"], options["agent_id"], options["source"]) == (
        started["tenant"],
        started["agent_id"],
        started["source"],
    )
    assert options["legs"] == started["legs"]


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after the project's normalisation (asr/wer.py)."""
    return word_errors(reference, hypothesis).wer


def words_of(text: str) -> set[str]:
    """Normalised word set of a text."""
    return set(normalize(text).split())
