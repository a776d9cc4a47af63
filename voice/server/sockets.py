"""Push an event feed to a WebSocket until the feed ends, the client goes away or its access is
revoked.

A handler that only sends never notices a client that left until its next send, and uvicorn
waits for every handler before it shuts down: a quiet feed (a supervisor's, or a call with
nothing to say) would hold the server open. So the client side is watched at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

Event = dict[str, Any]
REVOKED = (1008, "access revoked")
"""Close code and reason once the token stopped working (the page's reconnect then asks why)."""


async def stream_until_disconnected(websocket: WebSocket, feed: AsyncIterator[Event], *,
                                    closing: tuple[int, str], revoked: Awaitable[None],
                                    transform: Callable[[Event], Event | None] = lambda e: e) -> None:
    """Send ``transform(event)`` for each event (None skips it); close with ``closing`` when the feed
    ends, and with :data:`REVOKED` once ``revoked`` (``voice.server.auth.revoked``) returns."""
    tasks = (asyncio.create_task(_send_all(websocket, feed, closing, transform)),
             asyncio.create_task(_until_disconnected(websocket)),
             asyncio.create_task(_close_when(websocket, revoked)))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await task


async def _send_all(websocket: WebSocket, feed: AsyncIterator[Event], closing: tuple[int, str],
                    transform: Callable[[Event], Event | None]) -> None:
    async for event in feed:
        message = transform(event)
        if message is not None:
            await websocket.send_text(json.dumps(message))
    await websocket.close(*closing)


async def _until_disconnected(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


async def _close_when(websocket: WebSocket, revoked: Awaitable[None]) -> None:
    await revoked
    await websocket.close(*REVOKED)
