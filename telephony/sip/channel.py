"""Where SIP responses and our in-dialog requests go: one peer over UDP or over TCP."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol, cast

from telephony.sip.message import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

UNSPECIFIED_ADDRESSES = ("0.0.0.0", "::")
_CONTENT_LENGTH = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)")
FREE_PORT_ATTEMPTS = 5
"""Tries to find a port free on both UDP and TCP when the configured port is 0."""


class SipChannel(Protocol):
    """Where responses and in-dialog requests to one peer go."""

    transport: str
    peer: tuple[str, int]

    def send(self, data: bytes) -> None:
        """Write one SIP message."""
        ...

    def local_host(self) -> str:
        """Our address as this peer reaches it (for Via, Contact and SDP)."""
        ...


@dataclass
class UdpChannel:
    """A peer reached by datagrams (responses go to the source address, as with rport)."""

    socket: asyncio.DatagramTransport
    peer: tuple[str, int]
    transport: str = "udp"

    def send(self, data: bytes) -> None:
        """Send one datagram."""
        self.socket.sendto(data, self.peer)

    def local_host(self) -> str:
        """The bound address, or the one routed towards the peer when bound to a wildcard."""
        return reachable_host(str(self.socket.get_extra_info("sockname")[0]), self.peer)


@dataclass
class TcpChannel:
    """A peer on one TCP connection."""

    writer: asyncio.StreamWriter
    peer: tuple[str, int]
    transport: str = "tcp"

    def send(self, data: bytes) -> None:
        """Write to the connection unless it is closing."""
        if not self.writer.is_closing():
            self.writer.write(data)

    def local_host(self) -> str:
        """The local address of this connection."""
        return reachable_host(str(self.writer.get_extra_info("sockname")[0]), self.peer)


class UdpProtocol(asyncio.DatagramProtocol):
    """The SIP UDP socket: every datagram goes to ``on_message`` with a channel to its sender."""

    def __init__(self, on_message: Callable[[bytes, SipChannel], None]) -> None:
        self.on_message = on_message
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the socket for the channels."""
        # The selector loop's datagram transport does not subclass DatagramTransport (3.11).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Hand one datagram over."""
        assert self.transport is not None
        self.on_message(data, UdpChannel(self.transport, (addr[0], addr[1])))


async def read_tcp_messages(
    reader: asyncio.StreamReader,
    channel: TcpChannel,
    on_message: Callable[[bytes, SipChannel], None],
    *,
    idle_timeout: float,
    in_use: Callable[[TcpChannel], bool],
) -> bool:
    """Hand every message of one TCP connection, framed by Content-Length, to ``on_message``
    until the peer closes it or it idles ``idle_timeout`` s while ``in_use(channel)`` is false.

    Returns:
        False when a message declared a body over ``MAX_MESSAGE_BYTES``: no framing after it can
        be trusted, so the caller drops the connection.
    """
    try:
        while (head := await _next_head(reader, channel, idle_timeout, in_use)) is not None:
            match = _CONTENT_LENGTH.search(head)
            digits = match.group(1).lstrip(b"0") if match else b""
            # Length checked before int(): int() of over 4,300 digits raises ValueError.
            if len(digits) > len(str(MAX_MESSAGE_BYTES)) or int(digits or b"0") > MAX_MESSAGE_BYTES:
                log.info("dropping the SIP TCP connection from %s: Content-Length %s is over %d",
                         channel.peer, digits[:20].decode("ascii") + ("..." if len(digits) > 20 else ""),
                         MAX_MESSAGE_BYTES)
                return False
            length = int(digits or b"0")
            body = await reader.readexactly(length)
            on_message(head.lstrip(b"\r\n") + body, channel)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass  # peer closed, or sent a header block over 64 KiB: drop the connection
    return True


async def _next_head(
    reader: asyncio.StreamReader, channel: TcpChannel, idle_timeout: float, in_use: Callable[[TcpChannel], bool]
) -> bytes | None:
    """The next header block, or None once the connection idled out carrying no call."""
    while True:
        try:
            # A cancelled readuntil consumes nothing: a half-received message stays buffered.
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle_timeout)
        except TimeoutError:
            if not in_use(channel):
                log.info("closing idle SIP TCP connection from %s", channel.peer)
                return None


def reachable_host(bound: str, peer: tuple[str, int]) -> str:
    """``bound``, or when it is a wildcard, the local address the OS uses towards ``peer``.

    Why: a Via or Contact of 0.0.0.0 sends the far end's responses and requests nowhere.
    A connected UDP socket sends nothing; it only asks the routing table.
    """
    if bound not in UNSPECIFIED_ADDRESSES and bound:
        return bound
    family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(peer)
            return str(probe.getsockname()[0])
        except OSError:
            return bound


@dataclass
class Listeners:
    """The SIP server's sockets: one port number on UDP and TCP when both are on."""

    udp: asyncio.DatagramTransport | None = None
    tcp: asyncio.Server | None = None
    ports: dict[str, int] = field(default_factory=dict)

    async def close(self) -> None:
        """Close both sockets."""
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            await self.tcp.wait_closed()


async def bind_listeners(
    host: str,
    port: int,
    transports: Collection[str],
    on_message: Callable[[bytes, SipChannel], None],
    serve_tcp: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> Listeners:
    """Bind UDP (the OS picks the number for port 0), then TCP on the same number.

    With port 0 the number the OS gave UDP may already be some TCP socket's local port; another
    is picked rather than failing (a CI run failed on exactly that). A configured port that is
    taken is an error.
    """
    for attempt in range(FREE_PORT_ATTEMPTS):
        listeners = Listeners()
        try:
            await _bind(listeners, host, port, transports, on_message, serve_tcp)
            return listeners
        except OSError as error:
            await listeners.close()
            if port != 0 or attempt == FREE_PORT_ATTEMPTS - 1:
                raise
            log.debug("SIP port %s taken on TCP (%s); picking another", listeners.ports.get("udp"), error)
    raise AssertionError("unreachable")


async def _bind(
    listeners: Listeners,
    host: str,
    port: int,
    transports: Collection[str],
    on_message: Callable[[bytes, SipChannel], None],
    serve_tcp: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> None:
    if "udp" in transports:
        loop = asyncio.get_running_loop()
        listeners.udp, _ = await loop.create_datagram_endpoint(
            lambda: UdpProtocol(on_message), local_addr=(host, port)
        )
        port = listeners.ports["udp"] = listeners.udp.get_extra_info("sockname")[1]
    if "tcp" in transports:
        listeners.tcp = await asyncio.start_server(serve_tcp, host, port, limit=1 << 16)
        listeners.ports["tcp"] = listeners.tcp.sockets[0].getsockname()[1]
