"""``POST /api/calls/{call_id}/feedback``: what the agent did with each suggestion.

The console reports ``shown`` when cards appear and ``accepted`` / ``dismissed`` / ``edited``
when the agent acts. The server trusts the client only for the verb (and the edited text): the
suggestion's text, action, model version and A/B arm are looked up in the call's own event
history, so a client cannot attribute feedback to a suggestion the call never received.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from voice.errors import VoiceError
from voice.server.auth import CurrentAgent, authorize_call
from voice.server.console import console_of
from voice.store.agents import Agent

FeedbackKind = Literal["shown", "accepted", "dismissed", "edited"]


class FeedbackItem(BaseModel):
    """One action on one suggestion."""

    suggestion_id: str = Field(min_length=1, max_length=255)
    kind: FeedbackKind
    text: str | None = Field(default=None, max_length=4000)
    """The agent's edited wording (``edited`` only)."""
    elapsed_ms: float | None = Field(default=None, ge=0, le=3_600_000)
    """Time from the card being shown to this action, measured in the browser."""


class FeedbackIn(BaseModel):
    """Body of the feedback endpoint: up to 50 items (all ``shown`` of one event at once)."""

    items: list[FeedbackItem] = Field(min_length=1, max_length=50)


@dataclass(frozen=True)
class FeedbackRecord:
    """A resolved feedback item; the fields of ``suggest.feedback.FeedbackRecord`` plus the console's."""

    suggestion_id: str
    call_id: str
    event: str
    """shown | accepted | dismissed | edited."""
    text: str
    """The suggestion as shown."""
    action: str
    model_version: str
    arm: str | None
    tenant: str
    agent_id: str
    turn_index: int
    """Number of finished turns the suggestion was computed from."""
    edited_text: str | None
    context: list[dict[str, str]]
    """The call's last few finished turns before the suggestion, as ``{role, text}``."""
    created_at: str
    rank: int
    """Position of the card (0 = top)."""
    elapsed_ms: float | None
    """Card shown -> this action, measured in the browser."""


CONTEXT_TURNS = 6
"""Turns of context kept with each feedback record (what training needs to relabel it)."""


class FeedbackUnavailableError(VoiceError):
    """The feedback storage of the suggestion engine cannot be loaded."""


class UnknownSuggestionError(LookupError):
    """The call never received a suggestion with this id."""


class FeedbackRecorder:
    """Resolves feedback against the call's events and stores it with the suggestion engine's store."""

    def __init__(self, store: Any, hub: Any) -> None:
        self.store = store
        self.hub = hub
        self._sink: Any = None

    def resolve(self, call_id: str, agent: Agent, tenant: str | None, items: list[FeedbackItem]
                ) -> list[FeedbackRecord]:
        """Attach what the server knows of each suggestion.

        Raises:
            UnknownSuggestionError: an id the call's history does not contain.
        """
        history = self.hub.history(call_id)
        known = _suggestions_of(history)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        records = []
        for item in items:
            found = known.get(item.suggestion_id)
            if found is None:
                raise UnknownSuggestionError(item.suggestion_id)
            event, rank, suggestion = found
            turns = _turns_before(history, event)
            records.append(FeedbackRecord(
                suggestion_id=item.suggestion_id, call_id=call_id, event=item.kind,
                text=str(suggestion.get("text", "")), action=str(suggestion.get("action") or ""),
                model_version=str(event.get("model_version") or ""), arm=event.get("arm"),
                tenant=tenant or "default", agent_id=agent.name, turn_index=len(turns),
                edited_text=item.text if item.kind == "edited" else None, context=turns[-CONTEXT_TURNS:],
                created_at=now, rank=rank, elapsed_ms=item.elapsed_ms))
        return records

    def store_records(self, records: list[FeedbackRecord]) -> None:
        """Write the records (blocking: call from a worker thread).

        Raises:
            FeedbackUnavailableError: the suggestion engine's feedback storage is not installed.
        """
        if self._sink is None:
            self._sink = _feedback_sink(self.store)
        self._sink(records)


def _suggestions_of(events: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], int, dict[str, Any]]]:
    found = {}
    for event in events:
        if event.get("type") == "suggestion":
            for rank, suggestion in enumerate(event.get("suggestions") or []):
                if suggestion.get("id"):
                    found[str(suggestion["id"])] = (event, rank, suggestion)
    return found


def _turns_before(history: list[dict[str, Any]], suggestion: dict[str, Any]) -> list[dict[str, str]]:
    """Finished turns published before the suggestion (its own turn included)."""
    return [{"role": str(e.get("role")), "text": str(e.get("text") or "")} for e in history
            if e.get("type") == "transcript.final" and e["seq"] < suggestion["seq"]]


def _feedback_sink(store: Any) -> Any:
    """The suggestion engine's feedback storage (voice.store.feedback), bound to ``store``."""
    try:
        from voice.store.feedback import FeedbackStore  # the suggestion engine's module
    except ImportError as exc:
        raise FeedbackUnavailableError(f"feedback storage is not available: {exc}",
                                       hint="install a nextline that ships voice.store.feedback") from exc
    feedback_store = FeedbackStore(store)

    def sink(records: list[FeedbackRecord]) -> None:
        feedback_store.record_many([asdict(r) for r in records])

    return sink


def create_router() -> APIRouter:
    """The feedback route."""
    router = APIRouter(tags=["feedback"])

    @router.post("/api/calls/{call_id}/feedback", status_code=201)
    async def post_feedback(call_id: str, body: FeedbackIn, request: Request, agent: CurrentAgent
                            ) -> dict[str, Any]:
        """Record shown / accepted / dismissed / edited for suggestions of this call."""
        owner = await authorize_call(request, agent, call_id)
        recorder: FeedbackRecorder = console_of(request).feedback
        try:
            records = recorder.resolve(call_id, agent, owner["tenant"], body.items)
        except UnknownSuggestionError as exc:
            raise HTTPException(404, f"call {call_id!r} has no suggestion {exc.args[0]!r}") from exc
        try:
            await asyncio.to_thread(recorder.store_records, records)
        except FeedbackUnavailableError as exc:
            raise HTTPException(503, str(exc)) from exc
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.observe_feedback([record.event for record in records])
        return {"stored": len(records)}

    return router
