"""Twilio's request signature on the Media Streams WebSocket upgrade (``X-Twilio-Signature``).

Twilio signs every request it makes with the account's auth token: base64 of HMAC-SHA1 over the
URL it connected to (a WebSocket upgrade has no form parameters to append). Without this check
anyone who can reach ``/ws/twilio`` can open a call with any tenant and agent in its
``customParameters``, and it shows on that agent's console and in the database.

Behind a proxy the URL this server sees (``ws://10.0.0.5:8000/ws/twilio``) is not the one Twilio
signed (``wss://voice.example.com/ws/twilio``): set ``twilio_stream_url`` to the public one.
Otherwise the request's own URL is tried as ``wss`` and ``ws``, with and without the default
port, as Twilio's own validators do. The signature covers the URL only, not the messages after
the upgrade: it proves the stream comes from Twilio, and a captured one could be replayed, so the
endpoint still belongs behind TLS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


def twilio_signature(auth_token: str, url: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a WebSocket request to ``url``."""
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_by_twilio(signature: str | None, auth_token: str, urls: Iterable[str]) -> bool:
    """Whether ``signature`` is Twilio's for one of ``urls`` (compared in constant time)."""
    if not signature:
        return False
    return any(hmac.compare_digest(signature.encode(), twilio_signature(auth_token, url).encode())
               for url in urls)


def candidate_urls(public_url: str, host: str, path: str, query: str) -> list[str]:
    """The URLs Twilio may have signed: ``public_url`` (with the request's query) when set, else
    this request's URL as wss and ws, with and without the scheme's default port."""
    if public_url:
        parts = urlsplit(public_url)
        return [urlunsplit(parts._replace(query=query or parts.query))]
    try:
        port = urlsplit(f"//{host}").port
    except ValueError:  # a Host header no URL can have ("h:99999"): nothing Twilio signed
        return []
    urls = []
    for scheme, default in (("wss", 443), ("ws", 80)):
        hosts = [host]
        if port is None:
            hosts.append(f"{host}:{default}")
        elif port == default:
            hosts.append(host.rsplit(":", 1)[0])
        urls += [urlunsplit((scheme, name, path, query, "")) for name in hosts]
    return urls
