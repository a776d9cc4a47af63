"""Settings of every telephony ingress, in one frozen dataclass.

Structure and defaults live here; the server fills them from flags, its config file and the
environment (:meth:`TelephonySettings.from_env` reads the ``NEXTLINE_*`` variables). Secrets
(AudioHook API keys, the Twilio auth token) come only from the environment and never appear in ``repr``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from voice.config import parse_api_keys
from voice.errors import ConfigError


def _frozen(mapping: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, kw_only=True)
class TelephonySettings:
    """Options shared by the SIP, WebSocket and WebRTC ingresses."""

    sample_rate: int = 16000
    """Rate of the ``AudioFrame``s handed to the pipeline; ingress audio is resampled to it."""
    default_tenant: str = "default"
    """Tenant of a call whose ingress names none."""

    # --- SIP / RTP ---
    sip_host: str = "127.0.0.1"
    """Address the SIP listener binds (UDP and TCP)."""
    sip_port: int = 5060
    """SIP port; 0 picks a free one (tests)."""
    sip_transports: tuple[str, ...] = ("udp", "tcp")
    """Which SIP transports to listen on."""
    media_address: str | None = None
    """Address written into SDP answers (``c=``); defaults to ``sip_host``."""
    rtp_port_min: int = 40000
    """First RTP port offered (even ports; one per m-line); 0 lets the OS pick (tests)."""
    rtp_port_max: int = 49998
    """Last RTP port offered."""
    jitter_delay: float = 0.06
    """Longest time a packet waits in the reorder buffer for a missing predecessor (seconds)."""
    ring_time: float = 0.0
    """Seconds between 180 Ringing and 200 OK (0: answer at once); CANCEL works in this window."""
    rtp_timeout: float = 60.0
    """End a SIP call when no RTP arrived for this long (lost BYE)."""
    sip_min_session_expires: int = 90
    """Smallest RFC 4028 Session-Expires (seconds) we accept; a smaller one gets 422 with this as
    Min-SE. RFC 4028 5 puts the floor at 90 s: lower it only in tests."""
    sip_tcp_idle_timeout: float = 300.0
    """Close a SIP TCP connection that carries no call and sent nothing for this long (seconds)."""
    siprec_agent_pattern: str = r"(?i)\bagent"
    """Regex matched against a SIPREC participant's AOR and name to find the agent."""
    sip_trusted_sources: tuple[str, ...] = ()
    """Addresses or networks (CIDR) SIP is accepted from: the SBC or the carrier's ranges.
    Anything else is dropped unanswered (UDP) or its connection closed (TCP). Empty: any
    source, as for a listener only an SBC can reach (the server warns when it is not loopback)."""
    tenant_by_domain: Mapping[str, str] = field(default_factory=_frozen)
    """SIP domain (of the agent AOR or the request URI) -> tenant, when no X-Tenant header."""

    # --- WebSocket ingress ---
    audiohook_api_keys: Mapping[str, str] = field(default_factory=_frozen, repr=False)
    """Accepted AudioHook ``X-API-KEY`` values -> tenant ('' = tenant from open parameters).
    Empty mapping: AudioHook refuses every connection (fail closed)."""
    twilio_auth_token: str = field(default="", repr=False)
    """Twilio account auth token: ``/ws/twilio`` then refuses an upgrade without Twilio's valid
    ``X-Twilio-Signature`` (telephony/websocket/twilio_auth.py). Empty: any client is accepted
    (a warning at start says so). Environment only: ``NEXTLINE_TWILIO_AUTH_TOKEN``."""
    twilio_stream_url: str = ""
    """The public URL Twilio connects to (``wss://voice.example.com/ws/twilio``), when a proxy in
    front of the server changes it; it is what Twilio signs."""
    max_message_bytes: int = 1 << 20
    """Largest WebSocket message accepted (1 MiB: 65 s of 8 kHz stereo PCMU)."""
    audiohook_close_timeout: float = 5.0
    """After our ``disconnect``, seconds the AudioHook client has to send ``close`` before the
    socket is closed anyway."""
    websocket_start_timeout: float = 10.0
    """Seconds a Twilio or AudioHook socket may stay open before its call starts (``start`` /
    ``open``); then it is closed as a protocol error (1008). Genesys's connection probe, which
    opens no call, must close within it too."""
    websocket_idle_timeout: float = 60.0
    """End a started WebSocket call that received no message at all for this long (a lost
    ``stop`` or ``close``), as ``rtp_timeout`` does for SIP. Twilio streams media through
    silence and AudioHook pings while paused, so only a dead far end gets there."""

    # --- WebRTC ---
    webrtc_connect_timeout: float = 20.0
    """Seconds a WebRTC call may take to connect (ICE + DTLS) before it is closed."""
    webrtc_ice_interfaces: tuple[str, ...] | None = None
    """Where WebRTC ICE offers host candidates: IP addresses, interface names (``eth1``) or host names;
    ``0.0.0.0`` or ``::`` in the list: every interface (aioice's choice, loopback excluded).
    None: follow ``sip_host`` (the server's bind address), so a server bound to one address
    offers candidates on that address only, and one bound to 0.0.0.0 on every interface
    (telephony/webrtc/ice.py)."""

    def __post_init__(self) -> None:
        if self.sample_rate not in (8000, 16000, 24000, 48000):
            raise ConfigError(
                f"sample_rate {self.sample_rate} is not supported",
                hint="use 8000, 16000, 24000 or 48000",
            )
        if not 0 <= self.rtp_port_min <= self.rtp_port_max < 65536:
            raise ConfigError(f"bad RTP port range {self.rtp_port_min}-{self.rtp_port_max}")
        for name in (
            "rtp_timeout",
            "sip_tcp_idle_timeout",
            "audiohook_close_timeout",
            "websocket_start_timeout",
            "websocket_idle_timeout",
            "webrtc_connect_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {getattr(self, name)}")
        for source in self.sip_trusted_sources:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError as exc:
                raise ConfigError(f"sip_trusted_sources: {source!r} is not an address or network",
                                  hint="e.g. 203.0.113.10 or 198.51.100.0/24") from exc
        _check_ice_interfaces(self)
        if not set(self.sip_transports) <= {"udp", "tcp"}:
            raise ConfigError(f"unknown SIP transports {self.sip_transports}", hint="udp, tcp")
        object.__setattr__(self, "tenant_by_domain", _frozen(self.tenant_by_domain))
        object.__setattr__(self, "audiohook_api_keys", _frozen(self.audiohook_api_keys))

    @property
    def sdp_address(self) -> str:
        """The address we tell peers to send RTP to."""
        return self.media_address or self.sip_host

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> TelephonySettings:
        """Settings with secrets read from the environment.

        ``NEXTLINE_AUDIOHOOK_API_KEYS``: comma-separated ``key`` or ``key:tenant`` entries
        (:func:`voice.config.parse_api_keys`).
        ``NEXTLINE_SIP_TENANT_BY_DOMAIN``: comma-separated ``domain=tenant`` entries.
        ``NEXTLINE_TWILIO_AUTH_TOKEN``: the Twilio auth token that signs Media Streams requests.
        """
        env = os.environ if environ is None else environ
        settings = cls(**overrides)  # type: ignore[arg-type]
        keys = parse_api_keys(env.get("NEXTLINE_AUDIOHOOK_API_KEYS", ""))
        domains = _parse_pairs(env.get("NEXTLINE_SIP_TENANT_BY_DOMAIN", ""))
        return replace(
            settings,
            audiohook_api_keys={**keys, **settings.audiohook_api_keys},
            tenant_by_domain={**domains, **settings.tenant_by_domain},
            twilio_auth_token=settings.twilio_auth_token or env.get("NEXTLINE_TWILIO_AUTH_TOKEN", ""),
        )


def _check_ice_interfaces(settings: TelephonySettings) -> None:
    """Accept a list (YAML) or a comma-separated string for ``webrtc_ice_interfaces``."""
    value: object = settings.webrtc_ice_interfaces
    if value is None:
        return
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"webrtc_ice_interfaces must be a list of addresses or interface names, not {value!r}")
    entries = tuple(item.strip() for item in items if item.strip())
    if not entries:
        raise ConfigError("webrtc_ice_interfaces is empty: no ICE host candidate could be offered",
                          hint="list addresses or interfaces, or leave it unset to follow sip_host")
    object.__setattr__(settings, "webrtc_ice_interfaces", entries)


def _parse_pairs(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"'{item}' is not of the form name=value")
        pairs[key.strip()] = value.strip()
    return pairs
