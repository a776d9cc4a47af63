"""The SIP UAS against a scripted peer on 127.0.0.1: bad input that must not hurt the listener,
set-up races (CANCEL, duplicate Call-ID, failing pipeline), re-offers and hold, routing."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from telephony.sip import call as call_module
from telephony.sip import server as server_module
from telephony.sip.message import SipMessage, tag_of
from telephony.sip.sdp import parse_sdp
from tests.telephony.fakes import CollectingHandler, RecordedCall
from tests.telephony.sip_peer import PCMU_OFFER, RtpSender, SipPeer, drain, sip_server
from voice.frames import AudioFrame, CallEndedFrame, CallStartedFrame
from voice.transport import CallOutput

pytestmark = pytest.mark.e2e
HOLD = PCMU_OFFER.replace("a=sendrecv", "a=inactive")


def run(coroutine, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


class SlowHandler(CollectingHandler):
    """A pipeline whose open_call takes a while (a session lookup, a model warm-up)."""

    def __init__(self, delay: float = 0.4, failures: int = 0) -> None:
        super().__init__()
        self.delay, self.failures = delay, failures

    async def open_call(self, started: CallStartedFrame, output: CallOutput) -> RecordedCall:
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("bug in the pipeline")  # not a VoiceError
        return await super().open_call(started, output)


def raw_request(peer: SipPeer, method: str, cseq: str, *, length: str = "0", call_id: str = "raw") -> bytes:
    via = f"SIP/2.0/{peer.transport.upper()} 127.0.0.1:{peer.local_port};branch=z9hG4bK-{call_id}"
    return (
        f"{method} sip:rec@127.0.0.1 SIP/2.0\r\nVia: {via}\r\n"
        f"From: <sip:peer@127.0.0.1>;tag=f\r\nTo: <sip:rec@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
        f"CSeq: {cseq}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def o_line(sdp: SipMessage) -> list[str]:
    return re.search(r"o=(.*)", sdp.body.decode()).group(1).split()  # type: ignore[union-attr]


# --- 1, 15: bad input never escapes on_message, never drops a TCP trunk -------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_unicode_digits_get_400_and_the_connection_survives(transport: str) -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports[transport], transport) as peer:
            peer.send_raw(raw_request(peer, "OPTIONS", "\u00b2 OPTIONS", call_id="u1"))
            bad_cseq = await peer.response()
            peer.send_raw(raw_request(peer, "OPTIONS", "1 OPTIONS", length="\u00b2", call_id="u2"))
            bad_length = (await drain(peer, 0.5))[:1]
            peer.request("OPTIONS", cseq=5)
            follow_up = await peer.response()
            peer.request("INVITE", body=PCMU_OFFER.format(port="\u00b9\u00b2"))
            bad_sdp = await peer.response(400)
            return bad_cseq, bad_length, follow_up, bad_sdp

    bad_cseq, bad_length, follow_up, bad_sdp = run(scenario())
    assert bad_cseq.status == 400 and "CSeq" in (bad_cseq.get("Warning") or "")
    if transport == "udp":  # over TCP the framing already refuses a non-ASCII length
        assert [r.status for r in bad_length] == [400]
    assert follow_up.status == 200 and follow_up.get("CSeq") == "5 OPTIONS"
    assert "m= line" in (bad_sdp.get("Warning") or "")


def test_unexpected_exception_is_logged_answered_500_and_tcp_stays_up(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = server_module.parse_message
    broken = iter([True])

    def flaky_parse(data: bytes) -> SipMessage:
        if next(broken, False):
            raise RuntimeError("parser bug")
        return real(data)

    monkeypatch.setattr(server_module, "parse_message", flaky_parse)

    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["tcp"], "tcp") as peer:
            peer.request("OPTIONS", cseq=1)
            failed = await peer.response()
            peer.request("OPTIONS", cseq=2)
            return failed, await peer.response(), server.stats.unreadable

    failed, follow_up, unreadable = run(scenario())
    assert failed.status == 500 and failed.get("CSeq") == "1 OPTIONS"
    assert follow_up.status == 200 and unreadable == 1
    assert "parser bug" in caplog.text


def test_malformed_response_is_dropped_not_answered() -> None:
    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            peer.send_raw(
                b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n"
                b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: r1\r\nCSeq: 1 BYE\r\n"
                b"Content-Length: 99\r\n\r\n"
            )
            return await drain(peer, 0.5), server.stats.unreadable, server.stats.responses_sent

    answers, unreadable, sent = run(scenario())
    assert answers == [] and unreadable == 1 and sent[400] == 0


# --- 4, 5, 7: set-up races and failures ---------------------------------------------------------


def slow_rtp_ports(monkeypatch: pytest.MonkeyPatch, delay: float) -> None:
    """Make binding RTP ports take ``delay`` seconds (widens the set-up window races need)."""
    real_open = call_module.open_receiver

    async def slow_open(*args, **kwargs):
        await asyncio.sleep(delay)
        return await real_open(*args, **kwargs)

    monkeypatch.setattr(call_module, "open_receiver", slow_open)


@pytest.mark.parametrize("during", ["open_media", "open_call"])
def test_cancel_during_set_up_gets_487_and_never_200(during: str, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_rtp_ports(monkeypatch, 0.4 if during == "open_media" else 0.0)

    async def scenario():
        handler = SlowHandler(delay=0.4 if during == "open_call" else 0.0)
        async with sip_server(handler) as (server, _), SipPeer(server.ports["udp"]) as peer:
            branch = peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            await peer.response(100)
            await asyncio.sleep(0.1)
            peer.request("CANCEL", branch=branch)
            seen = [await peer.response(), await peer.response()]
            # The UAC's ACK stops the 487's retransmissions (Timer G); nothing else may follow.
            peer.request("ACK", branch=branch, to_tag=tag_of(seen[-1].get("To") or ""))
            seen += await drain(peer, 1.0)
            return seen, handler.calls, dict(server.calls)

    seen, calls, registered = run(scenario())
    assert [(r.status, r.get("CSeq")) for r in seen] == [(200, "1 CANCEL"), (487, "1 INVITE")]
    assert registered == {}
    if during == "open_call":  # the pipeline saw the call start and end, and its sink is closed
        (call,) = calls
        assert call.closed_reason == "cancelled" and isinstance(call.frames[-1], CallEndedFrame)
    else:
        assert calls == []  # cancelled before the pipeline was asked


def test_second_invite_with_the_same_call_id_gets_482_retransmission_no_new_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow_rtp_ports(monkeypatch, 0.2)  # the original race window: before the Call-ID was stored

    async def scenario():
        handler = SlowHandler(delay=0.2)
        async with sip_server(handler) as (server, _), SipPeer(server.ports["udp"]) as peer:
            branch = peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            await asyncio.sleep(0.05)
            peer.request("INVITE", body=PCMU_OFFER.format(port=7000), branch=branch)  # retransmission
            peer.request("INVITE", body=PCMU_OFFER.format(port=7002))  # same Call-ID, new branch
            seen = await drain(peer, 1.0)
            return seen, len(handler.calls), len(server.calls)

    seen, opened, registered = run(scenario())
    finals = sorted({(r.status, r.get("Via")) for r in seen if r.status >= 200})
    assert sorted(status for status, _ in finals) == [200, 482]
    assert opened == 1 and registered == 1


def test_pipeline_bug_gets_500_frees_the_call_and_a_retry_works() -> None:
    async def scenario():
        handler = SlowHandler(delay=0.0, failures=1)
        async with sip_server(handler) as (server, _), SipPeer(server.ports["udp"]) as peer:
            peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            failed = await peer.response(500)
            leaked = dict(server.calls)
            await peer.invite(PCMU_OFFER.format(port=7000))  # same Call-ID: no 482
            return failed, leaked, len(handler.calls)

    failed, leaked, opened = run(scenario())
    assert failed.get("CSeq") == "1 INVITE" and leaked == {} and opened == 1


def test_srtp_offer_gets_488() -> None:
    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            peer.request("INVITE", body=PCMU_OFFER.format(port=7000).replace("RTP/AVP", "RTP/SAVP"))
            return await peer.response(488), handler.calls

    refused, calls = run(scenario())
    assert "SRTP" in (refused.get("Warning") or "") and calls == []


# --- 2: re-INVITE and UPDATE offers; hold pauses the RTP watchdog --------------------------------


def test_hold_longer_than_rtp_timeout_keeps_the_call_and_unhold_rearms_the_watchdog() -> None:
    async def scenario():
        async with sip_server(rtp_timeout=0.5) as (server, handler), SipPeer(server.ports["udp"]) as peer:
            first, rtp_port = await peer.invite(PCMU_OFFER.format(port=7000))
            peer.request("INVITE", cseq=2, body=HOLD.format(port=7000))
            held = await peer.response(200)
            peer.request("ACK", cseq=2)
            await asyncio.sleep(1.2)  # more than twice rtp_timeout, on hold
            still_up = list(server.calls)
            peer.request("INVITE", cseq=3, body=PCMU_OFFER.format(port=7000))
            resumed = await peer.response(200)
            resumed_at = asyncio.get_running_loop().time()
            peer.request("ACK", cseq=3)
            bye = await asyncio.wait_for(peer.requests.get(), 2)  # no RTP after un-hold
            silence = asyncio.get_running_loop().time() - resumed_at
            (call,) = handler.calls
            await asyncio.wait_for(call.closed.wait(), 2)
            return first, rtp_port, held, still_up, resumed, bye, call, silence

    first, rtp_port, held, still_up, resumed, bye, call, silence = run(scenario())
    assert silence >= 0.3  # the watchdog counts from the un-hold (without: BYE at once)
    answer = parse_sdp(held.body)
    assert answer.media[0].direction == "inactive" and answer.media[0].port == rtp_port
    assert o_line(held)[1] == o_line(first)[1] and int(o_line(held)[2]) == int(o_line(first)[2]) + 1
    assert still_up and call.closed_reason == "rtp timeout" and bye.method == "BYE"
    assert parse_sdp(resumed.body).media[0].direction == "recvonly"


def test_sendonly_hold_of_a_sendrecv_call_pauses_the_watchdog() -> None:
    async def scenario():
        async with sip_server(rtp_timeout=0.4) as (server, _), SipPeer(server.ports["tcp"], "tcp") as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            peer.request("INVITE", cseq=2, body=PCMU_OFFER.format(port=7000).replace("sendrecv", "sendonly"))
            held = await peer.response(200)
            await asyncio.sleep(1.0)
            return held, list(server.calls), peer.requests.empty()

    held, calls, no_bye = run(scenario())
    assert parse_sdp(held.body).media[0].direction == "recvonly" and calls and no_bye


def test_reoffer_refusals_leave_the_session_and_new_m_lines_get_port_zero() -> None:
    two = PCMU_OFFER + "m=audio {port2} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"

    async def scenario():
        async with sip_server() as (server, _), SipPeer(server.ports["udp"]) as peer:
            first, rtp_port = await peer.invite(PCMU_OFFER.format(port=7000))
            peer.request("INVITE", cseq=2, body="hello", headers={"Content-Type": "text/plain"})
            not_sdp = await peer.response()
            peer.request("INVITE", cseq=3, body="this is not SDP")
            garbage = await peer.response()
            peer.request("INVITE", cseq=4, body=two.format(port=7000, port2=7002))
            grown = await peer.response(200)
            return first, rtp_port, not_sdp, garbage, grown

    first, rtp_port, not_sdp, garbage, grown = run(scenario())
    assert not_sdp.status == 415 and "application/sdp" in (not_sdp.get("Accept") or "")
    assert garbage.status == 400
    media = parse_sdp(grown.body).media
    assert [(m.port, m.direction) for m in media] == [(rtp_port, "recvonly"), (0, "sendrecv")]


def test_media_moved_by_reinvite_is_received_not_dropped_as_stray() -> None:
    tone = (3000 * np.sin(np.arange(160) * 0.3)).astype(np.int16)

    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            _, rtp_port = await peer.invite(PCMU_OFFER.format(port=7000))
            async with RtpSender(rtp_port, ssrc=1) as old:
                for seq in range(5):
                    old.audio(seq, tone)
                await asyncio.sleep(0.1)
            peer.request("INVITE", cseq=2, body=PCMU_OFFER.format(port=7010))  # new source port
            await peer.response(200)
            async with RtpSender(rtp_port, ssrc=2) as new:
                for seq in range(10):
                    new.audio(100 + seq, tone)
                await asyncio.sleep(0.2)
            (receiver,) = next(iter(server.calls.values())).receivers.values()
            return receiver.stats.packets, receiver.stats.stray

    packets, stray = run(scenario())
    assert (packets, stray) == (15, 0)


def test_update_with_and_without_an_offer() -> None:
    async def scenario():
        async with sip_server(rtp_timeout=0.4) as (server, _), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000))
            peer.request("UPDATE", cseq=2, body=HOLD.format(port=7000))
            with_offer = await peer.response()
            peer.request("UPDATE", cseq=3)
            without = await peer.response()
            await asyncio.sleep(0.9)
            return with_offer, without, list(server.calls)

    with_offer, without, calls = run(scenario())
    assert with_offer.status == 200 and parse_sdp(with_offer.body).media[0].direction == "inactive"
    assert without.status == 200 and without.body == b""
    assert calls  # on hold through UPDATE: no rtp timeout


# --- 8: Record-Route into the 200, Route in our BYE -----------------------------------------------


def test_record_route_copied_and_our_bye_follows_the_route_set() -> None:
    routes = {"Record-Route": "<sip:p1.example.com;lr>, <sip:p2.example.com;lr;ftag=x>"}

    async def scenario():
        async with sip_server(rtp_timeout=0.3) as (server, handler), SipPeer(server.ports["udp"]) as peer:
            ok, _ = await peer.invite(PCMU_OFFER.format(port=7000), headers=routes)
            bye = await asyncio.wait_for(peer.requests.get(), 3)  # rtp timeout: we hang up
            return ok, bye, peer.local_port

    ok, bye, local_port = run(scenario())
    assert ok.get_all("Record-Route") == [routes["Record-Route"]]
    assert bye.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr;ftag=x>"]
    assert bye.uri == f"sip:peer@127.0.0.1:{local_port};transport=udp"  # the remote target
    assert " 127.0.0.1:" in (bye.get("Via") or "")


def test_a_strict_router_gets_the_request_uri() -> None:
    async def scenario():
        async with sip_server(rtp_timeout=0.3) as (server, _), SipPeer(server.ports["udp"]) as peer:
            await peer.invite(PCMU_OFFER.format(port=7000), headers={"Record-Route": "<sip:old.example.com>"})
            return await asyncio.wait_for(peer.requests.get(), 3), peer.local_port

    bye, local_port = run(scenario())
    assert bye.uri == "sip:old.example.com"
    assert bye.get_all("Route") == [f"<sip:peer@127.0.0.1:{local_port};transport=udp>"]


def test_audio_frames_still_flow_after_a_reoffer_changes_codec() -> None:
    pcma = PCMU_OFFER.replace("RTP/AVP 0 101", "RTP/AVP 8 101").replace("0 PCMU", "8 PCMA")

    async def scenario():
        async with sip_server() as (server, handler), SipPeer(server.ports["udp"]) as peer:
            _, rtp_port = await peer.invite(PCMU_OFFER.format(port=7000))
            peer.request("INVITE", cseq=2, body=pcma.format(port=7000))
            answer = await peer.response(200)
            async with RtpSender(rtp_port) as rtp:
                for seq in range(5):
                    rtp.audio(seq, np.full(160, 1000, np.int16), pt=8)
                await asyncio.sleep(0.2)
            return answer, handler.calls[0]

    answer, call = run(scenario())
    assert parse_sdp(answer.body).media[0].formats[0] == "8"
    assert len(call.of_type(AudioFrame)) > 0


def test_early_dialog_reinvite_gets_500_retry_after_and_bye_terminates_the_invite() -> None:
    async def scenario():
        async with sip_server(ring_time=1.0) as (server, handler), SipPeer(server.ports["udp"]) as peer:
            branch = peer.request("INVITE", body=PCMU_OFFER.format(port=7000))
            ringing = await peer.response(180)
            peer.to_tag = re.search(r"tag=([^;>\s]+)", ringing.get("To") or "").group(1)  # type: ignore[union-attr]
            reinvite = peer.request("INVITE", cseq=2, body=HOLD.format(port=7000))
            pending = await peer.response()
            peer.request("ACK", cseq=2, branch=reinvite)  # else the 500 is re-sent (Timer G)
            peer.request("BYE", cseq=3)
            seen = [await peer.response(), await peer.response()]
            peer.request("ACK", branch=branch)  # and the 487 too
            seen += await drain(peer, 1.5)
            (call,) = handler.calls
            return pending, seen, call

    pending, seen, call = run(scenario())
    assert pending.status == 500 and 1 <= int(pending.get("Retry-After") or 0) <= 10
    assert sorted((r.status, r.get("CSeq")) for r in seen) == [(200, "3 BYE"), (487, "1 INVITE")]
    assert call.closed_reason == "hangup"
