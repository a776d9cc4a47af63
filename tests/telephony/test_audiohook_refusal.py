"""AudioHook: a refused call is reported as ``disconnect`` reason ``error``; audio after ``closed``
is ignored (as in the reference implementation), so a clean end stays clean."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from telephony import codecs
from telephony.settings import TelephonySettings
from telephony.websocket import create_router
from telephony.websocket.audiohook import AudioHookSerializer
from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.http_server import serve
from voice.frames import CallEndedFrame, CallStartedFrame, EndOfInputFrame, ErrorFrame

API_KEY = "k1"
SESSION = "11111111-2222-3333-4444-555555555555"
OPEN = {
    "organizationId": "o",
    "conversationId": "c0ffee00-0000-0000-0000-000000000001",
    "participant": {"id": "p"},
    "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}],
}
AUDIO = bytes(codecs.ulaw_encode(np.full(1600, 500, dtype=np.int16)))  # 100 ms, both channels


def _message(kind: str, seq: int, serverseq: int, parameters: dict[str, Any] | None = None) -> str:
    return json.dumps({"version": "2", "id": SESSION, "type": kind, "seq": seq, "serverseq": serverseq,
                       "position": "PT0S", "parameters": parameters or {}})


def _opened() -> AudioHookSerializer:
    serializer = AudioHookSerializer(TelephonySettings(), session_id=SESSION)
    frames = serializer.deserialize(_message("open", 1, 0, OPEN))
    assert isinstance(frames[0], CallStartedFrame)
    assert [json.loads(r)["type"] for r in serializer.take_replies()] == ["opened"]
    return serializer


@pytest.mark.unit
def test_an_error_end_is_a_disconnect_with_reason_error() -> None:
    serializer = _opened()
    message = serializer.serialize(CallEndedFrame(call_id="c", reason="call refused: draining", error=True))
    assert isinstance(message, str)
    disconnect = json.loads(message)
    assert disconnect["type"] == "disconnect"
    assert disconnect["parameters"] == {"reason": "error", "info": "call refused: draining"}


@pytest.mark.unit
def test_a_normal_end_is_still_completed() -> None:
    message = _opened().serialize(CallEndedFrame(call_id="c", reason="agent left"))
    assert isinstance(message, str)
    assert json.loads(message)["parameters"] == {"reason": "completed", "info": "agent left"}


@pytest.mark.unit
def test_audio_after_closed_is_ignored() -> None:
    serializer = _opened()
    assert serializer.deserialize(AUDIO)
    frames = serializer.deserialize(_message("close", 2, 1, {"reason": "end"}))
    assert {f.leg for f in frames if isinstance(f, EndOfInputFrame)} == {"external", "internal"}
    assert [json.loads(r)["type"] for r in serializer.take_replies()] == ["closed"]
    assert serializer.deserialize(AUDIO) == []  # no ProtocolError
    assert serializer.take_replies() == [] and serializer.ended


def _app(handler: CollectingHandler) -> FastAPI:
    app = FastAPI()
    settings = TelephonySettings(audiohook_api_keys={API_KEY: ""})
    app.include_router(create_router(handler, settings))
    return app


class _Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.seq, self.serverseq = ws, 0, 0

    async def send(self, kind: str, parameters: dict[str, Any] | None = None) -> None:
        self.seq += 1
        await self.ws.send(_message(kind, self.seq, self.serverseq, parameters))

    async def receive(self) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), 3.0))
        self.serverseq = message["seq"]
        return dict(message)


def _connect(host: str) -> Any:
    headers = {"X-API-KEY": API_KEY, "Audiohook-Session-Id": SESSION}
    return connect(f"ws://{host}/ws/audiohook", additional_headers=headers)


@pytest.mark.e2e
def test_a_refused_call_is_disconnected_with_reason_error() -> None:
    handler = CollectingHandler()
    handler.refuse = "the server is draining"

    async def scenario() -> list[dict[str, Any]]:
        async with serve(_app(handler)) as host, _connect(host) as ws:
            client = _Client(ws)
            await client.send("open", OPEN)
            replies = [await client.receive(), await client.receive()]
            await client.send("close", {"reason": "disconnect"})
            replies.append(await client.receive())
            return replies

    replies = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert [r["type"] for r in replies] == ["opened", "disconnect", "closed"]
    assert replies[1]["parameters"]["reason"] == "error"
    assert "the server is draining" in replies[1]["parameters"]["info"]
    assert handler.calls == []


@pytest.mark.e2e
def test_audio_after_closed_keeps_a_clean_end() -> None:
    handler = CollectingHandler()

    async def scenario() -> tuple[list[str], int | None, RecordedCall]:
        async with serve(_app(handler)) as host, _connect(host) as ws:
            client = _Client(ws)
            await client.send("open", OPEN)
            kinds = [(await client.receive())["type"]]
            await ws.send(AUDIO)
            await client.send("close", {"reason": "end"})
            kinds.append((await client.receive())["type"])
            await ws.send(AUDIO)  # still in flight when closed arrived
            await client.send("ping")  # proof the socket lives on: no 1008 for the audio
            call = (await handler.wait_for_calls(1))[0]
            await ws.close()
            await asyncio.wait_for(call.closed.wait(), 5)
            return kinds, ws.close_code, call

    kinds, code, call = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert kinds == ["opened", "closed"]
    assert code == 1000
    assert call.closed_reason == "stop"
    assert not call.of_type(ErrorFrame)
    call.check_contract()
