"""Active and recent calls as the server sees them (what GET /api/calls and supervisors show).

An erased call must leave memory too, whoever erased it (this process, another one, ``voice
calls erase``): :func:`drop_erased_call` drops it from the registry and the event hub, and
:meth:`CallState.row_expected` says when a missing database row means the call was erased.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from voice.frames import CallStartedFrame

if TYPE_CHECKING:
    from voice.server.hub import EventHub

RELAYED_ROW_GRACE = 30.0
"""Seconds after a relayed call (another process carries it, ``voice.server.relay``) started here
before a missing database row counts as an erasure. Its carrier writes the row on a worker thread
as the call starts (again before each turn write after a failed first write, and at the latest
with the transcript, after ``call.ended``): a row missing that early may be on its way."""


@dataclass
class CallState:
    """The live view of one call."""

    call_id: str
    tenant: str
    agent_id: str | None
    source: str
    legs: dict[str, str]
    started_at: float
    status: str = "active"
    ended_at: float | None = None
    end_reason: str | None = None
    audio_time: float = 0.0
    turns: int = 0
    last_intent: str | None = None
    last_suggestion: str | None = None
    last_suggestion_latency_ms: float | None = None
    last_text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

    def row_expected(self, now: float | None = None) -> bool:
        """Whether the call's database row must exist, so that its absence means an erasure.

        A call this process carries: once it ended (the recorder stores it before marking it
        ended); while it runs, its row may not be written yet, and nobody may erase it. A relayed
        call: :data:`RELAYED_ROW_GRACE` after it started here, ended or not (its carrier may
        have died without ``call.ended``, and the orphaned call been erased since).
        """
        if not self.metadata.get("relayed"):
            return self.status == "ended"
        return (time.time() if now is None else now) - self.started_at >= RELAYED_ROW_GRACE


class CallRegistry:
    """Calls in progress plus the last ``keep`` ended ones, updated from the call's events."""

    def __init__(self, keep: int = 500) -> None:
        self._calls: OrderedDict[str, CallState] = OrderedDict()
        self._keep = keep

    def started(self, frame: CallStartedFrame) -> None:
        """Register a new call."""
        self._calls[frame.call_id] = CallState(frame.call_id, frame.tenant, frame.agent_id, frame.source,
                                               dict(frame.legs), time.time(), metadata=dict(frame.metadata))

    def observe(self, call_id: str, event: dict[str, Any], *, latest: bool = True) -> None:
        """Update the call's view from one of its events; ``latest=False`` (an older event
        back-filled by the relay) counts it without replacing the newer "last" fields."""
        state = self._calls.get(call_id)
        if state is None:
            return
        if event.get("audio_time") is not None:
            state.audio_time = max(state.audio_time, float(event["audio_time"]))
        kind = event["type"]
        if kind == "transcript.final":
            state.turns += 1
        if not latest:
            return
        if kind == "transcript.final":
            state.last_text = f"{event.get('role')}: {event.get('text')}"
        elif kind == "nlu" and event.get("role") == "customer" and event.get("intent"):
            state.last_intent = event["intent"]
        elif kind == "suggestion" and event.get("suggestions"):
            state.last_suggestion = event["suggestions"][0].get("text")
            state.last_suggestion_latency_ms = (event.get("latency_ms") or {}).get("total")

    def ended(self, call_id: str, reason: str) -> None:
        """Mark a call ended and forget the oldest ended calls beyond ``keep``."""
        state = self._calls.get(call_id)
        if state is not None:
            state.status, state.ended_at, state.end_reason = "ended", time.time(), reason
        ended = [cid for cid, s in self._calls.items() if s.status == "ended"]
        for cid in ended[: max(0, len(ended) - self._keep)]:
            del self._calls[cid]

    def forget(self, call_id: str) -> None:
        """Drop an ended call (its data was erased); an active call stays."""
        state = self._calls.get(call_id)
        if state is not None and state.status == "ended":
            del self._calls[call_id]

    def expected_rows(self, now: float | None = None) -> list[str]:
        """Ids of the calls whose database row must exist (:meth:`CallState.row_expected`)."""
        return [cid for cid, state in self._calls.items() if state.row_expected(now)]

    def get(self, call_id: str) -> CallState | None:
        """One call's view, if the server has it."""
        return self._calls.get(call_id)

    def list(self, *, agent_id: str | None = None, status: str | None = None) -> list[CallState]:
        """Calls newest first, optionally only one agent's or one status."""
        calls = reversed(self._calls.values())
        return [c for c in calls if (agent_id is None or c.agent_id == agent_id)
                and (status is None or c.status == status)]


def drop_erased_call(hub: EventHub, registry: CallRegistry, call_id: str) -> None:
    """Forget a call whose data was erased (on the event loop: neither is thread-safe).

    A call still shown in progress here (a relayed call whose ``call.ended`` has not arrived,
    or whose carrier died without one) is ended first: its streams close, and nothing of it
    stays in the recent-call list or the replay history.
    """
    state = registry.get(call_id)
    if state is not None and state.status != "ended":
        registry.ended(call_id, "erased")
    hub.close_call(call_id)
    hub.forget(call_id)
    registry.forget(call_id)
