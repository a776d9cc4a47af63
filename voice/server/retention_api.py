"""Erasure on the server: ``DELETE /api/calls/{call_id}`` for supervisors (a CRM forwarding a
customer's erasure request), and the hourly purge of calls past ``retention_days``.

Both go through :class:`voice.store.retention.CallEraser` on a worker thread and then drop the
call from the server's memory too (event history, recent-call list), so nothing of it is served
afterwards. That second step runs on the event loop: the hub and the registry are not
thread-safe, and the loop iterates them (``GET /api/calls``, call ends).

Calls are erased elsewhere too: by ``voice calls erase`` / ``purge`` (another process on the same
database), and, with ``--event-relay``, by the other server processes. So memory never vouches
for an ended call: every route on one call checks its row (``voice.server.auth.call_owner``,
which drops a call whose row is gone), :func:`sweep_erased` drops from the recent-call list,
every :data:`SWEEP_EVERY_SECONDS`, the calls whose rows are gone, and an erasure here is
published on the relay (the hub's ``erasure_observers``) so that the other processes forget
the call at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from voice.server.access import log_access
from voice.server.auth import SUPERVISOR_CALL_RESPONSES, ErrorOut, Supervisor, authorize_call
from voice.server.calls import drop_erased_call
from voice.server.console import live_services
from voice.store.retention import CallEraser, ErasureReport, cutoff

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600.0
SWEEP_EVERY_SECONDS = 5.0
"""How often a server drops from memory the calls erased by someone else (``voice calls
erase``, another process): one indexed query over the ended calls it holds (at most a few
hundred). Until then such a call is listed by ``GET /api/calls``, but no route serves it."""
_QUERY_CHUNK = 500


def forget_erased(services: Any, report: ErasureReport) -> None:
    """Drop calls this process erased from the hub and the registry, and tell the hub's erasure
    observers (the relay: the other processes forget them too). On the event loop only.

    Only calls this process still holds are announced: the others hold the same recent calls
    (relayed), and a retention purge of thousands of old calls would otherwise fill the relay's
    queue and hold up (or drop) live events. Each process's sweep catches anything else."""
    hub, registry = services.hub, services.registry
    for call_id in report.calls:
        held = hub.knows(call_id) or registry.get(call_id) is not None
        drop_erased_call(hub, registry, call_id)
        if held:
            for observe in hub.erasure_observers:
                observe(call_id)


def stored_call_ids(store: Any, call_ids: list[str]) -> set[str]:
    """Which of ``call_ids`` still have a database row (blocking: one query per 500 ids)."""
    from sqlalchemy import select

    from voice.store.tables import CallRow

    found: set[str] = set()
    with store.session() as session:
        for at in range(0, len(call_ids), _QUERY_CHUNK):
            chunk = call_ids[at:at + _QUERY_CHUNK]
            found.update(session.scalars(select(CallRow.call_id).where(CallRow.call_id.in_(chunk))))
    return found


async def sweep_erased(services: Any) -> list[str]:
    """Drop from memory the calls whose rows were erased by someone else; returns their ids.

    Only calls whose row must exist are looked at (``CallState.row_expected``: ended calls,
    and relayed calls after a grace period), never a call in progress that may not have its
    row yet.
    """
    expected = services.registry.expected_rows()
    if not expected:
        return []
    stored = await asyncio.to_thread(stored_call_ids, services.store, expected)
    now, gone = time.time(), []
    for call_id in expected:
        state = services.registry.get(call_id)
        if call_id not in stored and state is not None and state.row_expected(now):
            drop_erased_call(services.hub, services.registry, call_id)
            gone.append(call_id)
    if gone:
        log.info("forgot %d calls erased elsewhere: %s", len(gone), ", ".join(gone[:10]))
    return gone


def purge_once(services: Any) -> ErasureReport | None:
    """Erase every stored call older than the configured retention; None when retention is off.

    Blocking, and it leaves the server's memory alone: run it in a thread, then call
    :func:`forget_erased` with the report on the event loop (as :func:`retention_task` does).
    """
    days = services.config.retention_days
    if days <= 0:
        return None
    eraser = CallEraser(services.store, services.config.data_dir)
    report = eraser.erase(eraser.find(created_before=cutoff(days)))
    if report.calls:
        log.info("retention (%s days): erased %d calls, %d files", days, len(report.calls), len(report.files))
    return report


@contextlib.asynccontextmanager
async def retention_task(services: Any, every: float = PURGE_EVERY_SECONDS,
                         sweep_every: float | None = None) -> AsyncIterator[None]:
    """While the server runs: :func:`purge_once` now and every ``every`` seconds (when retention
    is on), and :func:`sweep_erased` every ``sweep_every`` (:data:`SWEEP_EVERY_SECONDS`)."""
    async def purge() -> None:
        while True:
            try:
                report = await asyncio.to_thread(purge_once, services)
                if report is not None:
                    forget_erased(services, report)
            except Exception:  # a failed purge is retried next time; the server goes on
                log.exception("retention purge failed; retrying in %.0f s", every)
            await asyncio.sleep(every)

    async def sweep(period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await sweep_erased(services)
            except Exception:  # noqa: BLE001 - a database outage: routes refuse ended calls meanwhile
                log.warning("could not look for calls erased elsewhere; retrying in %.0f s", period, exc_info=True)

    tasks = [asyncio.create_task(sweep(sweep_every or SWEEP_EVERY_SECONDS), name="erased-sweep")]
    if services.config.retention_days > 0:
        tasks.append(asyncio.create_task(purge(), name="retention"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_router() -> APIRouter:
    """The erasure route."""
    router = APIRouter(tags=["calls"])

    @router.delete("/api/calls/{call_id}", responses={
        **SUPERVISOR_CALL_RESPONSES, 409: {"model": ErrorOut, "description": "The call is in progress."}})
    async def erase_call(call_id: str, request: Request, viewer: Supervisor) -> dict[str, Any]:
        """Erase an ended call and everything stored about it (transcript, recording, outcome, reviews,
        feedback quoting it); 409 while the call is in progress. Supervisors of the call's tenant only."""
        await authorize_call(request, viewer, call_id)
        services = live_services(request.app)
        eraser = CallEraser(services.store, services.config.data_dir)
        found = await asyncio.to_thread(eraser.find, call_ids=[call_id])
        if not found:
            raise HTTPException(404, f"no stored call {call_id!r}")
        if found[0].active:
            raise HTTPException(409, f"call {call_id!r} is in progress; erase it once it has ended")
        report = await asyncio.to_thread(eraser.erase, found)
        await log_access(request, viewer, "erase_call", call_id)
        forget_erased(services, report)
        return {"erased": report.calls, "feedback_rows": report.feedback_rows, "files": len(report.files),
                "kept_source_files": report.kept_source_files}

    return router

