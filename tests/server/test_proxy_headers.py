"""Behind a TLS-terminating reverse proxy: the proxy's ``X-Forwarded-Proto`` and
``X-Forwarded-For`` make the session cookie ``Secure`` and put the real client in the access log,
but only when they come from an address in ``trusted_proxies``; a direct client's copies of the
same headers change nothing.

Served by real uvicorn with the options ``voice serve`` gives it (uvicorn's own check off: its
defaults would trust any process on the host, 127.0.0.1 and ::1). The "proxy" and the "direct
clients" connect from loopback addresses (Linux routes all of 127.0.0.0/8 to ``lo``) while every
request goes to 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.server.harness import ScriptedCall, ServerThread, make_services, new_app
from voice.config import load_config
from voice.errors import ConfigError
from voice.store.access_log import AccessLog
from voice.store.agents import AgentStore

pytestmark = pytest.mark.unit
PROXY, DIRECT, SAME_HOST = "127.0.0.2", "127.0.0.3", "127.0.0.1"
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def _client(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10.0)


def _sign_in_and_view(server: ServerThread, source: str, token: str, call_id: str) -> str:
    """Sign in and open a call's transcript from ``source``; returns the session cookie's header."""
    with _client(source) as client:
        signed_in = client.post(f"{server.url}/api/session", json={"token": token}, headers=FORWARDED)
        assert signed_in.status_code == 200, signed_in.text
        viewed = client.get(f"{server.url}/api/calls/{call_id}",
                            headers={**FORWARDED, "Authorization": f"Bearer {token}"})
        assert viewed.status_code == 200, viewed.text
        return signed_in.headers["set-cookie"]


def test_only_a_trusted_proxy_makes_the_cookie_secure_and_names_the_client(tmp_path: Path) -> None:
    services = make_services(tmp_path, trusted_proxies=f"{PROXY}/32, 10.0.0.0/8")
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    calls = {"CA-proxied": PROXY, "CA-direct": DIRECT, "CA-local": SAME_HOST}
    cookies = {}
    with ServerThread(new_app(services)) as server:
        for call_id, source in calls.items():
            server.run(ScriptedCall(services, call_id, agent_id="alice").start())
            cookies[call_id] = _sign_in_and_view(server, source, sue, call_id)

    assert "secure" in cookies["CA-proxied"].lower().split("; ")
    log = AccessLog(services.store)
    assert [e.client for e in log.entries(call_id="CA-proxied")] == ["203.0.113.7"]
    for call_id in ("CA-direct", "CA-local"):  # a process on the server's own host is no proxy either
        assert "secure" not in cookies[call_id].lower().split("; ")  # forged X-Forwarded-Proto ignored
        assert [e.client for e in log.entries(call_id=call_id)] == [calls[call_id]]  # not the forged one


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    config = load_config(environ={"NEXTLINE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.5,::1"})
    assert config.trusted_proxies == "10.0.0.0/8, 192.168.1.5,::1"
    for bad in ("nginx.internal", "10.0.0.0/33", "10.0.0.1;10.0.0.2"):
        with pytest.raises(ConfigError, match="trusted_proxies") as caught:
            load_config(environ={"NEXTLINE_TRUSTED_PROXIES": bad})
        assert "IP address or network" in str(caught.value)


@pytest.mark.parametrize(
    ("setting", "peer", "believed"),
    [
        (" * ", "198.51.100.9", True),  # spaces around "*" (uvicorn took " *" for a host name)
        ("10.0.0.0/8", "::ffff:10.0.0.5", True),  # an IPv4 proxy on a dual-stack listener
        ("192.168.1.5", "::ffff:192.168.1.5", True),
        ("10.0.0.0/8", "::ffff:11.0.0.5", False),
        ("10.0.0.0/8", "11.0.0.5", False),
    ],
)
def test_the_trusted_proxy_setting_reaches_uvicorn_as_meant(setting: str, peer: str, believed: bool) -> None:
    import asyncio

    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from voice.server.app import trusted_proxy_list

    seen: dict[str, object] = {}

    async def app(scope: dict, receive: object, send: object) -> None:
        seen.update(scheme=scope["scheme"], client=scope["client"])

    scope = {"type": "http", "scheme": "http", "client": (peer, 5000), "headers": [
        (b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"203.0.113.7")]}
    asyncio.run(ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxy_list(setting))(scope, None, None))
    assert (seen["scheme"] == "https") is believed
    assert (seen["client"][0] == "203.0.113.7") is believed  # type: ignore[index]
