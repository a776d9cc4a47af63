"""What tests with real peer programs share: skipping when a tool is missing, loopback-only ICE."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SIPP_PCAPS = Path("/usr/share/sip-tester")
"""Where Debian's sip-tester package puts the RTP pcaps sipp plays."""


def need(*tools: str) -> None:
    """Skip unless the peer programs are installed (scripts/setup.sh installs them)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup.sh installs them)")
    if "sipp" in tools and not (SIPP_PCAPS / "g711a.pcap").is_file():
        pytest.skip("sipp's pcaps are not in /usr/share/sip-tester")


def ice_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice skips 127.0.0.1 when gathering host candidates; offer only loopback instead."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
