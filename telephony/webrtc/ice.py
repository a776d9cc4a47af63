"""Which local addresses WebRTC ICE offers host candidates on (``webrtc_ice_interfaces``).

aioice (0.13, under aiortc 1.16) gathers host candidates on every address of every interface but
loopback, through its module function ``aioice.ice.get_host_addresses``. Neither aiortc's
``RTCConfiguration`` nor aioice's ``Connection`` takes the addresses to use (aioice issue #2, open
since 2018; the filter callable proposed in aioice PR #57 was never added), so a patch is the only
way short of copying aioice's gathering. It is scoped: the function is wrapped once, and the
wrapper answers our addresses only inside :func:`host_candidates_on`, through a ContextVar that
the gathering tasks aiortc starts from there inherit; everywhere else (another peer connection in
the process, a test's client) it defers to the function it wrapped. :func:`stray_host_candidates`
then checks the answer, so an aioice that stops calling the function fails closed, not open.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import aioice.ice

from telephony.settings import TelephonySettings
from voice.errors import ConfigError

_ADDRESSES: ContextVar[tuple[str, ...] | None] = ContextVar("webrtc_ice_addresses", default=None)


def ice_addresses(settings: TelephonySettings) -> tuple[str, ...] | None:
    """The addresses our host candidates may use; None for every interface (aioice's choice).

    ``webrtc_ice_interfaces`` entries are IP addresses, interface names or host names; unset, the
    bind address ``sip_host`` decides (0.0.0.0 or ``::``: every interface).

    Raises:
        ConfigError: an entry names no address of this host.
    """
    addresses: list[str] = []
    for entry in settings.webrtc_ice_interfaces or (settings.sip_host,):
        found = _addresses_of(entry)
        if found is None:
            return None
        if not found:
            raise ConfigError(f"webrtc_ice_interfaces: {entry!r} is no address, interface or host name here",
                              hint="list this host's addresses or interface names (ip addr)")
        addresses += [address for address in found if address not in addresses]
    return tuple(addresses)


def _addresses_of(entry: str) -> list[str] | None:
    """An entry's addresses; None for an unspecified address (0.0.0.0, ``::``: all)."""
    try:
        address = ipaddress.ip_address(entry)
    except ValueError:
        pass
    else:
        return None if address.is_unspecified else [str(address)]
    import ifaddr  # a dependency of aioice; only needed for interface names

    for adapter in ifaddr.get_adapters():
        if entry in (adapter.name, adapter.nice_name):
            # Like aioice: IPv4, and IPv6 without a scope (link-local needs one to bind).
            return [ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                    for ip in adapter.ips if isinstance(ip.ip, str) or ip.ip[2] == 0]
    try:  # a host name (sip_host "localhost"): what binding to it would use
        infos = socket.getaddrinfo(entry, None, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _ScopedHostAddresses:
    """Stands in for ``aioice.ice.get_host_addresses``: our addresses inside
    :func:`host_candidates_on`, the wrapped function's answer elsewhere."""

    def __init__(self, wrapped: Callable[[bool, bool], list[str]]) -> None:
        self.wrapped = wrapped

    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = _ADDRESSES.get()
        if addresses is None:
            return self.wrapped(use_ipv4, use_ipv6)
        return [address for address in addresses if (use_ipv6 if ":" in address else use_ipv4)]


@contextmanager
def host_candidates_on(addresses: tuple[str, ...] | None) -> Iterator[None]:
    """Peer connections gathering within this block (``setLocalDescription``) offer host
    candidates on ``addresses`` only; None changes nothing."""
    if addresses is None:
        yield
        return
    current = aioice.ice.get_host_addresses
    if not isinstance(current, _ScopedHostAddresses):  # once (again if a test replaced it)
        aioice.ice.get_host_addresses = _ScopedHostAddresses(current)
    token = _ADDRESSES.set(addresses)
    try:
        yield
    finally:
        _ADDRESSES.reset(token)


def stray_host_candidates(sdp: str, addresses: tuple[str, ...]) -> list[str]:
    """The addresses of ``sdp``'s host candidates that are not in ``addresses``."""
    allowed = {ipaddress.ip_address(address) for address in addresses}
    stray = []
    for line in sdp.splitlines():
        # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
        parts = line.split()
        if line.startswith("a=candidate:") and len(parts) >= 8 and parts[7] == "host":
            try:
                if ipaddress.ip_address(parts[4]) in allowed:
                    continue
            except ValueError:
                pass  # an mDNS name or garbage: not one of ours
            stray.append(parts[4])
    return stray
