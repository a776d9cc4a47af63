"""Twilio and AudioHook routes served by uvicorn, fed by the scripted clients replaying real
SpokenWOZ calls (both channels); bad input on other sockets at the same time."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import connect

from telephony.clients import ReplayOptions, load_call, replay_audiohook, replay_twilio
from telephony.settings import TelephonySettings
from telephony.websocket import create_router
from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.http_server import serve
from voice.frames import (
    CallStartedFrame,
    DtmfFrame,
    EndOfInputFrame,
    ErrorFrame,
    MarkFrame,
    TransportMessageFrame,
)
from voice.transport import CallOutput

pytestmark = pytest.mark.e2e
API_KEY = "test-key-1"
RATE = 16000


class TalkingBackHandler(CollectingHandler):
    """Records calls and, like a pipeline would, sends a mark (Twilio) or an event (AudioHook)."""

    async def open_call(self, started: CallStartedFrame, output: CallOutput) -> RecordedCall:
        call = await super().open_call(started, output)
        output.send(MarkFrame(name="greeting"))
        output.send(
            TransportMessageFrame(message={"entities": [{"type": "transcript", "data": {}}]})
        )
        return call


def app_for(handler: CollectingHandler) -> FastAPI:
    app = FastAPI()
    settings = TelephonySettings(audiohook_api_keys={API_KEY: "", "bound-key": "globex"})
    app.include_router(create_router(handler, settings))
    return app


def run(coroutine, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def envelope(audio: np.ndarray, rate: int, step: float = 0.1) -> np.ndarray:
    hop = int(rate * step)
    frames = audio[: len(audio) // hop * hop].astype(np.float64).reshape(-1, hop)
    return np.sqrt((frames**2).mean(axis=1))


def assert_leg_matches_channel(
    call: RecordedCall, leg: str, original: np.ndarray, other: np.ndarray
) -> None:
    """The leg carries this channel of the file (not the other one), at full length."""
    received = envelope(call.audio(leg), RATE)
    mine, theirs = envelope(original, 8000), envelope(other, 8000)
    n = min(len(received), len(mine))
    assert abs(len(received) - len(mine)) <= 1
    assert np.corrcoef(received[:n], mine[:n])[0, 1] > 0.98
    assert np.corrcoef(received[:n], theirs[:n])[0, 1] < 0.9


@pytest.fixture(scope="module")
def spokenwoz(shared_data: Path) -> Path:
    return shared_data / "diarization" / "spokenwoz_calls_8k"


def test_twilio_replay_of_a_real_stereo_call(spokenwoz: Path) -> None:
    audio = load_call(spokenwoz / "SNG0072.wav")  # 101.7 s, 2 channels
    handler = TalkingBackHandler()

    async def scenario():
        async with serve(app_for(handler)) as host:
            options = ReplayOptions(speed=0, tenant="acme", agent_id="agent-42", dtmf=[(2.0, "7")])
            result = await replay_twilio(f"ws://{host}/ws/twilio", audio, options)
            await asyncio.wait_for(handler.calls[0].closed.wait(), 10)
            return result

    result = run(scenario())
    (call,) = handler.calls
    started = call.started
    assert (started.source, started.tenant, started.agent_id) == ("twilio", "acme", "agent-42")
    assert started.legs == {"inbound": "customer", "outbound": "agent"}
    call.check_contract()
    assert call.closed_reason == "stop" and result.close_code == 1000
    seconds = audio.shape[1] / 8000
    for leg in ("inbound", "outbound"):
        assert call.duration(leg) == pytest.approx(seconds, abs=0.002)
    assert_leg_matches_channel(call, "inbound", audio[0], audio[1])
    assert_leg_matches_channel(call, "outbound", audio[1], audio[0])
    (dtmf,) = call.of_type(DtmfFrame)
    assert (dtmf.digit, dtmf.leg) == ("7", "inbound") and dtmf.audio_time == pytest.approx(
        2.0, abs=0.05
    )
    assert [m["mark"]["name"] for m in result.received if m["event"] == "mark"] == ["greeting"]
    assert [f.name for f in call.of_type(MarkFrame)] == ["greeting"]  # echoed after "playback"
    assert {f.leg for f in call.of_type(EndOfInputFrame)} == {"inbound", "outbound"}


def test_audiohook_replay_of_a_real_stereo_call(spokenwoz: Path) -> None:
    audio = load_call(spokenwoz / "SNG0480.wav")  # 114.6 s
    handler = TalkingBackHandler()

    async def scenario():
        async with serve(app_for(handler)) as host:
            options = ReplayOptions(
                speed=0,
                chunk_ms=100,
                tenant="acme",
                agent_id="agent-7",
                ping_every=20.0,
                pause=(30.0, 5.0),
            )
            result = await replay_audiohook(
                f"ws://{host}/ws/audiohook", audio, options, api_key=API_KEY
            )
            await asyncio.wait_for(handler.calls[0].closed.wait(), 10)
            return result

    result = run(scenario())
    (call,) = handler.calls
    assert (call.started.source, call.started.tenant, call.started.agent_id) == (
        "audiohook",
        "acme",
        "agent-7",
    )
    assert call.started.legs == {"external": "customer", "internal": "agent"}
    call.check_contract()
    types = [m["type"] for m in result.received]
    assert types[0] == "opened" and types[-1] == "closed" and types.count("pong") == 5
    assert "event" in types and [m["seq"] for m in result.received] == list(
        range(1, len(types) + 1)
    )
    seconds = audio.shape[1] / 8000
    for leg in ("external", "internal"):
        assert call.duration(leg) == pytest.approx(seconds, abs=0.002)  # the paused 5 s are silence
    paused = call.audio("external")[30 * RATE + 100 : 35 * RATE - 100]
    assert not paused.any()
    assert call.closed_reason == "stop"


def test_bad_sockets_end_only_themselves_while_a_healthy_call_runs(spokenwoz: Path) -> None:
    audio = load_call(spokenwoz / "SNG0696.wav")[:, : 8000 * 20]
    handler = CollectingHandler()

    async def bad_input(host: str) -> dict[str, object]:
        seen: dict[str, object] = {}
        async with connect(f"ws://{host}/ws/twilio") as ws:
            await ws.send("{not json")
            await ws.wait_closed()
            seen["twilio_json"] = (ws.close_code, ws.close_reason)
        async with connect(f"ws://{host}/ws/twilio") as ws:
            await ws.send(json.dumps({"event": "media", "media": {"payload": ""}}))
            await ws.wait_closed()
            seen["twilio_order"] = (ws.close_code, ws.close_reason)
        for key in ("wrong-key", None):
            headers = {"X-API-KEY": key} if key else {}
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                async with connect(f"ws://{host}/ws/audiohook", additional_headers=headers):
                    pass
            seen[f"audiohook_{key}"] = refused.value.response.status_code
        return seen

    async def scenario():
        async with serve(app_for(handler)) as host:
            healthy = asyncio.create_task(
                replay_twilio(
                    f"ws://{host}/ws/twilio", audio, ReplayOptions(speed=4.0, tenant="acme")
                )
            )
            await asyncio.sleep(0.5)
            seen = await bad_input(host)
            broken_open = asyncio.create_task(
                replay_audiohook(  # opens, then sends garbage
                    f"ws://{host}/ws/audiohook",
                    audio[:, :800],
                    ReplayOptions(speed=0),
                    api_key="bound-key",
                )
            )
            await broken_open
            async with connect(
                f"ws://{host}/ws/audiohook", additional_headers={"X-API-KEY": API_KEY}
            ) as ws:
                await ws.send(
                    json.dumps(
                        {
                            "version": "2",
                            "id": "s",
                            "type": "open",
                            "seq": 1,
                            "serverseq": 0,
                            "position": "PT0S",
                            "parameters": {
                                "conversationId": "c",
                                "media": [
                                    {
                                        "type": "audio",
                                        "format": "PCMU",
                                        "rate": 8000,
                                        "channels": ["external", "internal"],
                                    }
                                ],
                            },
                        }
                    )
                )
                await ws.send("{oops")
                replies = []
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    async for message in ws:  # raises at the end: the close code is not 1000
                        replies.append(json.loads(message))
                seen["audiohook_json"] = (
                    [r["type"] for r in replies],
                    ws.close_code,
                    ws.close_reason,
                )
            result = await healthy
            for call in handler.calls:
                await asyncio.wait_for(call.closed.wait(), 10)
            return seen, result

    seen, result = run(scenario())
    assert seen["twilio_json"][0] == 1007 and "malformed JSON" in seen["twilio_json"][1]
    assert seen["twilio_order"][0] == 1008 and "before 'start'" in seen["twilio_order"][1]
    assert seen["audiohook_wrong-key"] == 401 and seen["audiohook_None"] == 401
    assert (
        seen["audiohook_json"][0] == ["opened", "disconnect"] and seen["audiohook_json"][1] == 1007
    )
    healthy = next(c for c in handler.calls if c.started.source == "twilio")
    assert result.close_code == 1000 and healthy.closed_reason == "stop"
    for leg in ("inbound", "outbound"):
        assert healthy.duration(leg) == pytest.approx(20.0, abs=0.002)
    healthy.check_contract()
    broken = [c for c in handler.calls if c.closed_reason.startswith("error")]
    assert len(broken) == 1 and broken[0].of_type(ErrorFrame)[0].fatal
    bound = [c for c in handler.calls if c.started.tenant == "globex"]
    assert len(bound) == 1 and bound[0].closed_reason == "stop"  # key-bound tenant
    assert len(handler.calls) == 3  # healthy, key-bound short call, the one broken after open


def test_a_refused_call_is_told_so_in_protocol_terms() -> None:
    handler = CollectingHandler()
    handler.refuse = "server draining"

    async def scenario():
        async with serve(app_for(handler)) as host:
            headers = {"X-API-KEY": API_KEY}
            async with connect(f"ws://{host}/ws/audiohook", additional_headers=headers) as ws:
                await ws.send(
                    json.dumps(
                        {
                            "version": "2",
                            "id": "s",
                            "type": "open",
                            "seq": 1,
                            "serverseq": 0,
                            "position": "PT0S",
                            "parameters": {
                                "conversationId": "c",
                                "media": [
                                    {
                                        "type": "audio",
                                        "format": "PCMU",
                                        "rate": 8000,
                                        "channels": ["external"],
                                    }
                                ],
                            },
                        }
                    )
                )
                replies = []
                with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                    async for message in ws:
                        replies.append(json.loads(message))
                return replies, ws.close_code, ws.close_reason

    replies, code, reason = run(scenario())
    assert [r["type"] for r in replies] == ["opened", "disconnect"]
    assert replies[1]["parameters"]["info"] == "call refused: server draining"
    assert code == 1013 and "server draining" in reason and handler.calls == []
