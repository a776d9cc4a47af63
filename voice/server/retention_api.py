"""Erasure on the server: ``DELETE /api/calls/{call_id}`` for supervisors (a CRM forwarding a
customer's erasure request), and the hourly purge of calls past ``retention_days``.

Both go through :class:`voice.store.retention.CallEraser` on a worker thread and then drop the
call from the server's memory too (event history, recent-call list), so nothing of it is served
afterwards. That second step runs on the event loop: the hub and the registry are not
thread-safe, and the loop iterates them (``GET /api/calls``, call ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from voice.server.access import log_access
from voice.server.auth import SUPERVISOR_CALL_RESPONSES, ErrorOut, Supervisor, authorize_call
from voice.server.console import live_services
from voice.store.retention import CallEraser, ErasureReport, cutoff

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600.0


def forget_erased(services: Any, report: ErasureReport) -> None:
    """Drop erased calls from the hub and the registry (on the event loop only: not thread-safe)."""
    for call_id in report.calls:
        services.hub.forget(call_id)
        services.registry.forget(call_id)


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
async def retention_task(services: Any, every: float = PURGE_EVERY_SECONDS) -> AsyncIterator[None]:
    """Run :func:`purge_once` now and then every ``every`` seconds while the server runs."""
    async def loop() -> None:
        while True:
            try:
                report = await asyncio.to_thread(purge_once, services)
                if report is not None:
                    forget_erased(services, report)
            except Exception:  # a failed purge is retried next time; the server goes on
                log.exception("retention purge failed; retrying in %.0f s", every)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop(), name="retention") if services.config.retention_days > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
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

