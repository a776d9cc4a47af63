"""The SIP UAS/SRS against real peers on 127.0.0.1: sipp (plain call and SIPREC with ffmpeg as
the second stream) and a scripted peer for TCP, CANCEL, refusals and bad input."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.fakes.peers import SIPP_PCAPS, need
from tests.telephony.fakes import RecordedCall
from tests.telephony.sip_peer import G729_OFFER, PCMU_OFFER, RtpSender, SipPeer, sip_server
from voice.frames import AudioFrame, DtmfFrame

pytestmark = pytest.mark.e2e
SIPREC_SCENARIO = Path(__file__).parent / "sipp" / "siprec_uac.xml"
RATE = 16000


def run(coroutine, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def sipp(args: list[str], workdir: Path) -> tuple[int, str]:
    (workdir / "pcap").symlink_to(SIPP_PCAPS)
    process = await asyncio.create_subprocess_exec(
        "sipp",
        *args,
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-mp",
        "0",
        "-m",
        "1",
        "-nostdin",
        "-trace_err",
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    logs = await asyncio.to_thread(
        lambda: [p.read_text(errors="replace") for p in workdir.glob("*_errors.log")]
    )
    errors = "".join(logs)
    return process.returncode or 0, output.decode(errors="replace")[-2000:] + errors[-2000:]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - polls what a fake recorded; no event to wait on
            await asyncio.sleep(0.02)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0


def media_seconds(call: RecordedCall, leg: str) -> float:
    """Seconds of ``leg`` that the RTP carried: its audio from the first sound on.

    A leg starts with silence from the answer to its first packet's arrival (that packet is placed
    at its arrival on the call clock, later ones by their RTP timestamps), so ``call.duration``
    adds a wall-clock latency that grows on a loaded machine. The silence inserted is exact zeros;
    G.711 has no zero code (the quietest A-law sample decodes to 8), so the first non-zero sample is
    the first packet's (to within the resampler's few samples of pre-ringing).
    """
    audio = call.audio(leg)
    leading = int(np.argmax(audio != 0)) if audio.any() else len(audio)
    return (len(audio) - leading) / RATE


# --- sipp: a plain call with the shipped G.711 pcap and RFC 4733 DTMF, bad input alongside ----


async def send_bad_input(port: int, healthy: RecordedCall) -> dict[str, int]:
    """Everything a broken or hostile peer might send, while ``healthy`` is in progress."""
    statuses: dict[str, int] = {}
    async with SipPeer(port) as peer:
        body = PCMU_OFFER.format(port=7000)
        raw = (
            f"INVITE sip:rec@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{peer.local_port};branch=z9hG4bKbad1\r\n"
            f"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:rec@127.0.0.1>\r\n"
            f"Call-ID: bad-1\r\nCSeq: 1 INVITE\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body) + 500}\r\n\r\n{body}"
        )
        peer.send_raw(raw.encode())
        statuses["malformed"] = (await peer.response()).status
        peer.call_id = "bad-2@127.0.0.1"
        peer.request("INVITE", body=G729_OFFER.format(port=7002))
        statuses["g729"] = (await peer.response(488)).status
        peer.request("BYE", call_id="nobody@127.0.0.1", to_tag="nope", cseq=2)
        statuses["unknown_dialog"] = (await peer.response()).status
        peer.request("BYE", call_id=healthy.started.metadata["sip_call_id"], to_tag="wrong", cseq=2)
        statuses["wrong_tag"] = (await peer.response()).status
        peer.request("CANCEL", call_id="nobody-else@127.0.0.1")
        statuses["cancel_unknown"] = (await peer.response()).status
        peer.request("OPTIONS")
        statuses["options"] = (await peer.response()).status
        peer.send_raw(b"\x80\x08\x00\x01 not SIP at all \xff\xfe")  # RTP-ish junk on the SIP port
        peer.send_raw(b"\r\n\r\n")  # keep-alive: ignored
    async with RtpSender(int(healthy.started.metadata["rtp_ports"]["0"]), ssrc=0xBAD) as stray:
        for seq in range(20):  # valid RTP, but not from the latched source
            stray.audio(seq, np.full(160, 20000, np.int16), pt=8)
        for _ in range(5):
            stray.raw(b"\x00junk")
    return statuses


def test_sipp_call_with_dtmf_while_bad_input_arrives(tmp_path: Path) -> None:
    need("sipp")

    async def scenario():
        async with sip_server() as (server, handler):
            port = server.ports["udp"]
            peer_call = asyncio.create_task(
                sipp(["-sn", "uac_pcap", f"127.0.0.1:{port}"], tmp_path)
            )
            (call,) = await handler.wait_for_calls(1)
            await until(lambda: len(call.of_type(AudioFrame)) > 10)  # RTP source latched
            statuses = await send_bad_input(port, call)
            code, output = await peer_call
            await asyncio.wait_for(call.closed.wait(), 5)
            return server, handler, call, statuses, code, output

    server, handler, call, statuses, code, output = run(scenario())
    assert code == 0, output
    assert statuses == {
        "malformed": 400,
        "g729": 488,
        "unknown_dialog": 481,
        "wrong_tag": 481,
        "cancel_unknown": 481,
        "options": 200,
    }
    assert len(handler.calls) == 1  # the refused INVITEs opened nothing
    assert call.closed_reason == "hangup" and call.started.source == "sip"
    assert call.started.legs == {"mixed": "unknown"} and call.started.metadata["codecs"] == {
        "0": "PCMA"
    }
    call.check_contract()
    # The healthy call lost nothing: 236 A-law packets of 30 ms = 7.08 s (within a packet); no
    # stray tone mixed in.
    assert media_seconds(call, "mixed") == pytest.approx(7.08, abs=0.03)
    assert 1800 < rms(call.audio("mixed")) < 2000
    assert call.digits() == "1"
    (report,) = server.reports
    leg = report.legs["mixed"]
    assert leg.jitter.lost == 0 and leg.stray == 25 and server.stats.stray_rtp == 25
    assert server.stats.unreadable == 1
    assert server.stats.requests["INVITE"] == 2 and server.stats.requests["ACK"] == 1


# --- sipp + ffmpeg: SIPREC with two labelled streams ------------------------------------------


def test_siprec_two_streams_roles_from_metadata(tmp_path: Path) -> None:
    need("sipp", "ffmpeg", "espeak-ng")
    agent_wav = tmp_path / "agent.wav"
    text = "Thank you for calling, this is agent forty two, how can I help you with your booking"
    subprocess.run(["espeak-ng", "-w", str(agent_wav), text], check=True, capture_output=True)

    async def scenario():
        async with sip_server() as (server, handler):
            port = server.ports["udp"]
            result = await sipp(
                [
                    "-sf",
                    str(SIPREC_SCENARIO),
                    f"127.0.0.1:{port}",
                    "-key",
                    "agent_wav",
                    str(agent_wav),
                ],
                tmp_path,
            )
            (call,) = handler.calls
            await asyncio.wait_for(call.closed.wait(), 5)
            return server, call, result

    server, call, (code, output) = run(scenario())
    assert code == 0, output
    started = call.started
    assert started.source == "siprec" and started.tenant == "acme"
    assert (
        started.agent_id == "agent42" and started.metadata["agent_aor"] == "sip:agent42@example.com"
    )
    assert started.legs == {"label-1": "customer", "label-2": "agent"}
    assert started.metadata["metadata_namespace"] == "urn:ietf:params:xml:ns:recording:1"
    call.check_contract()
    assert media_seconds(call, "label-1") == pytest.approx(7.08, abs=0.03)  # within a 30 ms packet
    assert 1800 < rms(call.audio("label-1")) < 2000
    speech = call.audio("label-2")
    assert 4.5 < len(speech) / RATE < 7.0 and rms(speech) > 300  # espeak-ng through ffmpeg mu-law
    assert call.digits() == "5" and call.of_type(DtmfFrame)[0].leg == "label-1"
    assert all(stats.jitter.lost == 0 for stats in server.reports[0].legs.values())


# --- scripted peer: TCP, reordering and loss, DTMF, headers -----------------------------------


def test_tcp_call_with_reordering_loss_dtmf_and_header_mapping() -> None:
    async def scenario():
        async with sip_server() as (server, handler):
            async with SipPeer(server.ports["tcp"], "tcp") as peer:
                ok, rtp_port = await peer.invite(
                    PCMU_OFFER.format(port=7010),
                    headers={"X-Tenant": "acme", "X-Agent-Id": "agent-7", "X-Leg-Role": "agent"},
                )
                assert (
                    "recvonly" in ok.body.decode() and ok.get("Content-Type") == "application/sdp"
                )
                tone = (np.sin(np.arange(160) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
                order = [*range(0, 20), 21, 20, *range(22, 30), *range(31, 50)]  # swap; lose 30
                async with RtpSender(rtp_port) as rtp:
                    for seq in order:
                        rtp.audio(seq, tone)
                        await asyncio.sleep(0.005)
                    for repeat in range(3):
                        rtp.dtmf(50 + repeat, 50 * 160, 9, end=True)
                    await asyncio.sleep(0.2)
                peer.request("BYE", cseq=2)
                bye_ok = await peer.response(200)
            (call,) = handler.calls
            await asyncio.wait_for(call.closed.wait(), 5)
            return server, call, bye_ok

    server, call, bye_ok = run(scenario())
    assert bye_ok.get("CSeq") == "2 BYE"
    assert (call.started.tenant, call.started.agent_id) == ("acme", "agent-7")
    assert call.started.legs == {"agent": "agent"}
    call.check_contract()
    # 49 packets + 1 lost (filled with silence) = 50 x 20 ms, to within a packet.
    assert media_seconds(call, "agent") == pytest.approx(1.0, abs=0.02)
    assert call.digits() == "9"
    stats = server.reports[0].legs["agent"].jitter
    assert (stats.lost, stats.reordered, stats.late) == (1, 1, 0)


def test_cancel_while_ringing_refusal_and_rtp_timeout() -> None:
    async def scenario():
        async with sip_server(ring_time=1.0, rtp_timeout=0.5) as (server, handler):
            async with SipPeer(server.ports["udp"]) as peer:
                branch = peer.request("INVITE", body=PCMU_OFFER.format(port=7020))
                ringing = await peer.response(180)
                peer.request("CANCEL", branch=branch)
                cancel_ok, terminated = await peer.response(200), await peer.response(487)
            (cancelled,) = handler.calls
            await asyncio.wait_for(cancelled.closed.wait(), 2)
            handler.refuse = "server draining"
            async with SipPeer(server.ports["udp"]) as peer:
                peer.request("INVITE", body=PCMU_OFFER.format(port=7022))
                refused = await peer.response(503)
            handler.refuse = None
            async with SipPeer(server.ports["udp"]) as peer:
                await peer.invite(PCMU_OFFER.format(port=7024))
                bye = await asyncio.wait_for(peer.requests.get(), 5)  # no RTP: we hang up
            quiet = handler.calls[-1]
            await asyncio.wait_for(quiet.closed.wait(), 2)
            return ringing, cancel_ok, terminated, cancelled, refused, bye, quiet

    ringing, cancel_ok, terminated, cancelled, refused, bye, quiet = run(scenario())
    assert ringing.status == 180 and cancel_ok.get("CSeq") == "1 CANCEL"
    assert terminated.get("CSeq") == "1 INVITE" and cancelled.closed_reason == "cancelled"
    assert "server draining" in (refused.get("Warning") or "")
    assert bye.method == "BYE" and quiet.closed_reason == "rtp timeout"
