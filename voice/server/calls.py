"""Active and recent calls as the server sees them (what GET /api/calls and supervisors show)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from voice.frames import CallStartedFrame


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

    def get(self, call_id: str) -> CallState | None:
        """One call's view, if the server has it."""
        return self._calls.get(call_id)

    def list(self, *, agent_id: str | None = None, status: str | None = None) -> list[CallState]:
        """Calls newest first, optionally only one agent's or one status."""
        calls = reversed(self._calls.values())
        return [c for c in calls if (agent_id is None or c.agent_id == agent_id)
                and (status is None or c.status == status)]
