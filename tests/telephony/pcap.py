"""A small reader of classic pcap files: UDP datagrams over IPv4 with their capture times.

Why our own instead of dpkt or scapy: the fixtures need only pcap + Ethernet/Linux-cooked +
IPv4 (with fragment reassembly, for large SIP INVITEs) + UDP, about 80 lines; scapy takes
seconds to import and dpkt is one more dependency for the test suite alone.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_SLL, LINK_SLL2 = 0, 1, 101, 113, 276


@dataclass(frozen=True)
class Datagram:
    """One UDP payload as captured."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def read_udp(path: str | Path) -> Iterator[Datagram]:
    """Every UDP datagram in a classic pcap file, in capture order."""
    data = Path(path).read_bytes()
    magic = data[:4]
    endian = {
        b"\xd4\xc3\xb2\xa1": "<",
        b"\xa1\xb2\xc3\xd4": ">",
        b"\x4d\x3c\xb2\xa1": "<",
        b"\xa1\xb2\x3c\x4d": ">",
    }.get(magic)
    if endian is None:
        raise ValueError(f"{path}: not a classic pcap file (pcapng is not supported)")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    offset, fragments = 24, {}
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(endian + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        ip = _ip_payload(frame, linktype)
        if ip is None:
            continue
        datagram = _udp(ip, sec + frac / (1e9 if nanos else 1e6), fragments)
        if datagram is not None:
            yield datagram


def _ip_payload(frame: bytes, linktype: int) -> bytes | None:
    if linktype == LINK_ETHERNET:
        ethertype, start = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in (0x8100, 0x88A8):  # VLAN tags
            ethertype, start = struct.unpack_from("!H", frame, start + 2)[0], start + 4
    elif linktype == LINK_SLL:
        ethertype, start = struct.unpack_from("!H", frame, 14)[0], 16
    elif linktype == LINK_SLL2:
        ethertype, start = struct.unpack_from("!H", frame, 0)[0], 20
    elif linktype == LINK_NULL:
        ethertype, start = 0x0800, 4
    elif linktype == LINK_RAW:
        ethertype, start = 0x0800, 0
    else:
        return None
    return frame[start:] if ethertype == 0x0800 else None


def _udp(ip: bytes, time: float, fragments: dict) -> Datagram | None:
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    header = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    ident, flags_offset = struct.unpack_from("!HH", ip, 4)
    more, frag_offset = flags_offset & 0x2000, (flags_offset & 0x1FFF) * 8
    body = ip[header:total]
    src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    if more or frag_offset:
        parts = fragments.setdefault((src, dst, ident), {})
        parts[frag_offset] = body
        if more:
            return None
        body = b"".join(parts[k] for k in sorted(parts))
        del fragments[(src, dst, ident)]
    if len(body) < 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", body)
    return Datagram(time, (src, sport), (dst, dport), body[8:length])
