"""Real SIP peers into the real server: sipp's plain G.711 call with RFC 4733 DTMF (a mixed leg:
online speaker attribution), a plain call whose RTP is real speech sent by ffmpeg, and a SIPREC
INVITE with two labelled streams (sipp + ffmpeg) whose roles come from the metadata."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.peers import need
from tests.live.events import EventClient, check_event_order, check_stored, wer
from tests.live.peers import SIPREC_SCENARIO, Prompts, run_sipp, send_rtp_with_ffmpeg
from tests.live.server import LiveServer
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer

pytestmark = pytest.mark.e2e

MAX_PROMPT_WER = 0.2
"""The Asterisk prompts are clean studio speech: tiny.en gets them word for word offline."""
SIP_PROMPTS = ["dir-intro", "queue-youarenext"]
"""A 12 s monologue (partials must show even on a loaded machine) and a short second turn."""
SIPREC_AGENT_PROMPT = "vm-rec-temp"
"""5.5 s: fits in the scenario's 8 s of media."""


def test_sipp_plain_call_transcribed_with_dtmf(
    live_server: LiveServer, supervisor: EventClient, tmp_path: Path
) -> None:
    need("sipp")

    async def scenario():
        known = await supervisor.call_ids()
        peer = asyncio.create_task(
            run_sipp(["-sn", "uac_pcap", f"127.0.0.1:{live_server.sip_port}"], tmp_path)
        )
        record = await supervisor.follow(
            lambda c: c["source"] == "sip" and c["call_id"] not in known
        )
        return record, await peer

    record, (code, output) = asyncio.run(scenario())
    assert code == 0, output
    check_event_order(record)
    check_stored(record, live_server.services.live_store)
    started = record.events[0]
    assert started["legs"] == {"mixed": "unknown"} and started["source"] == "sip"
    finals = [f for f in record.finals() if f["text"].strip()]
    assert finals, "sipp's 7 s of speech gave no transcript"
    # One channel carries both parties: the attribution labels a speaker on every final.
    assert all(f["speaker"] for f in finals) and record.roles() <= {"agent", "customer", "unknown"}
    assert [(d["digit"], d["leg"]) for d in record.of_type("dtmf")] == [("1", "mixed")]
    assert record.events[-1]["reason"] == "hangup"


def test_plain_sip_call_with_speech_from_ffmpeg(
    live_server: LiveServer, supervisor: EventClient, prompts: Prompts, tmp_path: Path
) -> None:
    need("ffmpeg")
    wav, reference = prompts.joined(SIP_PROMPTS, tmp_path / "prompts.wav")
    headers = {"X-Tenant": "acme", "X-Agent-Id": "agent-sip", "X-Leg-Role": "agent"}

    async def scenario():
        follow = asyncio.create_task(supervisor.follow(lambda c: c["agent_id"] == "agent-sip"))
        async with SipPeer(live_server.sip_port) as peer:
            _, rtp_port = await peer.invite(PCMU_OFFER.format(port=7000), headers=headers)
            await send_rtp_with_ffmpeg(wav, rtp_port)
            peer.request("BYE", cseq=2)
            await peer.response(200)
        return await follow

    record = asyncio.run(scenario())
    check_event_order(record)
    check_stored(record, live_server.services.live_store)
    started = record.events[0]
    assert (started["tenant"], started["agent_id"], started["legs"]) == (
        "acme",
        "agent-sip",
        {"agent": "agent"},
    )
    assert wer(reference, record.text()) <= MAX_PROMPT_WER, record.text()
    assert len(record.finals()) >= 2 and record.roles() == {"agent"}
    committed = [w["text"] for p in record.of_type("transcript.partial") for w in p["committed"]]
    assert committed, "a 12 s turn showed no committed words before its final"
    assert record.events[-1]["reason"] == "hangup"


def test_siprec_two_streams_roles_from_metadata(
    live_server: LiveServer, supervisor: EventClient, prompts: Prompts, tmp_path: Path
) -> None:
    need("sipp", "ffmpeg")
    args = [
        "-sf",
        str(SIPREC_SCENARIO),
        f"127.0.0.1:{live_server.sip_port}",
        "-key",
        "agent_wav",
        str(prompts.path(SIPREC_AGENT_PROMPT)),
    ]

    async def scenario():
        peer = asyncio.create_task(run_sipp(args, tmp_path))
        record = await supervisor.follow(
            lambda c: c["source"] == "siprec" and c["agent_id"] == "agent42"
        )
        return record, await peer

    record, (code, output) = asyncio.run(scenario())
    assert code == 0, output
    check_event_order(record)
    check_stored(record, live_server.services.live_store)
    started = record.events[0]
    assert (started["tenant"], started["agent_id"]) == ("acme", "agent42")
    assert started["legs"] == {"label-1": "customer", "label-2": "agent"}
    assert record.roles("label-2") == {"agent"} and record.roles("label-1") <= {"customer"}
    assert wer(prompts.text[SIPREC_AGENT_PROMPT], record.text("label-2")) <= MAX_PROMPT_WER, (
        record.text("label-2")
    )
    assert [(d["digit"], d["leg"]) for d in record.of_type("dtmf")] == [("5", "label-1")]
