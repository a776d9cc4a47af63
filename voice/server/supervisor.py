"""``WS /ws/supervisor``: every call's milestones, live, for the supervisor view.

Only the events a wall of calls needs are forwarded (start, final turns, intents, suggestions,
end); partial transcripts stay on the agents' sockets, which keeps this socket cheap with many
calls. Each message is a compact ``call.update`` built from the hub event.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, WebSocket

from voice.server.auth import authorize_websocket, revoked
from voice.server.console import console_of
from voice.server.sockets import stream_until_disconnected
from voice.store.agents import Agent

FORWARDED = {"call.started", "transcript.final", "nlu", "suggestion", "call.ended"}


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
        live = console_of(websocket).live
        # The hub drops a subscriber that falls too far behind: the page reconnects on 1013.
        await stream_until_disconnected(websocket, live.hub.subscribe_all(), closing=(1013, "fell behind; reconnect"),
                                        revoked=revoked(websocket, agent), transform=_visible_to(agent, live.registry))

    return router
