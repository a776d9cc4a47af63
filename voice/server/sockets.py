"""Push an event feed to a WebSocket until the feed ends or the client goes away.

A handler that only sends never notices a client that left until its next send, and uvicorn
waits for every handler before it shuts down: a quiet feed (a supervisor's, or a call with
nothing to say) would hold the server open. So the client side is watched at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

Event = dict[str, Any]


async def stream_until_disconnected(websocket: WebSocket, feed: AsyncIterator[Event], *,
                                    closing: tuple[int, str],
                                    transform: Callable[[Event], Event | None] = lambda e: e) -> None:
    """Send ``transform(event)`` for each event (None skips it); close with ``closing`` when the feed ends."""
    sender = asyncio.create_task(_send_all(websocket, feed, closing, transform))
    receiver = asyncio.create_task(_until_disconnected(websocket))
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
        for task in (sender, receiver):
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
