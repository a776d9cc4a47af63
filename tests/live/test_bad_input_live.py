"""Bad input while healthy calls run on the same server: malformed SIP (400), an unsupported
codec (488), an unknown dialog (481), stray RTP into a live call's port (counted, dropped),
malformed WebSocket JSON (that socket closes with a reason). The healthy Twilio call loses
nothing: every turn stored, the same text as when it ran alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.fakes.peers import need
from tests.live.conftest import replay_and_follow
from tests.live.events import CallRecord, EventClient, check_event_order, check_stored, wer
from tests.live.peers import Prompts, send_rtp_with_ffmpeg
from tests.live.server import AUDIOHOOK_KEY, LiveServer
from tests.telephony.sip_peer import G729_OFFER, PCMU_OFFER, RtpSender, SipPeer

pytestmark = pytest.mark.e2e

SIP_PROMPT = "vm-nobox"
STRAY_PACKETS = 20


async def bad_sip(port: int) -> dict[str, int]:
    """A malformed INVITE, a G.729-only offer and a BYE in no dialog; the status of each answer."""
    statuses: dict[str, int] = {}
    async with SipPeer(port) as peer:
        body = PCMU_OFFER.format(port=7100)
        raw = (f"INVITE sip:rec@127.0.0.1 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{peer.local_port};branch=z9hG4bKlivebad\r\n"
               f"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:rec@127.0.0.1>\r\n"
               f"Call-ID: live-bad-1\r\n"
               f"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
               f"Content-Length: {len(body) + 500}\r\n\r\n{body}")  # fmt: skip
        peer.send_raw(raw.encode())
        statuses["malformed"] = (await peer.response()).status
        peer.call_id = "live-bad-2@127.0.0.1"
        peer.request("INVITE", body=G729_OFFER.format(port=7102))
        statuses["g729"] = (await peer.response(488)).status
        peer.request("BYE", call_id="nobody@127.0.0.1", to_tag="nope", cseq=2)
        statuses["unknown_dialog"] = (await peer.response()).status
    return statuses


async def bad_websockets(host: str) -> dict[str, tuple]:
    """Malformed JSON on a Twilio socket and on an open AudioHook session."""
    seen: dict[str, tuple] = {}
    async with connect(f"ws://{host}/ws/twilio") as ws:
        await ws.send("{not json")
        await ws.wait_closed()
        seen["twilio"] = (ws.close_code, ws.close_reason)
    open_message = {
        "version": "2",
        "id": "bad",
        "type": "open",
        "seq": 1,
        "serverseq": 0,
        "position": "PT0S",
        "parameters": {
            "conversationId": "c-bad",
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
    async with connect(
        f"ws://{host}/ws/audiohook", additional_headers={"X-API-KEY": AUDIOHOOK_KEY}
    ) as ws:
        await ws.send(json.dumps(open_message))
        await ws.send("{oops")
        replies = []
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            async for message in ws:
                replies.append(json.loads(message)["type"])
        seen["audiohook"] = (replies, ws.close_code, ws.close_reason)
    return seen


async def sip_call_with_stray_rtp(server: LiveServer, wav: Path) -> int:
    """A healthy plain SIP call (ffmpeg speech) into whose RTP port a stranger sends packets."""
    headers = {"X-Agent-Id": "agent-sip-healthy", "X-Leg-Role": "customer"}
    async with SipPeer(server.sip_port) as peer:
        _, rtp_port = await peer.invite(PCMU_OFFER.format(port=7104), headers=headers)
        speech = asyncio.create_task(send_rtp_with_ffmpeg(wav, rtp_port))
        await _latched(server, peer.call_id)  # ffmpeg is the call's source before the stranger sends
        async with RtpSender(rtp_port, ssrc=0xBAD) as stray:
            for seq in range(STRAY_PACKETS):
                stray.audio(seq, np.full(160, 20000, np.int16))
        await speech
        peer.request("BYE", cseq=2)
        await peer.response(200)
    return rtp_port


async def _latched(server: LiveServer, sip_call_id: str) -> None:
    """Wait until the call's RTP receiver took its first packet (ffmpeg starts slowly on a loaded
    machine: a fixed one-second sleep let the stranger's packets arrive first and be latched)."""
    async with asyncio.timeout(20.0):
        while True:
            call = server.sip.calls.get(sip_call_id)
            if call is not None and any(r.stats.packets for r in call.receivers.values()):
                return
            await asyncio.sleep(0.05)


def test_bad_input_beside_healthy_calls(
    live_server: LiveServer,
    supervisor: EventClient,
    spokenwoz_clip,
    twilio_alone: CallRecord,
    prompts: Prompts,
    tmp_path: Path,
) -> None:
    need("ffmpeg")
    wav = prompts.path(SIP_PROMPT)
    stray_before = live_server.sip.stats.stray_rtp

    async def scenario():
        healthy = asyncio.create_task(
            replay_and_follow(
                live_server, supervisor, spokenwoz_clip, agent_id="agent-healthy", dtmf=[(2.0, "7")]
            )
        )
        sip_record = asyncio.create_task(
            supervisor.follow(lambda c: c["agent_id"] == "agent-sip-healthy")
        )
        await asyncio.sleep(2.0)  # the Twilio call is streaming
        statuses = await bad_sip(live_server.sip_port)
        sockets = await bad_websockets(live_server.host)
        await sip_call_with_stray_rtp(live_server, wav)
        return statuses, sockets, await sip_record, await healthy

    statuses, sockets, sip_record, (record, result) = asyncio.run(scenario())
    assert statuses == {"malformed": 400, "g729": 488, "unknown_dialog": 481}
    assert sockets["twilio"][0] == 1007 and "malformed JSON" in sockets["twilio"][1]
    assert sockets["audiohook"][:2] == (["opened", "disconnect"], 1007)
    assert "malformed JSON" in sockets["audiohook"][2]

    report = next(r for r in live_server.sip.reports if r.call_id == sip_record.call_id)
    (leg,) = report.legs.values()
    assert leg.stray == STRAY_PACKETS and leg.jitter.lost == 0
    assert live_server.sip.stats.stray_rtp - stray_before == STRAY_PACKETS
    check_event_order(sip_record)
    assert wer(prompts.text[SIP_PROMPT], sip_record.text()) <= 0.2, (
        sip_record.text()
    )  # no stray tone mixed in

    assert result.close_code == 1000
    check_event_order(record)
    check_stored(record, live_server.services.live_store)  # every turn in the database
    assert not record.of_type("error")
    for leg_name in ("inbound", "outbound"):
        assert record.text(leg_name) == twilio_alone.text(leg_name), leg_name
    turns = sorted((f["leg"], f["start"], f["end"]) for f in record.finals())
    assert turns == sorted((f["leg"], f["start"], f["end"]) for f in twilio_alone.finals())
