"""QA replay API: call lists with filters, a call's transcript, audio and review, exports, outcomes.

Agents see their own calls here too; supervisors see every call of their tenant, set outcomes
(as a CRM integration would) and upload recordings (``voice.server.uploads_api``).
"""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from voice.server.access import log_access
from voice.server.auth import (
    AUTH_RESPONSES,
    CALL_RESPONSES,
    SUPERVISOR_CALL_RESPONSES,
    CurrentAgent,
    ErrorOut,
    Supervisor,
    authorize_call,
)
from voice.server.console import console_of
from voice.server.review import (
    CallNotReviewableError,
    ReviewUnavailableError,
    review_csv,
    review_json,
)
from voice.store.agents import Agent
from voice.store.qa import CallFilter, CallOutcome, ListCursor
from voice.store.store import CallNotFoundError


class OutcomeIn(BaseModel):
    """Body of ``PUT /api/calls/{call_id}/outcome``: what the CRM recorded."""

    model_config = ConfigDict(extra="forbid")
    """A misspelt field (``sucess``) is a 422: ignored, it stored an outcome of nulls over the real one."""

    success: bool | None = None
    value: float | None = Field(default=None, ge=-1e12, le=1e12, allow_inf_nan=False)
    label: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default="api", max_length=64)
    updated_at: str | None = Field(default=None, exclude=True)
    """Read-only; accepted and ignored, so a client may PUT back the outcome it read (GET / PUT reply)."""


def _zone(name: str | None) -> tzinfo:
    """The viewer's time zone (an IANA name such as ``Europe/Berlin``); UTC when not given."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # "America" is a folder of zones
        raise HTTPException(422, f"tz must be a time zone name like Europe/Berlin, not {name!r}") from exc


def _day(value: str | None, name: str, zone: tzinfo, *, after: bool = False) -> datetime | None:
    """Midnight (UTC) starting the day ``value`` in ``zone``, or ending it with ``after`` (the
    exclusive end of an inclusive ``until``); None (no bound) after 9999-12-31."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be a date like 2026-11-27") from exc
    try:
        day += timedelta(days=1 if after else 0)
        return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
    except OverflowError:  # around 0001-01-01 or 9999-12-31 (a 500): a bound there bounds nothing
        return None


def _cursor(value: str | None) -> ListCursor | None:
    """The ``before`` of a call list request; a 422 that says what one looks like."""
    if not value:
        return None
    try:
        return ListCursor.parse(value)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(422, f"before must be the cursor of a listed call: {exc}") from exc


def _conflict(description: str) -> dict[int | str, dict[str, Any]]:
    return {409: {"model": ErrorOut, "description": description}}


def _filter_for(viewer: Agent, agent_id: str | None, **values: Any) -> CallFilter:
    """The viewer's filter: agents only ever get their own calls, tenants only their own."""
    if not viewer.is_supervisor:
        agent_id = viewer.name
    return CallFilter(agent_id=agent_id or None, tenant=viewer.tenant, **values)


def create_router() -> APIRouter:
    """The QA routes."""
    router = APIRouter(tags=["qa"])
    _add_call_routes(router)
    _add_review_routes(router)
    _add_audio_and_outcome_routes(router)
    return router


def _add_call_routes(router: APIRouter) -> None:
    @router.get("/api/qa/calls", responses=AUTH_RESPONSES)
    async def qa_calls(request: Request, viewer: CurrentAgent, agent_id: str | None = None,
                       since: str | None = None,
                       until: str | None = None,
                       tz: str | None = Query(None, max_length=64),
                       outcome: str | None = Query(None, pattern="^(success|failure|unknown)$"),
                       kind: str | None = Query(None, pattern="^(live|batch)$"),
                       limit: int = Query(100, ge=1, le=1000),
                       offset: int = Query(0, ge=0, le=1_000_000_000, description=(
                           "Rows to skip. Kept for older clients: a call that starts between two pages "
                           "shifts the next one (a call is listed twice); page with `before` instead.")),
                       before: str | None = Query(None, max_length=64, description=(
                           "Only the calls after this one in the list: the `cursor` of the previous page's "
                           "last row (its creation time and id, like `2026-11-27T01:00:00.123456Z,42`). "
                           "Calls that start meanwhile do not shift the next page."))
                       ) -> dict[str, Any]:
        """Stored calls, newest first; ``since``/``until`` are days (``until`` inclusive) in the
        time zone ``tz`` (an IANA name, as the pages send; UTC without it). Every row has a
        ``cursor``: pass the last one as ``before`` for the next page."""
        zone = _zone(tz)
        where = _filter_for(viewer, agent_id, kind=kind, outcome=outcome, since=_day(since, "since", zone),
                            until=_day(until, "until", zone, after=True), limit=limit, offset=offset,
                            before=_cursor(before))
        console = console_of(request)
        calls = await asyncio.to_thread(console.qa.calls, where)
        return {"calls": [c.to_dict() for c in calls]}

    @router.get("/api/qa/calls/{call_id}", responses=CALL_RESPONSES)
    async def qa_call(call_id: str, request: Request, viewer: CurrentAgent) -> dict[str, Any]:
        """A call for the replay page: listing row, transcript, and the review if computed."""
        await authorize_call(request, viewer, call_id)
        console = console_of(request)
        try:
            row, transcript = await asyncio.to_thread(_call_and_transcript, console, call_id)
        except CallNotFoundError as exc:  # live, but its row is still on the way to the database (or erased)
            raise HTTPException(404, f"call {call_id!r} is not stored (yet): retry in a moment") from exc
        review = await asyncio.to_thread(console.reviews.cached, call_id, row.tenant)
        await log_access(request, viewer, "view_transcript", call_id)
        return {"call": row.to_dict(), "transcript": transcript,
                "review": review_json(review) if review else None,
                "audio_url": f"/api/calls/{call_id}/audio" if row.has_audio else None}



def _add_review_routes(router: APIRouter) -> None:
    @router.post("/api/qa/calls/{call_id}/review", responses={
        **CALL_RESPONSES, **_conflict("No suggestion model serves the call's tenant, or the call has no "
                                      "stored transcript yet.")})
    async def compute_review(call_id: str, request: Request, viewer: CurrentAgent) -> dict[str, Any]:
        """Run the suggestion model over the call (cached per model version).

        The review's rows hold the agent's words turn by turn: it is logged as ``view_transcript``,
        folded with the QA page's own entry for the call (``voice.server.access``)."""
        owner = await authorize_call(request, viewer, call_id)
        future = console_of(request).reviews.submit(call_id, owner["tenant"])
        try:
            review = await asyncio.wrap_future(future)
        except ReviewUnavailableError as exc:
            raise HTTPException(409, str(exc)) from exc
        except CallNotReviewableError as exc:
            raise HTTPException(409, str(exc)) from exc
        await log_access(request, viewer, "view_transcript", call_id)
        return review_json(review)

    @router.get("/api/qa/calls/{call_id}/review.{fmt}", responses={
        **CALL_RESPONSES, **_conflict("The call has no review yet."),
        200: {"description": "The review as a download.",
              "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {}}}})
    async def export_review(call_id: str, fmt: Literal["csv", "json"], request: Request,
                            viewer: CurrentAgent) -> Any:
        """The suggested-vs-actual table as CSV or JSON (a download)."""
        owner = await authorize_call(request, viewer, call_id)
        review = await asyncio.to_thread(console_of(request).reviews.cached, call_id, owner["tenant"])
        if review is None:
            raise HTTPException(409, "this call has no review yet: open it in QA replay first")
        await log_access(request, viewer, "export_review", call_id)
        disposition = {"Content-Disposition": _attachment(f"{call_id[:100]}-review.{fmt}")}
        if fmt == "csv":
            return PlainTextResponse(review_csv(review), media_type="text/csv; charset=utf-8", headers=disposition)
        from fastapi.responses import JSONResponse

        return JSONResponse(review_json(review), headers=disposition)



def _add_audio_and_outcome_routes(router: APIRouter) -> None:
    @router.get("/api/calls/{call_id}/audio", response_class=FileResponse, responses={
        **CALL_RESPONSES, 404: {"model": ErrorOut, "description": "No such call, or no audio stored for it."},
        200: {"description": "The recording; `Range` requests are answered with 206.",
              "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}}}})
    async def call_audio(call_id: str, request: Request, viewer: CurrentAgent) -> FileResponse:
        """The call's audio (live recording or batch source), with HTTP range support for seeking."""
        await authorize_call(request, viewer, call_id)
        try:
            path = await asyncio.to_thread(console_of(request).qa.audio_path, call_id)
        except CallNotFoundError:  # live, but not in the database yet (or erased meanwhile)
            path = None
        if not path or not await asyncio.to_thread(Path(path).is_file):
            raise HTTPException(404, "no audio is stored for this call")
        await log_access(request, viewer, "play_audio", call_id)
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})

    @router.put("/api/calls/{call_id}/outcome", responses=SUPERVISOR_CALL_RESPONSES)
    async def set_outcome(call_id: str, body: OutcomeIn, request: Request,
                          viewer: Supervisor) -> dict[str, Any]:
        """Set a call's outcome (sale or not, value, label), as a CRM integration would."""
        await authorize_call(request, viewer, call_id)
        outcome = CallOutcome(body.success, body.value, body.label, body.source)
        try:
            stored = await asyncio.to_thread(console_of(request).qa.set_outcome, call_id, outcome)
        except CallNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        await log_access(request, viewer, "set_outcome", call_id)
        return stored.to_dict()


def _call_and_transcript(console: Any, call_id: str) -> tuple[Any, dict[str, Any] | None]:
    """The listing row and the transcript: stored at call end, else the live turns so far."""
    row = console.qa.call(call_id)
    try:
        return row, console.live.store.get_transcript(call_id).to_dict()
    except CallNotFoundError:
        pass
    turns = console.live.live_store.turns(call_id) if row.kind == "live" else []
    segments = [{"id": i, "start": t.start, "end": t.end, "speaker": t.speaker or t.leg, "role": t.role,
                 "text": t.text, "words": t.words} for i, t in enumerate(turns)]
    return row, ({"call_id": call_id, "segments": segments, "speakers": [], "entities": [], "partial": True}
                 if segments else None)


def _attachment(name: str) -> str:
    """A download's Content-Disposition: an ASCII stand-in, and the real name (RFC 6266) for
    ids such as a batch call's file stem ``録音`` (headers are Latin-1: it was a 500)."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"
