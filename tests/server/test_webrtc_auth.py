"""``POST /webrtc/offer`` on the live server: only a signed-in agent opens a softphone call, for
themselves; a supervisor for an agent of their tenant. Before, any client could open a call on
any agent's console and tenant."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from tests.voice.console_app import console_env
from voice.errors import VoiceError
from voice.frames import CallStartedFrame

pytestmark = pytest.mark.unit
BAD_SDP = "v=0 not an offer"


def _offer_sdp() -> str:
    async def make() -> str:
        pc = RTCPeerConnection()
        pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


def test_a_softphone_call_belongs_to_the_signed_in_agent(tmp_path: Path) -> None:
    with console_env(tmp_path) as env:
        def post(who: str | None, sdp: str = BAD_SDP, **fields: str) -> int:
            headers = env.headers(who) if who else {}
            answer = env.client.post("/webrtc/offer", json={"sdp": sdp, **fields}, headers=headers)
            return answer.status_code

        refused = [post(None, agent_id="alice"), post("alice", agent_id="bob"),
                   post("gus", tenant="acme", agent_id="carol")]
        let_through = [post("gus", tenant="globex", agent_id="carol"), post("sue", agent_id="bob")]
        opened: list[CallStartedFrame] = []

        async def open_call(started: CallStartedFrame, output: object) -> None:
            opened.append(started)  # the call as the pipeline would get it; refused to keep it short
            raise VoiceError("not in this test")

        env.services.manager.open_call = open_call  # type: ignore[method-assign]
        offer = env.client.post("/webrtc/offer", json={"sdp": _offer_sdp(), "tenant": "acme"},
                                headers=env.headers("alice"))
    assert refused == [401, 403, 403]
    assert let_through == [400, 400]  # authorized; then the SDP itself is refused
    assert offer.status_code == 503 and "not in this test" in offer.text
    assert [(s.source, s.tenant, s.agent_id) for s in opened] == [("webrtc", "acme", "alice")]
