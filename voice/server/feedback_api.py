"""``POST /api/calls/{call_id}/feedback``: what the agent did with each suggestion.

The console reports ``shown`` when cards appear and ``accepted`` / ``dismissed`` / ``edited`` when
the agent acts; a suggestion's ``shown`` is stored once, whichever tab or device reports it, and so
is the agent's first action on it (a later one, from another tab or a reloaded page, is answered as
a duplicate and not stored). The server trusts the client only for the verb (and the edited text):
the suggestion's text, action, model version and A/B arm are looked up in the call's own event
history, so a client cannot attribute feedback to a suggestion the call never received. Once the
call has left the hub's history (a restart, or ``keep_ended_calls`` later calls), what the
database holds of the suggestion stands in: earlier feedback on it, which was checked against the
history when it came (the console reports ``shown`` for every card it displays). So a late
``accepted`` / ``dismissed`` is kept, and an id the call never had is still refused.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field, field_validator, model_validator

from voice.errors import VoiceError
from voice.server.auth import CALL_RESPONSES, CurrentAgent, ErrorOut, authorize_call
from voice.server.console import console_of
from voice.store.agents import Agent
from voice.store.feedback import ACTION_EVENTS

FeedbackKind = Literal["shown", "accepted", "dismissed", "edited"]

MAX_ELAPSED_MS = 3_600_000.0
"""Card shown -> action times above an hour are stored as an hour (a card left up over lunch)."""


class FeedbackItem(BaseModel):
    """One action on one suggestion."""

    suggestion_id: str = Field(min_length=1, max_length=255)
    kind: FeedbackKind
    text: str | None = Field(default=None, max_length=4000)
    """The agent's edited wording (``edited`` only)."""
    elapsed_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False, description=(
        "Milliseconds from the card being shown to this action, measured in the browser; "
        "more than an hour is stored as an hour (3600000)."))
    """Time from the card being shown to this action, measured in the browser (at most an hour)."""

    @field_validator("elapsed_ms")
    @classmethod
    def _at_most_an_hour(cls, value: float | None) -> float | None:
        # A card acted on after an hour on screen is still an action: keep it, capped.
        return None if value is None else min(value, MAX_ELAPSED_MS)

    @model_validator(mode="after")
    def _an_edit_has_its_wording(self) -> FeedbackItem:
        # Stored without it, training counted the wording shown as the agent's own: a positive.
        if self.kind == "edited" and (self.text is None or not self.text.strip()):
            raise ValueError("an 'edited' item needs the edited wording in 'text' (not blank)")
        return self


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
    """The call's last few finished agent/customer turns before the suggestion, as ``{role, text}``
    (a mixed leg's turns from before its roles were decided are left out)."""
    created_at: str
    rank: int
    """Position of the card (0 = top)."""
    elapsed_ms: float | None
    """Card shown -> this action, measured in the browser."""


CONTEXT_TURNS = 6
"""Turns of context kept with each feedback record (what training needs to relabel it)."""

CONTEXT_ROLES = ("agent", "customer")
"""Roles of the turns kept as context (``suggest.types.ROLES``): not a mixed leg's ``unknown``."""


class FeedbackUnavailableError(VoiceError):
    """The feedback storage of the suggestion engine cannot be loaded."""


class UnknownSuggestionError(LookupError):
    """The call never received a suggestion with this id."""


@dataclass(frozen=True)
class _Suggestion:
    """What the server knows of a suggestion the call received (from its events or the database)."""

    text: str
    action: str
    model_version: str
    arm: str | None
    turn_index: int
    context: list[dict[str, str]]
    rank: int


SHOWN_LOCK_STRIPES = 64


class FeedbackRecorder:
    """Resolves feedback against the call's events and stores it with the suggestion engine's store."""

    def __init__(self, store: Any, hub: Any) -> None:
        self.store = store
        self.hub = hub
        self._feedback: Any = None
        self._shown_locks = [threading.Lock() for _ in range(SHOWN_LOCK_STRIPES)]
        """Serialise the check-then-insert of a call's ``shown`` and actions (two tabs posting at
        once would both see "not stored yet"); the hub, and so every call's feedback, lives in this process.
        One lock per call id's stripe: other calls' posts do not wait behind a slow query."""

    def resolve(self, call_id: str, agent: Agent, tenant: str | None, items: list[FeedbackItem]
                ) -> list[FeedbackRecord]:
        """Attach what the hub's history of the call says of each suggestion (on the event loop).

        Raises:
            UnknownSuggestionError: an id the call's history does not contain.
        """
        return _records(call_id, agent, tenant, items, _suggestions_of(self.hub.history(call_id)))

    async def resolve_with_stored(self, call_id: str, agent: Agent, tenant: str | None,
                                  items: list[FeedbackItem]) -> list[FeedbackRecord]:
        """Like :meth:`resolve`, but ids the history lacks (the call left the hub) are looked up in
        the feedback stored for this call and tenant, on a worker thread.

        Raises:
            UnknownSuggestionError: an id neither the history nor the call's stored feedback holds
                (stored feedback of another tenant does not count).
            FeedbackUnavailableError: the history lacks an id and the feedback storage is missing.
        """
        known = _suggestions_of(self.hub.history(call_id))
        missing = {item.suggestion_id for item in items} - known.keys()
        if missing:
            known.update(await asyncio.to_thread(self._stored, call_id, tenant or "default", missing))
        return _records(call_id, agent, tenant, items, known)

    def store_records(self, records: list[FeedbackRecord]) -> list[FeedbackRecord]:
        """Write the records of one call, but a suggestion's ``shown`` only once and only its first
        action (accepted, dismissed or edited); returns those written (blocking: call from a
        worker thread).

        Why once: a second console tab or device, or a page reloaded mid-call, shows the same cards
        again; counted twice they would lower the acceptance rate on the metrics page, and a card
        both accepted and dismissed would teach the model both. Two reports of the same
        suggestion at once (two tabs) are checked and inserted one after the other.

        Raises:
            FeedbackUnavailableError: the suggestion engine's feedback storage is not installed.
        """
        if not records:
            return records
        shown = {r.suggestion_id for r in records if r.event == "shown"}
        acted = {r.suggestion_id for r in records if r.event in ACTION_EVENTS}
        call_id = records[0].call_id
        with self._shown_locks[zlib.crc32(call_id.encode("utf-8", "replace")) % SHOWN_LOCK_STRIPES]:
            seen = self._store().shown(call_id, shown) if shown else set()
            done = self._store().acted(call_id, acted) if acted else set()
            fresh = []
            for record in records:
                stored = seen if record.event == "shown" else done
                if record.suggestion_id in stored:
                    continue
                stored.add(record.suggestion_id)
                fresh.append(record)
            if fresh:
                self._store().record_many([asdict(r) for r in fresh])
        return fresh

    def _stored(self, call_id: str, tenant: str, suggestion_ids: set[str]) -> dict[str, _Suggestion]:
        """Suggestions of this call and tenant that earlier feedback recorded (blocking)."""
        rows = self._store().suggestions(call_id, suggestion_ids)
        return {sid: _Suggestion(text=str(row.get("text") or ""), action=str(row.get("action") or ""),
                                 model_version=str(row.get("model_version") or ""), arm=row.get("arm"),
                                 turn_index=int(row.get("turn_index") or 0), context=list(row.get("context") or []),
                                 rank=int(row.get("rank") or 0))
                for sid, row in rows.items() if row.get("tenant") == tenant}

    def _store(self) -> Any:
        if self._feedback is None:
            self._feedback = _feedback_store(self.store)
        return self._feedback


def _records(call_id: str, agent: Agent, tenant: str | None, items: list[FeedbackItem],
             known: dict[str, _Suggestion]) -> list[FeedbackRecord]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    records = []
    for item in items:
        found = known.get(item.suggestion_id)
        if found is None:
            raise UnknownSuggestionError(item.suggestion_id)
        records.append(FeedbackRecord(
            suggestion_id=item.suggestion_id, call_id=call_id, event=item.kind, text=found.text,
            action=found.action, model_version=found.model_version, arm=found.arm,
            tenant=tenant or "default", agent_id=agent.name, turn_index=found.turn_index,
            edited_text=item.text if item.kind == "edited" else None, context=found.context,
            created_at=now, rank=found.rank, elapsed_ms=item.elapsed_ms))
    return records


def _suggestions_of(events: list[dict[str, Any]]) -> dict[str, _Suggestion]:
    """Every suggestion in a call's history (in ``seq`` order), with the agent and customer turns
    before it (its own turn included) and the count of all finished turns before it: one pass, as
    this runs on the event loop."""
    found: dict[str, _Suggestion] = {}
    turns: list[dict[str, str]] = []
    finished = 0
    for event in events:
        if event.get("type") == "transcript.final":
            finished += 1
            # A mixed leg's turns carry role ``unknown`` until its speakers' roles are decided;
            # training reads agent and customer turns only, so only those are kept as context.
            if event.get("role") in CONTEXT_ROLES:
                turns.append({"role": str(event["role"]), "text": str(event.get("text") or "")})
        if event.get("type") != "suggestion":
            continue
        for rank, suggestion in enumerate(event.get("suggestions") or []):
            if suggestion.get("id"):
                found[str(suggestion["id"])] = _Suggestion(
                    text=str(suggestion.get("text", "")), action=str(suggestion.get("action") or ""),
                    model_version=str(event.get("model_version") or ""), arm=event.get("arm"),
                    turn_index=finished, context=turns[-CONTEXT_TURNS:], rank=rank)
    return found


def _feedback_store(store: Any) -> Any:
    """The suggestion engine's feedback storage (voice.store.feedback), bound to ``store``."""
    try:
        from voice.store.feedback import FeedbackStore  # the suggestion engine's module
    except ImportError as exc:
        raise FeedbackUnavailableError(f"feedback storage is not available: {exc}",
                                       hint="install a nextline that ships voice.store.feedback") from exc
    return FeedbackStore(store)


def create_router() -> APIRouter:
    """The feedback route."""
    router = APIRouter(tags=["feedback"])

    @router.post("/api/calls/{call_id}/feedback", status_code=201, responses={
        **CALL_RESPONSES,
        404: {"model": ErrorOut, "description": "No such call, or the call never had one of the suggestions."},
        503: {"model": ErrorOut, "description": "The feedback storage is not available."}})
    async def post_feedback(call_id: str, body: FeedbackIn, request: Request, agent: CurrentAgent
                            ) -> dict[str, Any]:
        """Record shown / accepted / dismissed / edited for suggestions of this call.

        A suggestion's ``shown`` and its first action are stored once; repeats (another tab, a
        reloaded page) are not errors: ``duplicates`` counts them, ``stored`` what was written.
        """
        owner = await authorize_call(request, agent, call_id)
        recorder: FeedbackRecorder = console_of(request).feedback
        try:
            resolved = await recorder.resolve_with_stored(call_id, agent, owner["tenant"], body.items)
            records = await asyncio.to_thread(recorder.store_records, resolved)
        except UnknownSuggestionError as exc:
            raise HTTPException(404, f"call {call_id!r} has no suggestion {exc.args[0]!r}") from exc
        except FeedbackUnavailableError as exc:
            raise HTTPException(503, str(exc)) from exc
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.observe_feedback([record.event for record in records])
        return {"stored": len(records), "duplicates": len(resolved) - len(records)}

    return router
