"""``WS /ws/supervisor``: every call's milestones, live, for the supervisor view.

Only the events a wall of calls needs are forwarded (start, final turns, intents, suggestions,
end); partial transcripts stay on the agents' sockets, which keeps this socket cheap with many
calls. Each message is a compact ``call.update`` built from the hub event.

The turns' text is what makes the wall useful (the latest line of each call), so it is sent, and
logged: the first update of a call that carries what was said or what was made of it (a final
turn, an intent, a suggestion) writes one ``stream_call`` entry for this supervisor and call
before it is sent, once per call and socket (a reconnect within ``REPEAT_WINDOW`` is folded by
``voice.server.access``), as the call's own event streams do when they open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from fastapi import APIRouter, WebSocket

from voice.server.access import log_access
from voice.server.auth import authorize_websocket, revoked
from voice.server.console import console_of
from voice.server.sockets import stream_until_disconnected
from voice.store.agents import Agent

FORWARDED = {"call.started", "transcript.final", "nlu", "suggestion", "call.ended"}
CONTENT = frozenset({"transcript.final", "nlu", "suggestion"})
"""Forwarded events that carry the call's words or what was made of them (logged, see above)."""
_LOGGED_KEPT = 10_000
"""Calls a socket remembers as logged; past that it starts afresh (the access log folds repeats)."""


def summarize(event: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's view of one event."""
    kind = event["type"]
    update: dict[str, Any] = {"type": kind, "call_id": event.get("call_id"), "seq": event.get("seq"),
                              "emitted_at": event.get("emitted_at"), "audio_time": event.get("audio_time")}
    if kind == "call.started":
        update.update(agent_id=event.get("agent_id"), tenant=event.get("tenant"), source=event.get("source"))
    elif kind == "transcript.final":
        update.update(role=event.get("role"), text=event.get("text"))
    elif kind == "nlu":
        update.update(role=event.get("role"), intent=event.get("intent"), intent_score=event.get("intent_score"))
    elif kind == "suggestion":
        top = (event.get("suggestions") or [{}])[0]
        update.update(text=top.get("text"), action=top.get("action"),
                      latency_ms=(event.get("latency_ms") or {}).get("total"))
    elif kind == "call.ended":
        update.update(reason=event.get("reason"))
    return update


def _visible_to(agent: Agent, registry: Any) -> Any:
    def transform(event: dict[str, Any]) -> dict[str, Any] | None:
        if event.get("type") not in FORWARDED:
            return None
        state = registry.get(event.get("call_id"))
        tenant = state.tenant if state is not None else event.get("tenant")
        if agent.tenant is not None and tenant != agent.tenant:
            return None
        return summarize(event)

    return transform


async def supervisor_updates(websocket: WebSocket, agent: Agent) -> AsyncIterator[dict[str, Any]]:
    """The updates ``agent`` may see, each call's first one with content logged before it is sent."""
    live = console_of(websocket).live
    visible = _visible_to(agent, live.registry)
    logged: set[str] = set()
    async with aclosing(live.hub.subscribe_all()) as feed:
        async for event in feed:
            update = visible(event)
            if update is None:
                continue
            call_id = update.get("call_id")
            if update["type"] in CONTENT and isinstance(call_id, str) and call_id not in logged:
                if len(logged) >= _LOGGED_KEPT:
                    logged.clear()
                logged.add(call_id)
                await log_access(websocket, agent, "stream_call", call_id)
            yield update


def create_router() -> APIRouter:
    """The supervisor socket."""
    router = APIRouter()

    @router.websocket("/ws/supervisor")
    async def supervisor_feed(websocket: WebSocket) -> None:
        """Milestones of every call the supervisor may see, as JSON ``call.update`` messages."""
        agent = await authorize_websocket(websocket, supervisor=True)
        if agent is None:
            return
        await websocket.accept()
        # The hub drops a subscriber that falls too far behind: the page reconnects on 1013.
        await stream_until_disconnected(websocket, supervisor_updates(websocket, agent),
                                        closing=(1013, "fell behind; reconnect"), revoked=revoked(websocket, agent))

    return router
