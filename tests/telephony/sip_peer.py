"""A scripted SIP peer for tests: requests over UDP or TCP, responses read back, RTP sent."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import numpy as np

from telephony import codecs
from telephony.rtp import RtpPacket, TelephoneEvent
from telephony.settings import TelephonySettings
from telephony.sip import SipServer
from telephony.sip.message import SipMessage, parse_message
from telephony.sip.sdp import parse_sdp
from tests.telephony.fakes import CollectingHandler

PCMU_OFFER = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
G729_OFFER = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
)


class SipPeer:
    """One UDP or TCP SIP client on 127.0.0.1."""

    def __init__(self, port: int, transport: str = "udp") -> None:
        self.port, self.transport = port, transport
        self.responses: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.requests: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.call_id = f"{uuid.uuid4().hex}@127.0.0.1"
        self.from_tag = uuid.uuid4().hex[:8]
        self.to_tag: str | None = None
        self.local_port = 0
        self.closed = asyncio.Event()
        """Set when the server closed our TCP connection."""
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None

    async def __aenter__(self) -> SipPeer:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            peer = self

            class Protocol(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr) -> None:
                    peer._route(data)

            self._udp, _ = await loop.create_datagram_endpoint(
                Protocol, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", self.port)
            )
            self.local_port = self._udp.get_extra_info("sockname")[1]
        else:
            reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.local_port = self._writer.get_extra_info("sockname")[1]
            self._reader_task = asyncio.create_task(self._read_tcp(reader))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

    def send_raw(self, data: bytes) -> None:
        if self._udp is not None:
            self._udp.sendto(data)
        else:
            assert self._writer is not None
            self._writer.write(data)

    def request(
        self,
        method: str,
        *,
        cseq: int = 1,
        body: str = "",
        headers: dict | None = None,
        call_id: str | None = None,
        to_tag: str | None = None,
        branch: str | None = None,
    ) -> str:
        """Send a request; returns its Via branch."""
        branch = branch or f"z9hG4bK{uuid.uuid4().hex[:12]}"
        tag = to_tag if to_tag is not None else self.to_tag
        lines = {
            "Via": f"SIP/2.0/{self.transport.upper()} 127.0.0.1:{self.local_port}"
            f";branch={branch};rport",
            "From": f"<sip:peer@127.0.0.1:{self.local_port}>;tag={self.from_tag}",
            "To": f"<sip:rec@127.0.0.1:{self.port}>" + (f";tag={tag}" if tag else ""),
            "Call-ID": call_id or self.call_id,
            "CSeq": f"{cseq} {method}",
            "Max-Forwards": "70",
            "Contact": f"<sip:peer@127.0.0.1:{self.local_port};transport={self.transport}>",
        }
        if body:
            lines["Content-Type"] = "application/sdp"
        lines.update(headers or {})
        head = "".join(f"{k}: {v}\r\n" for k, v in lines.items())
        start = f"{method} sip:rec@127.0.0.1:{self.port} SIP/2.0\r\n"
        raw = f"{start}{head}Content-Length: {len(body)}\r\n\r\n{body}"
        self.send_raw(raw.encode())
        return branch

    async def response(self, status: int | None = None) -> SipMessage:
        """The next response (with ``status``, skipping others such as 100); waits at most 5 s."""
        while True:
            message = await asyncio.wait_for(self.responses.get(), 5.0)
            if status is None or message.status == status:
                return message

    async def invite(self, sdp: str, headers: dict | None = None) -> tuple[SipMessage, int]:
        """INVITE, wait for 200, ACK; returns the 200 and our RTP target port."""
        self.request("INVITE", body=sdp, headers=headers)
        ok = await self.response(200)
        self.to_tag = re.search(r"tag=([^;>\s]+)", ok.get("To") or "").group(1)
        self.request("ACK", cseq=1)
        return ok, parse_sdp(ok.body).media[0].port

    def _route(self, data: bytes) -> None:
        message = parse_message(data)
        (self.requests if message.is_request else self.responses).put_nowait(message)

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                self._route(head + await reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()


async def drain(peer: SipPeer, seconds: float) -> list[SipMessage]:
    """Every response that arrives within ``seconds``."""
    seen: list[SipMessage] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                seen.append(await peer.responses.get())
    return seen


class RtpSender:
    """Sends RTP from one UDP socket to a port on 127.0.0.1."""

    def __init__(self, port: int, ssrc: int = 0x11223344) -> None:
        self.port, self.ssrc = port, ssrc
        self.transport: asyncio.DatagramTransport | None = None

    async def __aenter__(self) -> RtpSender:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", self.port)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.transport is not None
        self.transport.close()

    def audio(self, seq: int, samples: np.ndarray, *, pt: int = 0) -> None:
        assert self.transport is not None
        payload = codecs.encode("PCMU" if pt == 0 else "PCMA", samples)
        self.transport.sendto(
            RtpPacket(
                payload_type=pt, sequence=seq, timestamp=seq * 160, ssrc=self.ssrc, payload=payload
            ).build()
        )

    def dtmf(self, seq: int, timestamp: int, digit_code: int, *, end: bool, pt: int = 101) -> None:
        assert self.transport is not None
        payload = TelephoneEvent(event=digit_code, end=end, volume=10, duration=800).build()
        self.transport.sendto(
            RtpPacket(
                payload_type=pt, sequence=seq, timestamp=timestamp, ssrc=self.ssrc, payload=payload
            ).build()
        )

    def raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)


@contextlib.asynccontextmanager
async def sip_server(
    handler: CollectingHandler | None = None, **overrides: object
) -> AsyncIterator[tuple[SipServer, CollectingHandler]]:
    """A SIP server on free ports of 127.0.0.1 feeding ``handler`` (a fresh one by default)."""
    handler = handler or CollectingHandler()
    settings = TelephonySettings(sip_port=0, rtp_port_min=0, rtp_port_max=0, **overrides)  # type: ignore[arg-type]
    server = SipServer(handler, settings)
    await server.start()
    try:
        yield server, handler
    finally:
        await server.stop(grace=0.1)  # the peers are gone: no one answers shutdown BYEs
