"""Typed errors of the telephony ingress.

Each maps to one reaction of the transport that sees it: a ``ProtocolError`` ends that one call
(WebSocket close with the message as reason, SIP 400), an ``UnsupportedMediaError`` refuses the
offer (SIP 488), an ``AuthenticationError`` refuses the connection (HTTP 401). None of them ever
reaches another call.
"""

from __future__ import annotations

from voice.errors import VoiceError


class TelephonyError(VoiceError):
    """Base of the ingress errors."""


class ProtocolError(TelephonyError):
    """The far end sent something malformed or out of protocol order."""


class SipParseError(ProtocolError):
    """A SIP message could not be parsed (answered 400 when enough of it is readable)."""

    def __init__(
        self, message: str, *, hint: str | None = None, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.headers = headers or []
        """The headers that could be read, so a 400 can still be addressed."""


class RtpParseError(ProtocolError):
    """A datagram is not a valid RTP packet."""


class UnsupportedMediaError(TelephonyError):
    """The offer has no codec we can decode (SIP 488 Not Acceptable Here)."""


class AuthenticationError(TelephonyError):
    """The far end did not prove who it is (wrong or missing API key)."""


class MalformedMessageError(ProtocolError):
    """A message is not even syntactically valid (bad JSON, bad base64, odd byte count)."""
