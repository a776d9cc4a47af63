"""``/ws/twilio`` with a Twilio auth token: only upgrades carrying Twilio's valid
``X-Twilio-Signature`` open a call (uvicorn on 127.0.0.1, the scripted client replaying a real
SpokenWOZ call); behind a proxy, the signature of the configured public URL counts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import connect

from telephony.clients import ReplayOptions, load_call, replay_twilio
from telephony.settings import TelephonySettings
from telephony.websocket import create_router
from telephony.websocket.twilio_auth import candidate_urls, twilio_signature
from tests.telephony.fakes import CollectingHandler
from tests.telephony.http_server import serve

pytestmark = pytest.mark.e2e
TOKEN = "12345678901234567890123456789012"


def app_for(handler: CollectingHandler, **settings: str) -> FastAPI:
    app = FastAPI()
    app.include_router(create_router(handler, TelephonySettings(twilio_auth_token=TOKEN, **settings)))
    return app


async def refused(url: str, headers: dict[str, str]) -> int:
    with pytest.raises(websockets.exceptions.InvalidStatus) as denied:
        async with connect(url, additional_headers=headers):
            pass
    return denied.value.response.status_code


def test_only_twilio_signed_upgrades_open_a_call(shared_data: Path) -> None:
    audio = load_call(shared_data / "diarization" / "spokenwoz_calls_8k" / "SNG0072.wav")[:, : 8000 * 3]
    handler = CollectingHandler()

    async def scenario():
        async with serve(app_for(handler)) as host:
            url = f"ws://{host}/ws/twilio"
            statuses = [await refused(url, {}),
                        await refused(url, {"X-Twilio-Signature": twilio_signature("another-token", url)}),
                        await refused(url, {"X-Twilio-Signature": twilio_signature(TOKEN, url + "?x=1")})]
            result = await replay_twilio(url, audio, ReplayOptions(speed=0, tenant="acme"), auth_token=TOKEN)
            await asyncio.wait_for(handler.calls[0].closed.wait(), 10)
            return statuses, result

    statuses, result = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert statuses == [403, 403, 403]
    (call,) = handler.calls  # the forged and unsigned upgrades opened nothing
    assert call.started.tenant == "acme" and result.close_code == 1000


def test_behind_a_proxy_the_public_url_is_what_twilio_signed() -> None:
    handler = CollectingHandler()
    public = "wss://voice.example.com/ws/twilio"

    async def scenario():
        async with serve(app_for(handler, twilio_stream_url=public)) as host:
            local = f"ws://{host}/ws/twilio"
            own_url = await refused(local, {"X-Twilio-Signature": twilio_signature(TOKEN, local)})
            async with connect(local, additional_headers={"X-Twilio-Signature": twilio_signature(TOKEN, public)}):
                pass
            return own_url

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == 403


def test_the_request_url_is_tried_as_twilio_may_have_signed_it() -> None:
    assert candidate_urls("", "voice.example.com", "/ws/twilio", "") == [
        "wss://voice.example.com/ws/twilio", "wss://voice.example.com:443/ws/twilio",
        "ws://voice.example.com/ws/twilio", "ws://voice.example.com:80/ws/twilio"]
    assert "wss://voice.example.com/ws/twilio" in candidate_urls("", "voice.example.com:443", "/ws/twilio", "")
    assert candidate_urls("wss://a.example/ws/twilio", "10.0.0.5:8000", "/ws/twilio", "t=1") == [
        "wss://a.example/ws/twilio?t=1"]
    assert candidate_urls("", "voice.example.com:99999", "/ws/twilio", "") == []  # no URL has that Host
