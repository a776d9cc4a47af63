"""Who is asking: agent tokens on every console, QA and call route; 401 without one, 403 when
the call is not theirs.

A token travels as ``Authorization: Bearer <token>`` (scripts, CRM integrations). The browser
pages trade it (``POST /api/session``) for a session: the ``nextline_token`` cookie then holds a
random session id, never the token (WebSockets, SSE and ``<audio>`` cannot send headers). The
session is a database row (:mod:`voice.store.sessions`): ``DELETE /api/session`` deletes it, so a
copied cookie stops working on every server process, and a new token for the agent ends it too.
The cookie is HttpOnly and SameSite=Strict, so another site can neither read it nor make the
browser send it; WebSocket upgrades from another origin are refused as well, because browsers do
not apply CORS to WebSockets. SameSite keeps the cookie off cross-*site* requests only: another
origin of the same site (another port of the host, a sibling subdomain) still gets it attached
to a form post. So a state-changing request (not GET/HEAD/OPTIONS) that the cookie alone signs
in must carry this server's own Origin (or, without one, Referer); a bearer token is never sent
by a browser on its own, so scripts and CRM integrations need neither.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security, WebSocket
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse

from voice.server.calls import drop_erased_call
from voice.server.console import console_of
from voice.store.agents import Agent, AuthenticationError
from voice.store.sessions import SessionStore
from voice.store.store import CallNotFoundError

log = logging.getLogger(__name__)
SESSION_COOKIE = "nextline_token"
COOKIE_MAX_AGE = 30 * 24 * 3600
CACHE_SECONDS = 10.0
"""How long a checked token or session is trusted without asking the database again (the delay of
a revocation, or of a sign-out on another server process)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing: a cookie-signed request with another one must come from our pages."""
RECHECK_SECONDS = 5.0
"""How often an open WebSocket or SSE stream checks its token again (through the cache): a stream
is authorized once, when it opens, and a live call's stream may stay open for an hour."""

# Declared for the OpenAPI document (Swagger's "Authorize"); auto_error=False because
# :func:`token_of` reads both itself and :func:`authenticate` answers 401 in its own words.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An agent or supervisor token: `Authorization: Bearer <token>`.")
SESSION = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, scheme_name="session",
                       description="The HttpOnly cookie `POST /api/session` sets (browser pages).")


class ErrorOut(BaseModel):
    """The body of every refusal (FastAPI's ``HTTPException``)."""

    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("No valid token: send `Authorization: Bearer <token>` or sign in (`POST /api/session`)."),
}
"""``responses=`` of a route open to any signed-in agent."""
SUPERVISOR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES, 403: _error("The token is not a supervisor's."),
}
"""``responses=`` of a supervisor-only route."""
CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    403: _error("The call belongs to another agent (or, for a supervisor, another tenant)."),
    404: _error("No such call."),
}
"""``responses=`` of a route on one call (:func:`authorize_call`)."""
SUPERVISOR_CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CALL_RESPONSES, 403: _error("The token is not a supervisor's, or the call is another tenant's."),
}
"""``responses=`` of a supervisor-only route on one call."""


_CacheKey = tuple[str, str]
"""``("bearer", token)`` or ``("session", session id)``: a token never stands for a session."""


class _TokenCache:
    """(kind, credential) -> (agent, expiry): one DB lookup per token or session per few seconds,
    not per request."""

    def __init__(self) -> None:
        self._entries: dict[_CacheKey, tuple[Agent, float]] = {}

    def get(self, key: _CacheKey) -> Agent | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[0]

    def put(self, key: _CacheKey, agent: Agent) -> None:
        if len(self._entries) > 10_000:  # bounded: forget everything rather than grow
            self._entries.clear()
        self._entries[key] = (agent, time.monotonic() + CACHE_SECONDS)

    def drop(self, key: _CacheKey) -> None:
        self._entries.pop(key, None)


def token_of(connection: HTTPConnection) -> str | None:
    """The bearer token of a request or WebSocket upgrade, if it carries one."""
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def session_of(connection: HTTPConnection) -> str | None:
    """The session id in the cookie of a request or WebSocket upgrade, if it carries one."""
    return connection.cookies.get(SESSION_COOKIE) or None


async def authenticate(connection: HTTPConnection) -> Agent:
    """The agent behind a request: its bearer token's, else its session cookie's.

    Raises:
        HTTPException: 401 without a valid token or session; 403 for a state-changing request
            signed in by the cookie from another origin (:func:`check_cookie_origin`).
    """
    token = token_of(connection)
    if token is None:
        if session_of(connection):
            check_cookie_origin(connection)
        return await _authenticate_session(connection)
    cache: _TokenCache = _cache(connection)
    agent = cache.get(("bearer", token))
    if agent is not None:
        return agent
    console = console_of(connection)
    try:
        agent = await asyncio.to_thread(console.agents.authenticate, token)
    except AuthenticationError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    cache.put(("bearer", token), agent)
    return agent


async def _authenticate_session(connection: HTTPConnection) -> Agent:
    """The agent of the session cookie. A cookie from before sessions (it held the token itself)
    is no session id, so it is refused like any unknown one."""
    session_id = session_of(connection)
    cache = _cache(connection)
    agent = cache.get(("session", session_id)) if session_id else None
    if agent is not None:
        return agent
    try:
        agent = await asyncio.to_thread(_sessions(connection).agent, session_id)
    except AuthenticationError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    cache.put(("session", session_id or ""), agent)
    return agent


def _sessions(connection: HTTPConnection) -> SessionStore:
    return SessionStore(console_of(connection).agents.store)


async def current_agent(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    _cookie: Annotated[str | None, Security(SESSION)],
) -> Agent:
    """FastAPI dependency: any signed-in agent or supervisor.

    The two security parameters only declare the schemes in the OpenAPI document (either one
    will do); :func:`authenticate` reads the token.
    """
    return await authenticate(request)


async def current_supervisor(agent: Annotated[Agent, Depends(current_agent)]) -> Agent:
    """FastAPI dependency: a supervisor (QA uploads, outcomes, the supervisor view)."""
    if not agent.is_supervisor:
        raise HTTPException(403, "this needs a supervisor token")
    return agent


CurrentAgent = Annotated[Agent, Depends(current_agent)]
"""A route parameter: the signed-in agent or supervisor (401 otherwise)."""
Supervisor = Annotated[Agent, Depends(current_supervisor)]
"""A route parameter: a signed-in supervisor (401/403 otherwise)."""


async def authorize_call(connection: HTTPConnection, agent: Agent, call_id: str) -> dict[str, Any]:
    """Check that ``agent`` may see ``call_id``; returns who handled it (agent_id, tenant).

    Raises:
        HTTPException: 404 for an unknown call, 403 for someone else's.
    """
    owner = await call_owner(connection, call_id)
    if owner is None:
        raise HTTPException(404, f"no call {call_id!r}")
    if not agent.can_view(agent_id=owner["agent_id"], tenant=owner["tenant"]):
        raise HTTPException(403, f"call {call_id!r} belongs to another agent")
    return owner


async def call_owner(connection: HTTPConnection, call_id: str) -> dict[str, Any] | None:
    """Agent and tenant of a call: from the live registry while the call is in progress, else
    from the database; None for no such call.

    An ended call is answered from its database row only, even while the server still holds it
    in memory (recent-call list, replay history): a call erased by ``voice calls erase``, by
    another server process or by its retention purge must not be served from that memory. So
    a request on an ended call costs one indexed lookup; when the row is gone the call is also
    dropped from memory here (``voice.server.retention_api`` sweeps the rest within seconds).
    A call in progress is answered from memory: its row may not be written yet.
    """
    console = console_of(connection)
    live = console.live
    state = live.registry.get(call_id)
    if state is not None and state.status != "ended":
        return {"agent_id": state.agent_id, "tenant": state.tenant}
    try:
        row = await asyncio.to_thread(console.qa.call, call_id)
    except CallNotFoundError:
        state = live.registry.get(call_id)  # looked up again: the loop ran while the query did
        if state is not None and state.row_expected():
            drop_erased_call(live.hub, live.registry, call_id)
        return None
    return {"agent_id": row.agent_id, "tenant": row.tenant}


async def authorize_websocket(websocket: WebSocket, call_id: str | None = None, *,
                              supervisor: bool = False) -> Agent | None:
    """Authenticate a WebSocket upgrade; on failure send the HTTP denial and return None."""
    try:
        _check_origin(websocket)
        agent = await authenticate(websocket)
        if supervisor and not agent.is_supervisor:
            raise HTTPException(403, "this needs a supervisor token")
        if call_id is not None:
            await authorize_call(websocket, agent, call_id)
    except HTTPException as exc:
        await websocket.send_denial_response(PlainTextResponse(str(exc.detail), status_code=exc.status_code))
        return None
    return agent


async def revoked(connection: HTTPConnection, agent: Agent) -> None:
    """Return once the token or session of ``connection`` no longer stands for ``agent`` as it did
    when the stream opened: revoked, replaced, signed out, the agent removed or disabled, or their
    role or tenant changed. Checked every :data:`RECHECK_SECONDS`, so an open stream ends within
    ``CACHE_SECONDS + RECHECK_SECONDS`` of a revocation."""
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        try:
            now = await authenticate(connection)
        except HTTPException:
            return
        except Exception:  # noqa: BLE001 - a database outage is not a revocation: check again later
            log.warning("could not re-check %s's token; the stream goes on", agent.name, exc_info=True)
            continue
        if (now.name, now.role, now.tenant) != (agent.name, agent.role, agent.tenant):
            return


async def authorize_softphone(request: Request, tenant: str | None,
                              agent_id: str | None) -> tuple[str | None, str | None]:
    """Who a WebRTC offer's call belongs to: the signed-in agent's own (an offer naming another
    agent or tenant is a 403), or, for a supervisor, the agent the offer names in their tenant.

    A named agent with an account must be of the call's tenant (docs/telephony.md): a tenant's
    supervisor may not open a call for another tenant's agent, nor for an agent of no tenant (one
    who sees their calls of every tenant); a supervisor of every tenant names the agent's tenant.
    An agent id without an account (a softphone identity of the telephony only) is left as named.

    Raises:
        HTTPException: 401 without a valid token, 403 for a call the caller may not open.
    """
    caller = await authenticate(request)
    tenant = tenant or caller.tenant
    agent_id = agent_id or (None if caller.is_supervisor else caller.name)
    if not caller.can_view(agent_id=agent_id, tenant=tenant):
        raise HTTPException(403, f"{caller.name} may not open a call for agent {agent_id!r} of tenant {tenant!r}")
    await check_named_agent(request, caller, tenant, agent_id, what="opens softphone calls")
    return tenant, agent_id


async def check_named_agent(connection: HTTPConnection, caller: Agent, tenant: str | None,
                            agent_id: str | None, *, what: str) -> None:
    """Refuse a call ``caller`` files under another person's name unless that person is of the
    call's ``tenant`` (the softphone's offer, a QA upload): a tenant's supervisor may not give a
    call to another tenant's agent, nor to an agent of no tenant (one who sees every tenant's
    calls); a supervisor of every tenant names the agent's own tenant. An agent id without an
    account (a softphone identity of the telephony only) is left as named, and so is the caller.

    Raises:
        HTTPException: 403 for an agent of another tenant.
    """
    if agent_id is None or agent_id == caller.name:
        return
    named = await named_account(connection, agent_id)
    if named is not None and named.tenant != tenant and (caller.tenant is not None or named.tenant is not None):
        where = f"tenant {named.tenant!r}" if named.tenant else "no tenant (every tenant's calls)"
        raise HTTPException(403, f"agent {agent_id!r} is of {where}, not of tenant {tenant!r}: "
                                 f"a supervisor {what} for agents of the call's tenant only")


async def named_account(connection: HTTPConnection, agent_id: str) -> Agent | None:
    """The account called ``agent_id``, or None (a softphone identity of the telephony only)."""
    people = await asyncio.to_thread(console_of(connection).agents.list)
    return next((p for p in people if p.name == agent_id), None)


def check_cookie_origin(connection: HTTPConnection) -> None:
    """Refuse cross-origin request forgery on the cookie: an HTTP request other than GET, HEAD or
    OPTIONS must name this server in ``Origin`` (browsers send it on every such request), or in
    ``Referer`` when a browser left ``Origin`` out; neither, or ``Origin: null``, is refused.
    The rule of the WebSocket check (:func:`same_host`); behind a proxy, the ``Host`` it passes on.

    Raises:
        HTTPException: 403 for a request from another origin, or from no page at all.
    """
    if connection.scope.get("type") != "http" or connection.scope.get("method") in SAFE_METHODS:
        return
    source = connection.headers.get("origin") or connection.headers.get("referer")
    if not source or not same_host(source, connection.headers.get("host", "")):
        raise HTTPException(403, f"a request signed in by the session cookie must come from this server's own "
                                 f"pages (Origin: {source or 'none'}); scripts send Authorization: Bearer <token>")


def _check_origin(websocket: WebSocket) -> None:
    """Refuse cross-site WebSocket hijacking: a browser's Origin must be this server."""
    origin = websocket.headers.get("origin")
    if origin and not same_host(origin, websocket.headers.get("host", "")):
        raise HTTPException(403, f"WebSocket from another origin ({origin}) refused")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_host(origin: str, host: str) -> bool:
    """Whether a browser ``Origin`` names the server its ``Host`` header names. Host and port are
    compared, a missing port being the origin scheme's default: a proxy may send ``example.com``
    or ``example.com:443`` for ``https://example.com``. A proxy on another port must pass the
    port on (nginx ``$http_host``, not ``$host``)."""
    parsed = urlsplit(origin)
    try:
        ours = urlsplit(f"//{host}")
        default = _DEFAULT_PORTS.get(parsed.scheme)
        theirs_port, ours_port = parsed.port or default, ours.port or default
    except ValueError:  # a port that is no number
        return False
    return bool(parsed.hostname) and parsed.hostname == ours.hostname and theirs_port == ours_port


def _cache(connection: HTTPConnection) -> _TokenCache:
    cache: _TokenCache | None = getattr(connection.app.state, "token_cache", None)
    if cache is None:
        cache = connection.app.state.token_cache = _TokenCache()
    return cache


class SessionIn(BaseModel):
    """Body of ``POST /api/session``."""

    token: str = Field(min_length=8, max_length=512)


def agent_view(agent: Agent) -> dict[str, Any]:
    """What a page may know about the signed-in person."""
    return {"name": agent.name, "role": agent.role, "tenant": agent.tenant}


def create_router() -> APIRouter:
    """``POST/DELETE /api/session`` and ``GET /api/me``."""
    router = APIRouter(tags=["auth"])

    @router.post("/api/session", responses=AUTH_RESPONSES)
    async def sign_in(body: SessionIn, request: Request, response: Response) -> dict[str, Any]:
        """Check a token and open a session: an HttpOnly cookie with a random session id (not the
        token) for the pages' sockets and audio, valid for 30 days or until signed out. A browser
        whose cookie is a live session of the same token keeps it (other tabs use it too)."""
        try:
            agent, session_id = await asyncio.to_thread(
                _sessions(request).open, body.token, max_age=timedelta(seconds=COOKIE_MAX_AGE),
                current=session_of(request))
        except AuthenticationError as exc:
            raise HTTPException(401, str(exc)) from exc
        response.set_cookie(SESSION_COOKIE, session_id, max_age=COOKIE_MAX_AGE, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")
        await asyncio.to_thread(console_of(request).agents.touch, agent.name)
        return agent_view(agent)

    @router.delete("/api/session", status_code=204)
    async def sign_out(request: Request, response: Response) -> None:
        """End the cookie's session (on every server process) and forget the cookie."""
        session_id = session_of(request)
        if session_id:
            await asyncio.to_thread(_sessions(request).close, session_id)
            _cache(request).drop(("session", session_id))
        response.delete_cookie(SESSION_COOKIE, path="/")

    @router.get("/api/me", responses=AUTH_RESPONSES)
    async def me(agent: CurrentAgent) -> dict[str, Any]:
        """The signed-in agent."""
        return agent_view(agent)

    return router

