"""With ``sip_port=0`` the server finds a port free on both UDP and TCP: the OS picks the UDP port,
and that number can already be some TCP socket's (a CI run failed on exactly that)."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

from telephony.settings import TelephonySettings
from telephony.sip import SipServer
from tests.telephony.fakes import CollectingHandler

pytestmark = pytest.mark.unit


def test_a_udp_port_taken_on_tcp_is_traded_for_another(monkeypatch: pytest.MonkeyPatch) -> None:
    real_start_server = asyncio.start_server
    refused: list[int] = []

    async def taken_once(callback: Any, host: str, port: int, **kwargs: Any) -> asyncio.Server:
        if not refused:
            refused.append(port)
            raise OSError(errno.EADDRINUSE, f"error while attempting to bind on address ({host!r}, {port})")
        return await real_start_server(callback, host, port, **kwargs)

    monkeypatch.setattr(asyncio, "start_server", taken_once)

    async def scenario() -> dict[str, int]:
        server = SipServer(CollectingHandler(), TelephonySettings(sip_port=0, rtp_port_min=0, rtp_port_max=0))
        await server.start()
        try:
            return dict(server.ports)
        finally:
            await server.stop(grace=0.1)

    ports = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert ports["udp"] == ports["tcp"] != refused[0]


def test_a_configured_port_that_is_taken_is_an_error() -> None:
    async def scenario() -> None:
        first = SipServer(CollectingHandler(), TelephonySettings(sip_port=0, rtp_port_min=0, rtp_port_max=0))
        await first.start()
        try:
            taken = TelephonySettings(sip_port=first.ports["udp"], rtp_port_min=0, rtp_port_max=0)
            with pytest.raises(OSError):
                await SipServer(CollectingHandler(), taken).start()
        finally:
            await first.stop(grace=0.1)

    asyncio.run(asyncio.wait_for(scenario(), 10))
