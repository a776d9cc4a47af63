"""AudioHook: a refused call is reported as ``disconnect`` reason ``error``; audio after ``closed``
is ignored (as in the reference implementation), so a clean end stays clean."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from telephony import codecs
from telephony.settings import TelephonySettings
from telephony.websocket.audiohook import AudioHookSerializer
from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.http_server import serve
from tests.telephony.test_audiohook_close import OPEN, SESSION, Client, app_for, audiohook
from voice.frames import CallEndedFrame, CallStartedFrame, EndOfInputFrame, ErrorFrame

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


@pytest.mark.e2e
def test_a_refused_call_is_disconnected_with_reason_error() -> None:
    handler = CollectingHandler()
    handler.refuse = "the server is draining"

    async def scenario() -> list[dict[str, Any]]:
        async with serve(app_for(handler)) as host, audiohook(host) as ws:
            client = Client(ws)
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
        async with serve(app_for(handler)) as host, audiohook(host) as ws:
            client = Client(ws)
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
