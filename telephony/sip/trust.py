"""Which sources SIP is accepted from (``sip_trusted_sources``): an SBC's or carrier's addresses.

A SIP listener that anyone can reach takes calls for any tenant and agent its headers name, and
scanners probe port 5060 all day; where the settings name the trusted sources, everything else is
dropped unanswered, so a scanner learns nothing.
"""

from __future__ import annotations

import ipaddress
import logging

log = logging.getLogger(__name__)
_LOGGED_SOURCES = 1000
"""Untrusted sources logged once each, at most this many (a scan must not flood the log)."""


class SourceFilter:
    """``allows(host)`` for the configured networks; every source when none are configured."""

    def __init__(self, sources: tuple[str, ...]) -> None:
        self.networks = [ipaddress.ip_network(s, strict=False) for s in sources]
        self.dropped = 0
        self._logged: set[str] = set()

    def allows(self, host: str) -> bool:
        """Whether SIP from ``host`` is accepted; counts and logs (once per source) the rest."""
        if not self.networks:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 scope id is not the address
        except ValueError:
            address = None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an IPv4 SBC on a dual-stack ("::") listener
        if address is not None and any(address in network for network in self.networks):
            return True
        self.dropped += 1
        if host not in self._logged and len(self._logged) < _LOGGED_SOURCES:
            self._logged.add(host)
            log.warning("SIP from %s dropped: not in sip_trusted_sources", host)
        return False

    def warn_if_open(self, bound_host: str) -> None:
        """Say so at start when any source may call a listener that is not loopback only."""
        try:
            loopback = ipaddress.ip_address(bound_host).is_loopback
        except ValueError:
            loopback = bound_host == "localhost"
        if not self.networks and not loopback:
            log.warning("SIP accepts calls from any source on %s: set sip_trusted_sources to your "
                        "SBC's or carrier's addresses", bound_host)
