"""Offers that can never carry audio to us get 400 before any call opens: no m= line, garbage,
video only, audio we would never receive (``recvonly``), or no DTLS fingerprint. aiortc accepted
each, so a call opened and the connect watchdog stored it 20 s later as an empty "done" call (a
missing fingerprint also left aiortc's "Task exception was never retrieved ... AssertionError")."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from fastapi import FastAPI

from telephony.webrtc import create_router
from tests.fakes.peers import ice_on_loopback_only
from tests.telephony.fakes import CollectingHandler
from tests.telephony.http_server import serve

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    ice_on_loopback_only(monkeypatch)


async def offer_of(kind: str, direction: str = "sendonly") -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def offers() -> dict[str, str]:
    audio = await offer_of("audio")
    return {
        "garbage": "hello",
        "session only": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        "video only": await offer_of("video"),
        "audio not sent": await offer_of("audio", "recvonly"),
        "no fingerprint": "".join(line for line in audio.splitlines(keepends=True)
                                  if not line.startswith("a=fingerprint")),
        "usable": audio,
    }


def test_unusable_offers_get_400_and_open_no_call() -> None:
    handler = CollectingHandler()
    app = FastAPI()
    app.include_router(create_router(handler))

    async def scenario() -> tuple[dict[str, Any], int]:
        statuses: dict[str, Any] = {}
        async with serve(app) as host, httpx.AsyncClient() as client:
            for name, sdp in (await offers()).items():
                response = await client.post(f"http://{host}/webrtc/offer", json={"sdp": sdp})
                statuses[name] = (response.status_code, response.json().get("detail", ""))
            calls = len(handler.calls)  # only the usable offer's
        await asyncio.sleep(0)
        return statuses, calls

    statuses, calls = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert {name: code for name, (code, _) in statuses.items()} == {
        "garbage": 400, "session only": 400, "video only": 400, "audio not sent": 400,
        "no fingerprint": 400, "usable": 200,
    }
    assert "no m= line" in statuses["garbage"][1]
    assert "sends no audio" in statuses["video only"][1]
    assert "a=fingerprint" in statuses["no fingerprint"][1]
    assert calls == 1
