"""The SIP run of ``bench_live.py``: one SIPREC call, both streams real speech sent by ffmpeg.

A minimal SRC does the signalling (INVITE with multipart SDP + rs-metadata, ACK, BYE over UDP),
and one ffmpeg per party plays that channel of a stereo call as PCMU RTP in real time (``-re``,
20 ms packets). Each stream passes through a loopback relay that forwards every packet to the
server and notes when: the client-side send time of each 20 ms of audio, as the Twilio client
records it. The server places a stream's first packet at its arrival on the call clock, which
starts when the 200 OK goes out; the relay knows both, so audio times map to send times.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

PACKET_SECONDS = 0.02
WIRE_RATE = 8000
AGENT_ID = "bench-agent"
"""The agent participant's AOR user: the server takes the call's agent id from it."""

_SDP = """v=0\r
o=src 1 1 IN IP4 127.0.0.1\r
s=SIPREC\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 7200 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
a=label:1\r
a=sendonly\r
m=audio 7202 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
a=label:2\r
a=sendonly\r
"""
_METADATA = f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="s1"/>
  <participant participant_id="p1"><nameID aor="sip:customer@example.com"/></participant>
  <participant participant_id="p2"><nameID aor="sip:{AGENT_ID}@example.com"/></participant>
  <stream stream_id="st1" session_id="s1"><label>1</label></stream>
  <stream stream_id="st2" session_id="s1"><label>2</label></stream>
  <participantstreamassoc participant_id="p1"><send>st1</send><recv>st2</recv>
  </participantstreamassoc>
  <participantstreamassoc participant_id="p2"><send>st2</send><recv>st1</recv>
  </participantstreamassoc>
</recording>
"""
LEGS = {"label-1": 0, "label-2": 1}
"""Server leg name -> channel of the stereo call it carries (label 1 = customer = channel 0)."""


@dataclass
class SipRun:
    """What the SRC sent: per leg, the wall time at which each 20 ms of call audio was out."""

    answered_at: float = 0.0
    sent_at: dict[str, list[float]] = field(default_factory=dict)
    """leg -> wall clock per 20 ms of *call* audio (anchored at the leg's first packet)."""


class _Relay(asyncio.DatagramProtocol):
    """Forwards ffmpeg's RTP to the server from one fixed source and stamps every packet."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.stamps: list[float] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr == self.target or len(data) < 12 or data[1] & 0x7F != 0:
            return  # RTCP and anything that is not PCMU RTP stays here
        assert self.transport is not None
        self.transport.sendto(data, self.target)
        self.stamps.append(time.time())


class _SipClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.messages.put_nowait(data.decode(errors="replace"))


async def siprec_call(
    sip_port: int, audio: np.ndarray, workdir: Path, tenant: str = "bench"
) -> SipRun:
    """Record one stereo call (int16 (2, samples) at 8 kHz) into the server's SIP listener."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        _SipClient, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", sip_port)
    )
    local = transport.get_extra_info("sockname")[1]
    dialog = _Dialog(sip_port, local, tenant)
    run = SipRun()
    try:
        transport.sendto(dialog.invite().encode())
        ok = await _response(client, 200)
        run.answered_at = time.time()
        dialog.to_tag = re.search(r"(?im)^To:.*;tag=([^;\s>]+)", ok).group(1)  # type: ignore[union-attr]
        transport.sendto(dialog.request("ACK", 1).encode())
        ports = [int(p) for p in re.findall(r"m=audio (\d+)", ok)]
        relays = await _play(audio, ports, workdir)
        for leg, relay in zip(LEGS, relays, strict=True):
            run.sent_at[leg] = _per_packet(relay.stamps, run.answered_at)
        transport.sendto(dialog.request("BYE", 2).encode())
        await _response(client, 200)
    finally:
        transport.close()
    return run


async def _play(audio: np.ndarray, ports: list[int], workdir: Path) -> list[_Relay]:
    """ffmpeg per channel through a stamping relay; returns the relays when both finished."""
    loop = asyncio.get_running_loop()
    relays, endpoints, players = [], [], []
    for leg, channel in LEGS.items():
        wav = workdir / f"{leg}.wav"
        sf.write(wav, audio[channel], WIRE_RATE, subtype="PCM_16")
        relay = _Relay(("127.0.0.1", ports[channel]))
        endpoint, _ = await loop.create_datagram_endpoint(
            lambda r=relay: r, local_addr=("127.0.0.1", 0)
        )
        relays.append(relay)
        endpoints.append(endpoint)
        players.append(_ffmpeg(wav, endpoint.get_extra_info("sockname")[1]))
    try:
        await asyncio.gather(*players)
        await asyncio.sleep(0.2)  # the last packets
    finally:
        for endpoint in endpoints:
            endpoint.close()
    return relays


async def _ffmpeg(wav: Path, port: int) -> None:
    process = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-i",
        str(wav),
        "-af",
        "asetnsamples=n=160:p=0",
        "-c:a",
        "pcm_mulaw",
        "-payload_type",
        "0",
        "-f",
        "rtp",
        f"rtp://127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"ffmpeg failed: {errors.decode(errors='replace')[-500:]}")


def _per_packet(stamps: list[float], answered_at: float) -> list[float]:
    """Send time per 20 ms of call audio: the stream starts at its first packet's arrival on the
    call clock (zero = the 200 OK), and everything before that is covered by the first packet."""
    if not stamps:
        return []
    lead = max(0, round((stamps[0] - answered_at) / PACKET_SECONDS))
    return [stamps[0]] * lead + stamps


async def _response(client: _SipClient, status: int) -> str:
    async with asyncio.timeout(10):
        while True:
            message = await client.messages.get()
            if message.startswith(f"SIP/2.0 {status}"):
                return message


@dataclass
class _Dialog:
    sip_port: int
    local_port: int
    tenant: str
    call_id: str = field(default_factory=lambda: f"{uuid.uuid4().hex}@127.0.0.1")
    from_tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    to_tag: str | None = None

    def invite(self) -> str:
        body = (
            f"--b1\r\nContent-Type: application/sdp\r\n\r\n{_SDP}\r\n"
            f"--b1\r\nContent-Type: application/rs-metadata+xml\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{_METADATA}\r\n--b1--\r\n"
        )
        headers = {
            "Require": "siprec",
            "X-Tenant": self.tenant,
            "X-Agent-Id": AGENT_ID,
            "Content-Type": "multipart/mixed;boundary=b1",
        }
        return self.request("INVITE", 1, headers=headers, body=body)

    def request(
        self, method: str, cseq: int, *, headers: dict[str, str] | None = None, body: str = ""
    ) -> str:
        to = f"<sip:srs@127.0.0.1:{self.sip_port}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = {
            "Via": f"SIP/2.0/UDP 127.0.0.1:{self.local_port};branch=z9hG4bK{uuid.uuid4().hex[:12]}",
            "From": f"<sip:src@127.0.0.1:{self.local_port}>;tag={self.from_tag}",
            "To": to,
            "Call-ID": self.call_id,
            "CSeq": f"{cseq} {method}",
            "Max-Forwards": "70",
            "Contact": f"<sip:src@127.0.0.1:{self.local_port}>;+sip.src",
            **(headers or {}),
        }
        head = "".join(f"{k}: {v}\r\n" for k, v in lines.items())
        return (
            f"{method} sip:srs@127.0.0.1:{self.sip_port} SIP/2.0\r\n{head}"
            f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
