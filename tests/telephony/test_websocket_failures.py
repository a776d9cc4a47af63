"""WebSocket ingresses: errors of our own end the call with 1011 (AudioHook after a
``disconnect`` with reason ``error``), an oversize AudioHook message is announced with
``disconnect`` before the 1009 close, and AudioHook prefers a stereo offer over a mono one."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import connect

from telephony.settings import TelephonySettings
from telephony.websocket import create_router
from telephony.websocket.audiohook import AudioHookSerializer
from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.http_server import serve
from tests.telephony.test_audiohook_close import API_KEY, OPEN, SESSION, Client, audiohook, provoked_disconnect
from voice.frames import CallStartedFrame, ErrorFrame
from voice.transport import CallOutput

pytestmark = pytest.mark.e2e
TWILIO_START = {"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"]}}


class CrashingHandler(CollectingHandler):
    """``open_call`` fails with a bug of ours, not a VoiceError (a full disk, a model that fails to load)."""

    async def open_call(self, started: CallStartedFrame, output: CallOutput) -> RecordedCall:
        raise OSError(28, "No space left on device")


def app_for(handler: CollectingHandler, **settings: Any) -> FastAPI:
    app = FastAPI()
    options: dict[str, Any] = {"audiohook_api_keys": {API_KEY: ""}, "audiohook_close_timeout": 0.5}
    app.include_router(create_router(handler, TelephonySettings(**(options | settings))))
    return app


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30.0))


async def drain(client: Client) -> list[dict[str, Any]]:
    """Every message until the server closes the socket."""
    got: list[dict[str, Any]] = []
    with contextlib.suppress(websockets.exceptions.ConnectionClosed):
        while True:
            got.append(await client.receive())
    return got


def test_audiohook_open_call_crash_is_disconnect_error_then_1011() -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int | None, str | None]:
        async with serve(app_for(CrashingHandler())) as host, audiohook(host) as ws:
            client = Client(ws)
            await client.send("open", OPEN)
            replies = await drain(client)  # no close from us: cut off after the close timeout
            return replies, ws.close_code, ws.close_reason

    replies, code, reason = run(scenario())
    assert [r["type"] for r in replies] == ["opened", "disconnect"]
    assert replies[1]["parameters"] == {"reason": "error", "info": "internal error: OSError"}
    assert (code, reason) == (1011, "internal error: OSError")


def test_audiohook_open_call_crash_still_answers_close() -> None:
    async def scenario() -> list[str]:
        async with serve(app_for(CrashingHandler(), audiohook_close_timeout=5.0)) as host:
            async with audiohook(host) as ws:
                client = Client(ws)
                await client.send("open", OPEN)
                kinds = [(await client.receive())["type"], (await client.receive())["type"]]
                await client.send("close", {"reason": "disconnect"})
                kinds.append((await client.receive())["type"])
                return kinds

    assert run(scenario()) == ["opened", "disconnect", "closed"]


def test_twilio_open_call_crash_closes_1011() -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with serve(app_for(CrashingHandler())) as host:
            async with connect(f"ws://{host}/ws/twilio") as ws:
                await ws.send(json.dumps(TWILIO_START))
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5.0)
                return ws.close_code, ws.close_reason

    assert run(scenario()) == (1011, "internal error: OSError")


def test_audiohook_oversize_message_is_disconnect_error_then_closed() -> None:
    handler = CollectingHandler()

    async def oversize(ws: Any, client: Client) -> None:
        await ws.send(b"\xff" * 8192)

    app = app_for(handler, max_message_bytes=4096, audiohook_close_timeout=5.0)
    replies, call = provoked_disconnect(app, handler, oversize)
    assert [r["type"] for r in replies] == ["opened", "disconnect", "closed"]
    assert replies[1]["parameters"] == {"reason": "error", "info": "message of 8192 bytes is too large"}
    assert call.closed_reason == "error: message of 8192 bytes is too large"
    assert len(call.of_type(ErrorFrame)) == 1
    call.check_contract()


def test_audiohook_oversize_message_without_close_is_1009() -> None:
    async def scenario() -> tuple[list[str], int | None]:
        async with serve(app_for(CollectingHandler(), max_message_bytes=4096)) as host:
            async with audiohook(host) as ws:
                client = Client(ws)
                await client.send("open", OPEN)
                await client.receive()
                await ws.send(b"\xff" * 8192)
                await ws.send(b"\xff" * 8192)  # a second one while we await the close: no new error
                return [r["type"] for r in await drain(client)], ws.close_code

    assert run(scenario()) == (["disconnect"], 1009)


def test_twilio_oversize_message_is_still_a_plain_1009() -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with serve(app_for(CollectingHandler(), max_message_bytes=4096)) as host:
            async with connect(f"ws://{host}/ws/twilio") as ws:
                await ws.send(json.dumps(TWILIO_START))
                await ws.send("x" * 8192)
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5.0)
                return ws.close_code, ws.close_reason

    assert run(scenario()) == (1009, "message of 8192 bytes is too large")


def _chosen_media(offer: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    serializer = AudioHookSerializer(TelephonySettings(), session_id=SESSION)
    message = {
        "version": "2",
        "id": SESSION,
        "type": "open",
        "seq": 1,
        "serverseq": 0,
        "position": "PT0S",
        "parameters": {"conversationId": "c", "media": offer},
    }
    (started,) = serializer.deserialize(json.dumps(message))
    assert isinstance(started, CallStartedFrame)
    (media,) = json.loads(serializer.take_replies()[0])["parameters"]["media"]
    return media, dict(started.legs)


def _offer(fmt: str, channels: list[str]) -> dict[str, Any]:
    return {"type": "audio", "format": fmt, "channels": channels, "rate": 8000}


def test_audiohook_prefers_stereo_l16_over_mono_pcmu() -> None:
    stereo = ["external", "internal"]
    media, legs = _chosen_media([_offer("L16", stereo), _offer("PCMU", ["external"])])
    assert (media["format"], media["channels"]) == ("L16", stereo)
    assert legs == {"external": "customer", "internal": "agent"}
    media, _ = _chosen_media([_offer("PCMU", ["external"]), _offer("L16", stereo)])
    assert (media["format"], media["channels"]) == ("L16", stereo)


def test_audiohook_prefers_pcmu_at_equal_channels() -> None:
    stereo = ["external", "internal"]
    media, _ = _chosen_media([_offer("L16", stereo), _offer("PCMU", stereo)])
    assert (media["format"], media["channels"]) == ("PCMU", stereo)
    media, _ = _chosen_media([_offer("L16", ["external"]), _offer("PCMU", ["external"])])
    assert media["format"] == "PCMU"
