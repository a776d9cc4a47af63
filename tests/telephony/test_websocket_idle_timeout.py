"""WebSocket calls are timed out: a socket whose call never starts is closed as a protocol error
(1008; AudioHook gets ``disconnect`` first), and a started call that receives no message for
``websocket_idle_timeout`` ends as a hang-up does, its transcript stored. A paused AudioHook
session keeps pinging, and pings count: it is not cut. Before, both kinds stayed open forever."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import connect

from telephony import codecs
from telephony.settings import TelephonySettings
from telephony.websocket import create_router
from tests.server.harness import ServerThread, new_app, scripted_services_loader
from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.http_server import serve
from tests.telephony.test_audiohook_close import API_KEY, OPEN, Client, audiohook, provoked_disconnect
from voice.config import ServerConfig
from voice.frames import CallEndedFrame, EndOfInputFrame

pytestmark = pytest.mark.e2e
START = {"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"]}}
TONE = (3000 * np.sin(2 * np.pi * 440 * np.arange(160) / 8000)).astype(np.int16)


def app_for(handler: CollectingHandler, **settings: Any) -> FastAPI:
    app = FastAPI()
    options: dict[str, Any] = {"audiohook_api_keys": {API_KEY: ""}, "audiohook_close_timeout": 0.5,
                               "websocket_start_timeout": 0.5, "websocket_idle_timeout": 0.6}
    app.include_router(create_router(handler, TelephonySettings(**(options | settings))))
    return app


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30.0))


def media(chunk: int) -> str:
    payload = base64.b64encode(codecs.ulaw_encode(TONE)).decode()
    return json.dumps({"event": "media", "media": {"track": "inbound", "chunk": str(chunk),
                                                   "timestamp": str(chunk * 20), "payload": payload}})


async def wait_closed(ws: Any, seconds: float = 5.0) -> list[Any]:
    """Messages received until the server closes the socket."""
    got: list[Any] = []
    with contextlib.suppress(websockets.exceptions.ConnectionClosed):
        async with asyncio.timeout(seconds):
            while True:
                got.append(await ws.recv())
    return got


def test_twilio_socket_without_start_is_closed_1008() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[int | None, str | None, float]:
        async with serve(app_for(handler)) as host, connect(f"ws://{host}/ws/twilio") as ws:
            began = time.monotonic()
            await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))
            await asyncio.sleep(0.3)
            await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))  # does not extend it
            await wait_closed(ws)
            return ws.close_code, ws.close_reason, time.monotonic() - began

    code, reason, took = run(scenario())
    assert (code, reason) == (1008, "no call started within 0.5 s")
    assert took < 3.0 and handler.calls == []


def test_audiohook_socket_without_open_gets_disconnect_then_1008() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        async with serve(app_for(CollectingHandler())) as host, audiohook(host) as ws:
            client = Client(ws)
            await client.send("ping")  # answered, but no open: the deadline stands
            replies = [json.loads(m) for m in await wait_closed(ws)]
            return replies, ws.close_code

    replies, code = run(scenario())
    assert [r["type"] for r in replies] == ["pong", "disconnect"]
    assert replies[1]["parameters"] == {"reason": "error", "info": "no call started within 0.5 s"}
    assert code == 1008


def test_twilio_call_that_goes_quiet_ends_as_a_hang_up() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[int | None, str | None, RecordedCall]:
        async with serve(app_for(handler)) as host, connect(f"ws://{host}/ws/twilio") as ws:
            await ws.send(json.dumps(START))
            for chunk in range(10):
                await ws.send(media(chunk))
            await wait_closed(ws)  # then nothing: no media, no stop
            call = handler.calls[0]
            await asyncio.wait_for(call.closed.wait(), 5.0)
            return ws.close_code, ws.close_reason, call

    code, reason, call = run(scenario())
    assert (code, reason) == (1000, "idle timeout")
    assert call.closed_reason == "idle timeout"
    (ended,) = call.of_type(CallEndedFrame)
    assert ended.reason == "idle timeout" and not ended.error
    assert ended.audio_time == pytest.approx(0.2, abs=0.02)
    assert [f.leg for f in call.of_type(EndOfInputFrame)] == ["inbound"]
    call.check_contract()


def test_paused_audiohook_session_that_pings_is_not_cut() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[list[str], RecordedCall]:
        async with serve(app_for(handler)) as host, audiohook(host) as ws:
            client = Client(ws)
            await client.send("open", OPEN)
            kinds = [(await client.receive())["type"]]
            await ws.send(codecs.ulaw_encode(np.repeat(TONE, 2)))
            await client.send("paused")
            for _ in range(8):  # 1.6 s paused: more than twice the idle timeout, pinging
                await asyncio.sleep(0.2)
                await client.send("ping")
                kinds.append((await client.receive())["type"])
            await client.send("resumed", {"start": "PT0.02S", "discarded": "PT1.6S"})
            await ws.send(codecs.ulaw_encode(np.repeat(TONE, 2)))
            await client.send("close", {"reason": "end"})
            kinds.append((await client.receive())["type"])
        call = handler.calls[0]
        await asyncio.wait_for(call.closed.wait(), 5.0)
        return kinds, call

    kinds, call = run(scenario())
    assert kinds == ["opened"] + ["pong"] * 8 + ["closed"]
    assert call.closed_reason == "stop"
    call.check_contract()


def test_audiohook_call_that_goes_quiet_gets_disconnect_completed() -> None:
    handler = CollectingHandler()

    async def send_audio_then_wait(ws: Any, client: Any) -> None:
        await ws.send(codecs.ulaw_encode(np.repeat(TONE, 2)))  # the call starts, then goes quiet

    replies, call = provoked_disconnect(app_for(handler, audiohook_close_timeout=5.0), handler, send_audio_then_wait)
    assert [r["type"] for r in replies] == ["opened", "disconnect", "closed"]
    assert replies[1]["parameters"] == {"reason": "completed", "info": "idle timeout"}
    assert call.closed_reason == "idle timeout"
    call.check_contract()


def test_quiet_twilio_call_is_stored_done_with_its_transcript(tmp_path: Path) -> None:
    text = "thanks for calling how can I help"
    config = ServerConfig(host="127.0.0.1", data_dir=str(tmp_path), sip_port=-1,
                          telephony={"websocket_idle_timeout": 0.5})
    services = scripted_services_loader([(0.0, 0.5, "inbound", "customer", text)])(config)

    async def call(host: str) -> int | None:
        async with connect(f"ws://{host}/ws/twilio") as ws:
            await ws.send(json.dumps(START))
            for chunk in range(60):  # 1.2 s of audio, then silence on the wire
                await ws.send(media(chunk))
            await wait_closed(ws)
            return ws.close_code

    with ServerThread(new_app(services)) as server:
        code = asyncio.run(asyncio.wait_for(call(server.host), 20.0))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not services.store.list_calls(status="done"):
            time.sleep(0.05)
    (stored,) = services.store.list_calls()
    assert code == 1000 and stored.status == "done"
    assert [s.text for s in services.store.get_transcript(stored.call_id).segments] == [text]
