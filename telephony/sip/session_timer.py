"""RFC 4028 session timers for our UAS: Session-Expires and Min-SE in INVITE, re-INVITE and UPDATE.

SBCs (Cisco CUBE, Oracle, AudioCodes) ask for a timer such as ``Session-Expires: 1800;refresher=uac``
with ``Min-SE: 90``, then refresh the session with a re-INVITE or UPDATE before it expires. What
we do as the UAS (RFC 4028 9 and 10):

- a Session-Expires below our minimum (``sip_min_session_expires``) gets 422 Session Interval Too
  Small with that minimum in ``Min-SE``;
- otherwise the 2xx carries the request's interval unchanged and the refresher: the UAC's choice;
  when it named none, ``uac`` if it supports ``timer`` (the SBC refreshes, we watch), else ``uas``
  as section 9 requires. ``Require: timer`` goes with ``refresher=uac``;
- every 2xx we send to a refresh (re-INVITE or UPDATE, with or without SDP; one without
  Session-Expires keeps the running interval) restarts the timer, and so does a 2xx to our own;
- when we are the refresher we send an UPDATE without SDP at half the interval (section 10);
- no refresh by the expiry minus min(32 s, interval/3): we send BYE and the call ends with reason
  ``session expired``, recorded like any other hang-up.

We refresh only with UPDATE (a re-INVITE would need a client INVITE transaction and an offer of
our own), so when the refresher would have to be us and the UAC does not list UPDATE in ``Allow``
we answer without Session-Expires, as a UAS without the extension does: no timer for that session.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from telephony.errors import ProtocolError
from telephony.sip.message import SipMessage, is_number, option_tags

log = logging.getLogger(__name__)
SESSION_EXPIRED = "session expired"
"""``CallEndedFrame.reason`` of a call whose refresh never came."""
_VALUE = re.compile(r"^\s*(\S+?)\s*(?:;(.*))?$")


class SessionIntervalTooSmallError(ProtocolError):
    """A Session-Expires below our minimum (SIP 422 Session Interval Too Small)."""

    def __init__(self, interval: int, min_se: int) -> None:
        super().__init__(
            f"Session-Expires {interval} is below our minimum of {min_se} s",
            hint=f"retry with Session-Expires of at least {min_se} (RFC 4028 6)",
        )
        self.min_se = min_se
        """Our minimum, sent back in the 422's Min-SE header."""


@dataclass(frozen=True)
class SessionTimer:
    """The session interval agreed for a dialog and who refreshes it."""

    interval: int
    """Seconds the session lives without a refresh (delta-seconds of Session-Expires)."""
    refresher: str = "uac"
    """``uac``: the far end refreshes and we watch; ``uas``: we refresh with UPDATE."""

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Session-Expires for our 2xx, with ``Require: timer`` when the UAC refreshes (RFC 4028 9)."""
        expires = ("Session-Expires", f"{self.interval};refresher={self.refresher}")
        return (expires, ("Require", "timer")) if self.refresher == "uac" else (expires,)

    def refresh_after(self) -> float | None:
        """Seconds after a refresh at which we send the next one (RFC 4028 10); None: not ours."""
        return self.interval / 2 if self.refresher == "uas" else None

    def bye_after(self) -> float:
        """Seconds after a refresh at which the side that does not refresh sends BYE (RFC 4028 10)."""
        return self.interval - min(32.0, self.interval / 3)


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """(interval, refresher or None) of a Session-Expires value such as ``1800;refresher=uac``.

    Raises:
        ProtocolError: not delta-seconds, or an unknown refresher (answer 400).
    """
    match = _VALUE.match(value)
    seconds = match.group(1) if match else ""
    if not is_number(seconds):
        raise ProtocolError(f"malformed Session-Expires {value!r}", hint="e.g. 1800;refresher=uac")
    refresher = None
    for param in (match.group(2) or "").split(";") if match else ():
        name, _, param_value = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = param_value.strip().lower()
            if refresher not in ("uac", "uas"):
                raise ProtocolError(f"Session-Expires refresher {refresher!r} is neither uac nor uas")
    return int(seconds), refresher


def negotiate_timer(
    request: SipMessage, min_se: int, current: SessionTimer | None, *, invite: SipMessage | None = None
) -> SessionTimer | None:
    """The timer a 2xx to ``request`` sets up: None for no timer, ``current`` when it names none.

    ``invite`` is the dialog's first INVITE, whose ``Allow`` says whether we may refresh with UPDATE.

    Raises:
        SessionIntervalTooSmallError: Session-Expires below ``min_se`` (answer 422).
        ProtocolError: a malformed Session-Expires (answer 400).
    """
    value = request.get("Session-Expires")
    if value is None:
        return current  # RFC 4028 7.4 wants it in every refresh; a request without it changes nothing
    interval, refresher = parse_session_expires(value)
    if interval < min_se:
        raise SessionIntervalTooSmallError(interval, min_se)
    if refresher is None:
        # RFC 4028 9: our choice when the UAC supports timers (it refreshes, we watch), else us.
        refresher = "uac" if "timer" in option_tags(request, "Supported", "Require") else "uas"
    if refresher == "uas" and "update" not in option_tags(invite or request, "Allow") | option_tags(request, "Allow"):
        log.info("call %s: no session timer: we would refresh, but UPDATE is not allowed", request.call_id)
        return None
    return SessionTimer(interval, refresher)
