"""AudioHook close transaction over a real socket (uvicorn on 127.0.0.1).

As in the reference implementation: after our ``disconnect`` the server keeps the socket open,
answers the client's ``close`` with ``closed``, and the client closes the socket; a client that
never sends ``close`` is cut off after the transport's close timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from telephony.clients import ReplayOptions, replay_audiohook
from telephony.settings import TelephonySettings
from telephony.websocket import create_router
from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.http_server import serve
from voice.frames import CallStartedFrame, EndOfInputFrame, ErrorFrame
from voice.transport import CallOutput

pytestmark = pytest.mark.e2e
API_KEY = "k1"
SESSION = "11111111-2222-3333-4444-555555555555"
OPEN = {
    "organizationId": "o",
    "conversationId": "c0ffee00-0000-0000-0000-000000000001",
    "participant": {"id": "p"},
    "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}],
}


def app_for(handler: CollectingHandler, close_timeout: float = 5.0) -> FastAPI:
    app = FastAPI()
    settings = TelephonySettings(audiohook_api_keys={API_KEY: ""}, audiohook_close_timeout=close_timeout)
    app.include_router(create_router(handler, settings))
    return app


class Client:
    """A minimal AudioHook client that lets the test decide each step."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.seq, self.serverseq = ws, 0, 0

    async def send(self, kind: str, parameters: dict[str, Any] | None = None) -> None:
        self.seq += 1
        message = {"version": "2", "id": SESSION, "type": kind, "seq": self.seq}
        message |= {"serverseq": self.serverseq, "position": "PT0S", "parameters": parameters or {}}
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), 3.0))
        self.serverseq = message["seq"]
        return message


def audiohook(host: str) -> Any:
    headers = {"X-API-KEY": API_KEY, "Audiohook-Session-Id": SESSION}
    return connect(f"ws://{host}/ws/audiohook", additional_headers=headers)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30.0))


Provoke = Callable[[ClientConnection, "Client"], Awaitable[Any]]


def provoked_disconnect(app: FastAPI, handler: CollectingHandler,
                        provoke: Provoke) -> tuple[list[dict[str, Any]], RecordedCall]:
    """Open a session, let ``provoke`` make the server say goodbye (its reply is read as the
    next message), answer with ``close``: the three replies (opened, disconnect, closed) and the
    handler's call once closed."""

    async def scenario() -> tuple[list[dict[str, Any]], RecordedCall]:
        async with serve(app) as host, audiohook(host) as ws:
            client = Client(ws)
            await client.send("open", OPEN)
            replies = [await client.receive()]
            await provoke(ws, client)
            replies.append(await client.receive())
            await client.send("close", {"reason": "end"})
            replies.append(await client.receive())
        call = handler.calls[0]
        await asyncio.wait_for(call.closed.wait(), 5.0)
        return replies, call

    return run(scenario())


def test_server_hang_up_waits_for_close_and_answers_closed() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[list[str], int | None, RecordedCall]:
        async with serve(app_for(handler)) as host, audiohook(host) as ws:
            client = Client(ws)
            await client.send("open", OPEN)
            seen = [(await client.receive())["type"]]
            call = (await handler.wait_for_calls(1))[0]
            call.output.hang_up("agent left")
            seen.append((await client.receive())["type"])
            await client.send("close", {"reason": "disconnect"})
            seen.append((await client.receive())["type"])
            await ws.close()
            await asyncio.wait_for(call.closed.wait(), 5)
            return seen, ws.close_code, call

    seen, code, call = run(scenario())
    assert seen == ["opened", "disconnect", "closed"]
    assert code == 1000
    assert call.closed_reason == "hang up: agent left"
    assert call.of_type(EndOfInputFrame)  # the close flushed both legs
    call.check_contract()


def test_after_a_protocol_error_the_client_close_still_gets_closed() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[list[dict[str, Any]], RecordedCall]:
        async with serve(app_for(handler)) as host, audiohook(host) as ws:
            client = Client(ws)
            await client.send("open", OPEN)
            replies = [await client.receive()]
            client.seq += 5  # a gap: protocol error
            await client.send("ping")
            replies.append(await client.receive())
            await ws.send(bytes(160))  # audio after the error is dropped, not answered
            await client.send("close", {"reason": "error"})
            replies.append(await client.receive())
            await ws.close()
            call = handler.calls[0]
            await asyncio.wait_for(call.closed.wait(), 5)
            return replies, call

    replies, call = run(scenario())
    assert [r["type"] for r in replies] == ["opened", "disconnect", "closed"]
    assert replies[1]["parameters"]["reason"] == "error"
    assert call.closed_reason is not None and call.closed_reason.startswith("error: seq")
    assert call.of_type(ErrorFrame)[0].fatal


def test_a_client_that_never_closes_is_cut_off_after_the_timeout() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[list[str], int | None, float, RecordedCall]:
        async with serve(app_for(handler, close_timeout=0.5)) as host, audiohook(host) as ws:
            client = Client(ws)
            await client.send("open", OPEN)
            seen = [(await client.receive())["type"]]
            call = (await handler.wait_for_calls(1))[0]
            loop = asyncio.get_running_loop()
            started = loop.time()
            call.output.hang_up("agent left")
            seen.append((await client.receive())["type"])
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            waited = loop.time() - started
            await asyncio.wait_for(call.closed.wait(), 5)
            return seen, ws.close_code, waited, call

    seen, code, waited, call = run(scenario())
    assert seen == ["opened", "disconnect"]
    assert code == 1000 and 0.4 <= waited < 3.0
    assert call.closed_reason == "hang up: agent left"


class HangsUpSoon(CollectingHandler):
    """Like a pipeline that ends the call 0.3 s in."""

    async def open_call(self, started: CallStartedFrame, output: CallOutput) -> RecordedCall:
        call = await super().open_call(started, output)
        asyncio.get_running_loop().call_later(0.3, output.hang_up, "done")
        return call


def test_the_scripted_client_answers_a_disconnect_with_close() -> None:
    handler = HangsUpSoon()
    audio = (np.sin(np.arange(8000 * 4) / 8.0) * 3000).astype(np.int16)
    stereo = np.stack([audio, audio])

    async def scenario() -> Any:
        async with serve(app_for(handler)) as host:
            options = ReplayOptions(chunk_ms=100, speed=1.0, ping_every=0)
            return await replay_audiohook(f"ws://{host}/ws/audiohook", stereo, options, api_key=API_KEY)

    result = run(scenario())
    kinds = [m["type"] for m in result.received]
    assert kinds == ["opened", "disconnect", "closed"]
    assert result.close_code == 1000
    assert result.wall_seconds < 3.0  # stopped streaming at the disconnect
    assert handler.calls[0].closed_reason == "hang up: done"
