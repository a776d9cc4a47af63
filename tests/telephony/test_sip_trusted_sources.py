"""``sip_trusted_sources``: SIP from anywhere else is dropped unanswered (UDP) or its connection
closed (TCP), so a scanner gets nothing and nobody but the SBC opens calls; the trusted source
calls as before. On 127.0.0.1 against a server trusting 127.0.0.2 or the loopback network."""

from __future__ import annotations

import asyncio

import pytest

from telephony.settings import TelephonySettings
from tests.telephony.sip_peer import PCMU_OFFER, SipPeer, sip_server
from voice.errors import ConfigError

pytestmark = pytest.mark.e2e


def test_sip_from_an_untrusted_source_is_dropped_unanswered() -> None:
    async def scenario():
        async with sip_server(sip_trusted_sources=("127.0.0.2", "10.0.0.0/8")) as (server, handler):
            async with SipPeer(server.ports["udp"]) as udp:
                udp.request("OPTIONS")
                udp.request("INVITE", body=PCMU_OFFER.format(port=7000))
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(udp.responses.get(), 1.0)
            async with SipPeer(server.ports["tcp"], "tcp") as tcp:
                await asyncio.wait_for(tcp.closed.wait(), 5.0)  # closed before a byte was read
            return len(handler.calls), server.sources.dropped

    calls, dropped = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert calls == 0 and dropped == 3


def test_a_trusted_source_calls_as_before() -> None:
    async def scenario():
        async with sip_server(sip_trusted_sources=("127.0.0.0/8",)) as (server, handler):
            async with SipPeer(server.ports["udp"]) as udp:
                await udp.invite(PCMU_OFFER.format(port=7000))
            return len(handler.calls), server.sources.dropped

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == (1, 0)


def test_a_source_that_is_not_an_address_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sip_trusted_sources"):
        TelephonySettings(sip_trusted_sources=("sbc.example.com",))


def test_an_ipv4_sbc_on_a_dual_stack_listener_is_trusted() -> None:
    from telephony.sip.trust import SourceFilter

    sources = SourceFilter(("203.0.113.0/24",))
    assert sources.allows("::ffff:203.0.113.10") and sources.allows("203.0.113.10")
    assert not sources.allows("::ffff:198.51.100.7") and sources.dropped == 1
