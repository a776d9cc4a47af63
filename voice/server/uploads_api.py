"""``POST /api/qa/uploads``: a supervisor uploads a recording for QA; ``GET`` shows the jobs.

The body is the file itself (``Content-Type`` of the audio, name in ``?filename=``), streamed
to disk in chunks, so large recordings never sit in memory and no multipart parser is needed.
Headerless PCM (``.raw``, ``.pcm``, ...) carries no format, so it comes with ``raw_rate`` (and
``raw_channels``), as ``voice transcribe --raw-rate`` takes them.

An upload signed in by the session cookie alone (no ``Authorization`` header) must say it is a
file: ``Content-Type`` audio/*, video/* (browsers label ``.mp4`` and ``.webm`` so),
application/ogg or application/octet-stream. The types a cross-origin form or ``no-cors`` fetch
may send without asking first (text/plain, a form's, none) are refused, besides the origin check
of :func:`voice.server.auth.check_cookie_origin`. The pages send their bearer token as well, and
scripts with a token may send any type (``curl --data-binary`` sends a form's).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.requests import ClientDisconnect

from voice.audio import RAW_CHANNELS, RAW_RATES, RAW_SUFFIXES, RawFormat
from voice.batch.runner import AUDIO_SUFFIXES
from voice.server.auth import SUPERVISOR_RESPONSES, ErrorOut, Supervisor, check_named_agent, named_account, token_of
from voice.server.console import console_of
from voice.server.uploads import MAX_UPLOAD_BYTES, UploadJob, UploadQueue
from voice.store.agents import Agent

RAW_RATE = Query(None, ge=RAW_RATES[0], le=RAW_RATES[1],
                 description="Sample rate of headerless PCM (signed 16-bit little-endian; .raw, .pcm, .s16, .sln), "
                             "e.g. 8000 for telephone audio. Required for those files, refused for any other.")
RAW_CHANNELS_QUERY = Query(None, ge=RAW_CHANNELS[0], le=RAW_CHANNELS[1],
                           description="Interleaved channels of headerless PCM (default 1); refused for other files.")
_RAW_422 = (f"A bad value (`raw_rate` outside {RAW_RATES[0]}-{RAW_RATES[1]}, `raw_channels` outside "
            f"{RAW_CHANNELS[0]}-{RAW_CHANNELS[1]}), a headerless PCM file without `raw_rate`, or "
            "`raw_rate`/`raw_channels` with a file that has a header.")
FILE_TYPES = ("audio/", "video/", "application/ogg", "application/octet-stream")
"""Content-Type prefixes an upload signed in by the cookie alone must have (see the module docstring)."""


def create_router() -> APIRouter:
    """The upload routes."""
    router = APIRouter(tags=["qa"])

    @router.post("/api/qa/uploads", status_code=202, responses={
        **SUPERVISOR_RESPONSES,
        400: {"model": ErrorOut, "description": "The upload broke off, or the file is empty."},
        403: {"model": ErrorOut, "description": "Not a supervisor's token, an `agent_id` of another tenant, or a "
                                                "cookie-signed request from another origin."},
        413: {"model": ErrorOut, "description": "The file is too large."},
        415: {"model": ErrorOut, "description": "The file name is not an audio file's, or a cookie-signed "
                                                "upload's Content-Type is not a file's."}},
        # The body is the raw file, read from request.stream(): declared here for the docs.
        openapi_extra={"requestBody": {"required": True, "content": {
            "audio/*": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"422": {"description": _RAW_422}}})  # merged into FastAPI's own 422 entry
    async def upload(request: Request, viewer: Supervisor, filename: str = Query(min_length=1, max_length=255),
                     tenant: str | None = Query(None, max_length=255),
                     agent_id: str | None = Query(None, max_length=255),
                     raw_rate: int | None = RAW_RATE, raw_channels: int | None = RAW_CHANNELS_QUERY) -> dict[str, Any]:
        """Receive a recording and queue it: transcription, then the suggestion model."""
        if Path(filename).suffix.lower() not in AUDIO_SUFFIXES:
            raise HTTPException(415, f"{filename}: not an audio file name ({', '.join(sorted(AUDIO_SUFFIXES))})")
        raw = _raw_format(filename, raw_rate, raw_channels)
        _check_file_type(request)
        declared = int(request.headers.get("content-length") or 0)
        if declared > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        tenant = viewer.tenant or tenant
        if tenant is None and agent_id is not None:  # the QA page of an every-tenant supervisor names none
            named = await named_account(request, agent_id)
            tenant = named.tenant if named is not None else None
        await check_named_agent(request, viewer, tenant, agent_id, what="uploads calls")
        queue: UploadQueue = console_of(request).uploads
        job = queue.create(filename, tenant=tenant, agent_id=agent_id, uploaded_by=viewer.name, raw=raw)
        try:
            size = await _receive(request, Path(job.path))
        except (ClientDisconnect, _TooLarge) as exc:
            reason = "the upload broke off" if isinstance(exc, ClientDisconnect) else str(exc)
            await asyncio.to_thread(queue.refuse, job, reason)
            raise HTTPException(413 if isinstance(exc, _TooLarge) else 400, reason) from exc
        if size == 0:
            await asyncio.to_thread(queue.refuse, job, "the file is empty")
            raise HTTPException(400, "the file is empty")
        queue.start(job)
        return job.to_dict()

    @router.get("/api/qa/uploads", responses=SUPERVISOR_RESPONSES)
    async def uploads(request: Request, viewer: Supervisor) -> dict[str, Any]:
        """Recent upload jobs of this server, newest first."""
        jobs = console_of(request).uploads.list()
        return {"jobs": [j.to_dict() for j in jobs if _visible(viewer, j)]}

    @router.get("/api/qa/uploads/{job_id}", responses={
        **SUPERVISOR_RESPONSES, 404: {"model": ErrorOut, "description": "No such upload (for this tenant)."}})
    async def upload_status(job_id: str, request: Request, viewer: Supervisor) -> dict[str, Any]:
        """One job: status, the call it became, errors."""
        job = console_of(request).uploads.get(job_id)
        if job is None or not _visible(viewer, job):
            raise HTTPException(404, f"no upload {job_id!r}")
        return job.to_dict()

    return router


def _raw_format(filename: str, raw_rate: int | None, raw_channels: int | None) -> RawFormat | None:
    """How to read the upload when it is headerless PCM; 422 when the query does not fit the file
    (checked before the body is read: a wrong rate would only surface as a failed job)."""
    if Path(filename).suffix.lower() not in RAW_SUFFIXES:
        if raw_rate is not None or raw_channels is not None:
            raise HTTPException(422, f"{filename} has a header that gives its format: leave out raw_rate and "
                                     f"raw_channels (they are for {', '.join(sorted(RAW_SUFFIXES))} files)")
        return None
    if raw_rate is None:
        raise HTTPException(422, f"{filename} is headerless PCM: give its sample rate as raw_rate "
                                 "(e.g. 8000 for telephone audio) and raw_channels when it is not mono")
    return RawFormat(raw_rate, raw_channels or 1)


def _check_file_type(request: Request) -> None:
    """415 for an upload signed in by the cookie alone whose Content-Type is not a file's: what a
    form on another origin of the site could send (text/plain, a form's, none)."""
    if token_of(request) is not None:
        return
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind.startswith(FILE_TYPES):
        raise HTTPException(415, f"an upload's Content-Type must be the file's (audio/*, video/*, "
                                 f"application/octet-stream), not {kind or 'none'}")


class _TooLarge(Exception):
    pass


async def _receive(request: Request, path: Path) -> int:
    """Stream the body to ``path``; returns its size."""
    size = 0
    with path.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise _TooLarge(f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
            await asyncio.to_thread(out.write, chunk)
    return size


def _visible(viewer: Agent, job: UploadJob) -> bool:
    return viewer.tenant is None or job.tenant == viewer.tenant
