"""The FastAPI application of ``voice serve``: ingress routers, call events, call listings.

Engines are loaded once in the lifespan (prewarm) and shared by every call. Transports come
from the telephony package, resolved by dotted path (voice never imports telephony directly).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Query, Request, Response, WebSocket
from sse_starlette.sse import EventSourceResponse

from voice.config import ServerConfig
from voice.errors import ConfigError, VoiceError
from voice.live.services import LiveServices
from voice.registry import resolve
from voice.server.access import log_access, log_accesses
from voice.server.auth import (
    AUTH_RESPONSES,
    CALL_RESPONSES,
    CurrentAgent,
    authorize_call,
    authorize_softphone,
    authorize_websocket,
    revoked,
)
from voice.server.console import close_console
from voice.server.limits import BodyLimit
from voice.server.metrics import CONTENT_TYPE, ServerMetrics
from voice.server.relay import EventRelay, relay_conninfo
from voice.server.retention_api import retention_task
from voice.server.routers import include_console_routers
from voice.server.sockets import stream_until_disconnected

log = logging.getLogger(__name__)

ROUTER_FACTORY = "telephony.routes:create_router"
SIP_SERVER = "telephony.sip.server:SipServer"


def create_app(config: ServerConfig, services: LiveServices | None = None) -> FastAPI:
    """Build the app; ``services`` may be given (tests), otherwise they load in the lifespan."""
    state: dict[str, Any] = {"services": services}
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state["services"] is None:
            state["services"] = await asyncio.to_thread(LiveServices.load, config)
        svc: LiveServices = state["services"]
        app.state.services = svc
        _attach_metrics(metrics, svc)
        sip = await _start_sip(config, svc)
        relay = _start_relay(config, svc)
        app.state.relay = relay
        try:
            async with svc.call_liveness(), retention_task(svc):
                try:
                    yield
                finally:
                    # Calls end first, while the relay still carries their last finals and
                    # call.ended to the other processes and their heartbeat still runs. SIP
                    # peers get their BYE now, not after the drain (up to 45 s of RTP unheard).
                    if sip is not None:
                        sip.hang_up()
                    await svc.manager.drain()
        finally:
            if relay is not None:
                await asyncio.to_thread(relay.close)
            await close_console(app)
            if sip is not None:
                await sip.stop()
            await svc.close()

    # No /docs or /redoc: FastAPI's pages load Swagger/ReDoc scripts from a CDN into the
    # consoles' origin, where the pages keep the sign-in token. /openapi.json (no data) stays.
    app = FastAPI(title="nextline", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Live call transcription, understanding and next-best-line suggestions.")
    app.state.metrics = metrics
    app.add_middleware(BodyLimit)
    _trust_proxies(app, config)
    if services is not None:
        app.state.services = services
        _attach_metrics(metrics, services)
    app.include_router(_telephony_router(config, state))
    _add_call_routes(app, state)
    _add_metrics_route(app, metrics)
    include_console_routers(app)
    return app


def _trust_proxies(app: FastAPI, config: ServerConfig) -> None:
    """Believe ``X-Forwarded-Proto``/``-For`` from ``config.trusted_proxies`` only (uvicorn's own
    middleware, added last so it runs first): the scheme then makes the session cookie Secure
    behind a TLS-terminating proxy, and the client address is the one the access log records.

    In the app rather than in ``uvicorn.run`` so that it holds however the app is served;
    ``voice serve`` and ``voice demo`` turn uvicorn's own check off, so this one alone decides.
    """
    proxies = trusted_proxy_list(config.trusted_proxies)
    if not proxies:
        return
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)


def trusted_proxy_list(setting: str) -> list[str]:
    """The setting's entries, stripped, each IPv4 one also in its IPv4-mapped IPv6 form: on a
    dual-stack listener (``--host ::``) an IPv4 proxy's address arrives as ``::ffff:10.0.0.5``."""
    entries = [item.strip() for item in setting.split(",") if item.strip()]
    if entries == ["*"]:
        return entries
    mapped = []
    for entry in entries:
        network = ipaddress.ip_network(entry)  # checked when the config was read
        if isinstance(network, ipaddress.IPv4Network):
            mapped.append(f"::ffff:{network.network_address}/{96 + network.prefixlen}")
    return entries + mapped


def _start_relay(config: ServerConfig, services: LiveServices) -> EventRelay | None:
    """The cross-process event relay, when configured (``--event-relay``)."""
    if not config.event_relay:
        return None
    relay = EventRelay(relay_conninfo(config.database_url), services.hub, services.registry)
    relay.start(asyncio.get_running_loop())
    return relay


def _attach_metrics(metrics: ServerMetrics, services: LiveServices) -> None:
    metrics.attach(services)
    if metrics.observe_event not in services.hub.observers:
        services.hub.observers.append(metrics.observe_event)


def _add_metrics_route(app: FastAPI, metrics: ServerMetrics) -> None:
    @app.get("/metrics", tags=["server"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: calls, event lag behind the audio, suggestion latency, decode queue, CPU, memory.

        Answers while the models are still loading too (process metrics only until then).
        """
        return Response(content=metrics.exposition(), media_type=CONTENT_TYPE)


def _telephony_settings(config: ServerConfig) -> Any:
    settings_cls = resolve("telephony.settings:TelephonySettings")
    base = settings_cls.from_env()
    overrides = {"sip_port": max(config.sip_port, 0), "sip_host": config.host, **config.telephony}
    if config.audiohook_api_keys:
        overrides["audiohook_api_keys"] = config.audiohook_api_keys
    from dataclasses import fields, replace

    known = {f.name for f in fields(settings_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:  # a typo in the config file's telephony block: name it, not a dataclass TypeError
        raise ConfigError(f"unknown telephony settings {', '.join(unknown)}",
                          hint=f"known: {', '.join(sorted(known))} (docs/telephony.md)")
    return replace(base, **overrides)


def _telephony_router(config: ServerConfig, state: dict[str, Any]) -> Any:
    class _LateHandler:
        """The router is built before the services load; calls go to the manager once it exists."""

        async def open_call(self, started: Any, output: Any) -> Any:
            services: LiveServices | None = state["services"]
            if services is None:  # the transport refuses the call in its own terms (503, 1013)
                raise VoiceError("the server is still loading its models", hint="retry in a few seconds")
            return await services.manager.open_call(started, output)

    # WebRTC offers come from browsers: only a signed-in agent (or supervisor) opens one.
    return resolve(ROUTER_FACTORY)(_LateHandler(), _telephony_settings(config), authorize_webrtc=authorize_softphone)


async def _start_sip(config: ServerConfig, svc: LiveServices) -> Any:
    if config.sip_port < 0:
        return None
    server = resolve(SIP_SERVER)(svc.manager, _telephony_settings(config))
    await server.start()
    log.info("SIP listening on %s", getattr(server, "address", config.sip_port))
    svc.sip = server  # type: ignore[attr-defined]
    return server


DECODE_WINDOW_SECONDS = 60.0
"""/healthz calls the ASR degraded when decodes failed and none succeeded over about this long."""
MIN_FAILED_DECODES = 5
"""Fewer failed decodes in the window are no outage: the one final of a lone call on an idle
server, the last finals of a call that ended (a working server decodes a call's partials every
second or so, so an outage fails many more)."""


class DecodeFailureWindow:
    """Whether every decode failed lately, from the scheduler's cumulative counters (``failures``,
    ``finals_done + partials_done``) sampled at each /healthz answer, time as an argument.

    The counts are compared with the newest sample at least ``window`` seconds old, or with zero
    (the process's start) while there is none: the window is ``window`` seconds plus the polling
    interval. Degraded: at least :data:`MIN_FAILED_DECODES` failed, none succeeded, and decodes
    still failed in the window's second half (after the newest sample at least ``window / 2``
    old): failures that stopped, then an idle server, are not "every decode fails" (a call that
    ended with 2 failed finals turned an idle server 503 about 45 s later). Why not a ratio: a few
    failed batches among working ones are the scheduler's own business (its jobs fail alone and
    the call goes on); none working is what a balancer must know.
    """

    def __init__(self, window: float = DECODE_WINDOW_SECONDS) -> None:
        """``window``: seconds of decodes to judge."""
        self.window = window
        self._samples: deque[tuple[float, int, int]] = deque()

    def problem(self, now: float, failures: int, done: int) -> str | None:
        """Why the ASR is degraded, or None: ``failures`` and ``done`` are the counts at ``now``."""
        self._samples.append((now, failures, done))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        since, base_failures, base_done = self._baseline(now - self.window)
        failed, succeeded = failures - base_failures, done - base_done
        if failed < MIN_FAILED_DECODES or succeeded > 0 or failures <= self._baseline(now - self.window / 2)[1]:
            return None
        when = f"in the last {now - since:.0f} s" if since is not None else "since the server started"
        return f"{failed} decodes failed and none succeeded {when}"

    def _baseline(self, before: float) -> tuple[float | None, int, int]:
        """The newest sample taken at ``before`` or earlier; zero counts (the start) without one."""
        found: tuple[float | None, int, int] = (None, 0, 0)
        for sample in self._samples:
            if sample[0] > before:
                break
            found = sample
        return found


def _asr_problem(asr: dict[str, Any], decodes: DecodeFailureWindow, now: float) -> str | None:
    alive, workers = asr.get("workers_alive"), asr.get("workers")
    if alive is not None and workers is not None and alive < workers:
        return f"{alive} of {workers} decode workers alive"
    failures, finals, partials = asr.get("failures"), asr.get("finals_done"), asr.get("partials_done")
    if not (isinstance(failures, int) and isinstance(finals, int) and isinstance(partials, int)):
        return None  # a runtime without the scheduler's counters
    return decodes.problem(now, failures, finals + partials)


def _storage_problem(failure: str | None, pending_saves: int) -> dict[str, Any] | None:
    """/healthz's ``storage``: the last heartbeat round's database failure, or call-end saves still
    waiting on disk (the database is back but refuses them: docs/storage.md); None when neither."""
    if failure is not None:
        problem = "the last heartbeat round could not use the database"
    elif pending_saves:
        problem = f"{pending_saves} call-end saves wait in data_dir/pending (the database refused them)"
    else:
        return None
    return {"problem": problem, "error": failure, "pending_saves": pending_saves}


def _add_call_routes(app: FastAPI, state: dict[str, Any]) -> None:
    def svc() -> LiveServices:
        services: LiveServices | None = state["services"]
        if services is None:
            raise HTTPException(503, "the server is still loading its models")
        return services

    decodes = DecodeFailureWindow()

    @app.get("/healthz", tags=["server"])
    async def healthz(response: Response) -> dict[str, Any]:
        """Liveness and load: active calls and the decode scheduler's queue; 503 with status
        ``degraded`` when decode workers died (the calls' decodes would wait on a smaller pool) or
        every decode failed for about a minute (``asr.problem`` says which). Status ``degraded``
        with 200 when the last heartbeat round's database work failed (``storage``: the database
        is down or locked; calls still run and their transcripts wait in pending saves), or when
        pending saves still wait after a round that worked (the database refuses them)."""
        s = svc()
        relay = getattr(app.state, "relay", None)
        asr = s.asr.metrics()
        problem = _asr_problem(asr, decodes, time.monotonic())
        if problem is not None:
            asr = {**asr, "problem": problem}
        storage = _storage_problem(getattr(s, "storage_failure", None), getattr(s, "pending_saves", 0))
        healthy = problem is None and storage is None
        if problem is not None:
            # Why storage alone keeps 200: the database is shared, so every server would fail
            # together and a balancer would drain the whole fleet, while each server still takes
            # calls and keeps their transcripts durably (pending saves, stored once it is back).
            response.status_code = 503
        return {"status": "ok" if healthy else "degraded", "active_calls": len(s.manager.sessions), "asr": asr,
                **({"event_relay": dict(relay.counts)} if relay is not None else {}),
                **({"storage": storage} if storage is not None else {})}

    @app.get("/api/calls", tags=["calls"], responses=AUTH_RESPONSES)
    async def list_calls(request: Request, viewer: CurrentAgent, background: BackgroundTasks,
                         agent_id: str | None = None,
                         status: str | None = Query(None, pattern="^(active|ended)$")) -> dict[str, Any]:
        """Active and recent calls the caller may see (an agent: their own), newest first.

        ``server_time`` is the server's clock (Unix seconds) as it answered: the calls' times are on
        that clock, so a page measures its offset from it instead of mixing in the viewer's clock.
        A call listed with its latest line, intent or suggestion is logged as ``stream_call``
        (the supervisor view's snapshot; folded with its socket's entry, ``voice.server.access``),
        once the answer is sent: a first snapshot of hundreds of calls does not wait for their
        entries, nor shift the ``server_time`` the page measures its clock against."""
        calls = [c for c in svc().registry.list(agent_id=agent_id, status=status)
                 if viewer.can_view(agent_id=c.agent_id, tenant=c.tenant)]
        shown = [c.call_id for c in calls if c.last_text or c.last_intent or c.last_suggestion]
        background.add_task(log_accesses, request, viewer, "stream_call", shown)
        return {"calls": [c.to_dict() for c in calls], "server_time": round(time.time(), 3)}

    @app.get("/api/calls/{call_id}", tags=["calls"], responses=CALL_RESPONSES)
    async def get_call(call_id: str, request: Request, viewer: CurrentAgent) -> dict[str, Any]:
        """One call: its live view and, once ended, its stored transcript."""
        s = svc()
        await authorize_call(request, viewer, call_id)
        state_ = s.registry.get(call_id)
        transcript = await asyncio.to_thread(_stored_transcript, s, call_id)
        if state_ is None and transcript is None:
            raise HTTPException(404, f"no call {call_id!r}")
        await log_access(request, viewer, "view_transcript", call_id)
        return {"call": state_.to_dict() if state_ else None, "transcript": transcript}

    _add_event_routes(app, svc)


def _add_event_routes(app: FastAPI, svc: Callable[[], LiveServices]) -> None:
    """A call's events, live and replayed: WebSocket and Server-Sent Events."""

    @app.websocket("/ws/calls/{call_id}/events")
    async def call_events_ws(websocket: WebSocket, call_id: str, since: int = 0) -> None:
        """The call's events as JSON text messages; reconnect with ?since=<last seq> to replay."""
        s = svc()
        if (viewer := await authorize_websocket(websocket, call_id)) is None:
            return
        await websocket.accept()
        await log_access(websocket, viewer, "stream_call", call_id)
        await stream_until_disconnected(websocket, s.hub.subscribe(call_id, since), closing=(1000, "call ended"),
                                        revoked=revoked(websocket, viewer))

    @app.get("/api/calls/{call_id}/events", tags=["calls"], response_class=EventSourceResponse,
             responses={200: {"content": {"text/event-stream": {}}, "description": "The call's events."},
                        **CALL_RESPONSES})
    async def call_events_sse(request: Request, call_id: str, viewer: CurrentAgent,
                              since: int = 0) -> EventSourceResponse:
        """The call's events as Server-Sent Events (id = seq; Last-Event-ID resumes)."""
        s = svc()
        await authorize_call(request, viewer, call_id)
        last = request.headers.get("last-event-id")
        start = int(last) if last and last.isascii() and last.isdigit() else since  # not '²' (Latin-1)
        await log_access(request, viewer, "stream_call", call_id)

        async def stream() -> AsyncIterator[dict[str, str]]:
            access = asyncio.create_task(revoked(request, viewer))
            try:
                async for event in s.hub.subscribe(call_id, start):
                    if access.done():  # the token stopped working: nothing more for this stream
                        return
                    yield {"id": str(event["seq"]), "event": event["type"], "data": json.dumps(event)}
            finally:
                access.cancel()

        return EventSourceResponse(stream())


def _stored_transcript(services: LiveServices, call_id: str) -> dict[str, Any] | None:
    from voice.store.store import CallNotFoundError

    try:
        return services.store.get_transcript(call_id).to_dict()
    except CallNotFoundError:
        return None
