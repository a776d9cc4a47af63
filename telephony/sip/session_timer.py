"""RFC 4028 session timers for our UAS: Session-Expires and Min-SE in INVITE, re-INVITE and UPDATE.

SBCs (Cisco CUBE, Oracle, AudioCodes) ask for a timer such as ``Session-Expires: 1800;refresher=uac``
with ``Min-SE: 90``, then refresh the session with a re-INVITE or UPDATE before it expires. What
we do as the UAS (RFC 4028 9 and 10):

- a Session-Expires below our minimum (``sip_min_session_expires``) gets 422 Session Interval Too
  Small with that minimum in ``Min-SE``; one above ``MAX_SESSION_EXPIRES`` or not delta-seconds
  gets 400;
- otherwise the 2xx carries the request's interval unchanged and the refresher: the UAC's choice;
  when it named none, ``uac`` if it supports ``timer`` (the SBC refreshes, we watch), else ``uas``.
  A UAC that does not list ``timer`` in ``Supported`` (or ``Require``) never gets ``refresher=uac``
  or ``Require: timer`` (section 9), whatever the request says: we refresh, or there is no timer.
  ``Require: timer`` goes with ``refresher=uac``;
- every 2xx we send to a refresh (re-INVITE or UPDATE, with or without SDP; one without
  Session-Expires keeps the running interval) restarts the timer;
- when we are the refresher we send an UPDATE without SDP at half the interval (section 10), with
  ``refresher=uac``: the parameter names a side of that UPDATE's transaction, whose UAC is us (7.4).
  Its 2xx restarts the timer with the 2xx's Session-Expires (interval and refresher; none: no timer
  any more, 7.2). A 491 is retried after 0 to 2 s (RFC 3311 5.1 via RFC 3261 14.1: the Call-ID is
  the far end's), a 5xx with ``Retry-After`` after that many seconds but at least 1 s, either only
  while the retry still goes out before the BYE is due and at most twice per refresh; a 481 ends
  the call at once with our BYE (reason ``dialog gone``), and so do a 408 and no answer by Timer F
  (reason ``session refresh failed``), as RFC 4028 10 asks; anything else leaves the timer to run
  out;
- a 422 Session Interval Too Small to our UPDATE (RFC 4028 7.4) is retried at once, once per
  refresh, with ``Session-Expires`` raised to the 422's ``Min-SE`` and that ``Min-SE`` in the
  UPDATE; later UPDATEs of the call keep asking at least that much and carry it (7.4: the largest
  Min-SE of the dialog). The retry counts toward the two retries per refresh (a refresh sends
  three UPDATEs at most, whatever it is answered) and, like the others, goes out only before the
  BYE is due. No retry, so the timer runs out as after any other failure, for a second 422, a
  ``Min-SE`` missing, malformed, above ``MAX_SESSION_EXPIRES`` or not above what we asked (the
  same UPDATE would get the same 422). The interval changes only with the retry's 2xx, as above;
- no refresh by the expiry minus min(32 s, interval/3): we send BYE and the call ends with reason
  ``session expired``, recorded like any other hang-up.

We refresh only with UPDATE (a re-INVITE would need a client INVITE transaction and an offer of
our own), so when the refresher would have to be us and the UAC does not list UPDATE in ``Allow``
we answer without Session-Expires, as a UAS without the extension does: no timer for that session.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass

from telephony.errors import ProtocolError
from telephony.sip.message import SipMessage, is_number, option_tags

log = logging.getLogger(__name__)
SESSION_EXPIRED = "session expired"
"""``CallEndedFrame.reason`` of a call whose refresh never came."""
DIALOG_GONE = "dialog gone"
"""``CallEndedFrame.reason`` of a call whose refresh got 481: the far end no longer knows the dialog."""
REFRESH_FAILED = "session refresh failed"
"""``CallEndedFrame.reason`` of a call whose refresh got 408 or no answer (RFC 4028 10: BYE)."""
MIN_5XX_RETRY = 1.0
"""Seconds at least between a refresh answered 5xx with Retry-After and its retry."""
MAX_SESSION_EXPIRES = 2**31 - 1
"""Largest Session-Expires we take (68 years: no real interval is refused). RFC 4028 sets no upper
bound; SIP stacks keep the value in a signed 32-bit integer, and without a bound a value of hundreds
of digits made ``interval / 3`` raise OverflowError while building the 2xx. Larger gets 400."""
_VALUE = re.compile(r"^\s*(\S+?)\s*(?:;(.*))?$")
_RETRY_AFTER = re.compile(r"^\s*([0-9]+)")


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
    """As in the requests the far end sends us: ``uac``: the far end refreshes and we watch; ``uas``:
    we refresh with UPDATE. In our own UPDATE the roles swap (see ``refresh_headers``)."""
    min_se: int | None = None
    """The far end's Min-SE from a 422 to our refresh: our UPDATEs ask at least that and carry it."""

    @property
    def asked(self) -> int:
        """The Session-Expires of our refreshing UPDATE: never below the far end's Min-SE (RFC 4028 7.4)."""
        return max(self.interval, self.min_se or 0)

    def headers(self) -> tuple[tuple[str, str], ...]:
        """Session-Expires for our 2xx, with ``Require: timer`` when the UAC refreshes (RFC 4028 9)."""
        expires = ("Session-Expires", f"{self.interval};refresher={self.refresher}")
        return (expires, ("Require", "timer")) if self.refresher == "uac" else (expires,)

    def refresh_headers(self) -> tuple[tuple[str, str], ...]:
        """Supported and Session-Expires of our refreshing UPDATE, whose UAC is us (RFC 4028 7.4)."""
        ours = "uac" if self.refresher == "uas" else "uas"
        headers = ("Supported", "timer"), ("Session-Expires", f"{self.asked};refresher={ours}")
        return headers if self.min_se is None else (*headers, ("Min-SE", str(self.min_se)))

    def refresh_after(self) -> float | None:
        """Seconds after a refresh at which we send the next one (RFC 4028 10); None: not ours."""
        return self.interval / 2 if self.refresher == "uas" else None

    def bye_after(self) -> float:
        """Seconds after a refresh at which the side that does not refresh sends BYE (RFC 4028 10)."""
        return self.interval - min(32.0, self.interval / 3)


def parse_session_expires(value: str) -> tuple[int, str | None]:
    """(interval, refresher or None) of a Session-Expires value such as ``1800;refresher=uac``.

    Raises:
        ProtocolError: not delta-seconds, above ``MAX_SESSION_EXPIRES``, or an unknown refresher
            (answer 400).
    """
    match = _VALUE.match(value)
    seconds = match.group(1) if match else ""
    if not is_number(seconds):
        raise ProtocolError(f"malformed Session-Expires {value[:40]!r}", hint="e.g. 1800;refresher=uac")
    digits = seconds.lstrip("0") or "0"  # int() of over 4300 digits raises ValueError: check first
    if len(digits) > len(str(MAX_SESSION_EXPIRES)) or int(digits) > MAX_SESSION_EXPIRES:
        raise ProtocolError(f"Session-Expires {value[:20]!r} is over {MAX_SESSION_EXPIRES} s", hint="e.g. 1800")
    refresher = None
    for param in (match.group(2) or "").split(";") if match else ():
        name, _, param_value = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = param_value.strip().lower()
            if refresher not in ("uac", "uas"):
                raise ProtocolError(f"Session-Expires refresher {refresher[:20]!r} is neither uac nor uas")
    return int(digits), refresher


def negotiate_timer(
    request: SipMessage, min_se: int, current: SessionTimer | None, *, invite: SipMessage | None = None
) -> SessionTimer | None:
    """The timer a 2xx to ``request`` sets up: None for no timer, ``current`` when it names none.

    ``invite`` is the dialog's first INVITE, whose ``Allow`` says whether we may refresh with UPDATE.

    Raises:
        SessionIntervalTooSmallError: Session-Expires below ``min_se`` (answer 422).
        ProtocolError: a malformed or oversized Session-Expires (answer 400).
    """
    value = request.get("Session-Expires")
    supported = "timer" in option_tags(request, "Supported", "Require")
    if value is None:
        # RFC 4028 7.4 wants it in every refresh; a request without it keeps the running interval.
        if current is None or supported or current.refresher == "uas":
            return current
        interval, asked = current.interval, None
    else:
        interval, asked = parse_session_expires(value)
        if interval < min_se:
            raise SessionIntervalTooSmallError(interval, min_se)
    # RFC 4028 9: refresher=uac (with Require: timer) only toward a UAC that supports timers; when it
    # named no refresher, ours to pick: it refreshes, we watch. Toward any other UAC we refresh.
    refresher = (asked or "uac") if supported else "uas"
    if refresher == "uas" and "update" not in option_tags(invite or request, "Allow") | option_tags(request, "Allow"):
        log.info("call %s: no session timer: we would refresh, but UPDATE is not allowed", request.call_id)
        return None
    return SessionTimer(interval, refresher)


def answered_timer(response: SipMessage, current: SessionTimer | None, min_se: int) -> SessionTimer | None:
    """The timer a 2xx to our refreshing UPDATE sets up (RFC 4028 7.2): its Session-Expires, whose
    refresher names a side of our UPDATE (``uac``: us); None when it has none (no timer any more).

    A Session-Expires we cannot use (malformed, below ``min_se`` or oversized) keeps ``current``.
    """
    value = response.get("Session-Expires")
    if value is None:
        log.info("call %s: the 2xx to our refresh has no Session-Expires: no session timer", response.call_id)
        return None
    try:
        interval, refresher = parse_session_expires(value)
    except ProtocolError as exc:
        log.info("call %s: ignoring the Session-Expires of the 2xx to our refresh: %s", response.call_id, exc)
        return current
    if interval < min_se:
        log.info("call %s: ignoring Session-Expires %d below our minimum %d", response.call_id, interval, min_se)
        return current
    # Back in the frame of the far end's requests: refresher=uas of our UPDATE is the far end. A
    # Min-SE learned from a 422 stays: later refreshes would get the same 422 without it (7.4).
    return SessionTimer(interval, "uac" if refresher == "uas" else "uas", current.min_se if current else None)


def raised_interval(response: SipMessage, timer: SessionTimer) -> int | None:
    """The Session-Expires to retry our refresh with after this 422: its Min-SE (RFC 4028 7.4).

    None (no retry) for another status, or a Min-SE missing, malformed, above ``MAX_SESSION_EXPIRES``
    or not above what we asked: the same UPDATE would only get the same 422.
    """
    value = response.get("Min-SE")
    if response.status != 422 or value is None:
        return None
    try:
        min_se, _ = parse_session_expires(value)  # the same grammar: delta-seconds *(;generic-param)
    except ProtocolError:
        log.info("call %s: no retry: unusable Min-SE %r in the 422 to our refresh", response.call_id, value[:40])
        return None
    return min_se if min_se > timer.asked else None


def retry_delay(response: SipMessage) -> float | None:
    """Seconds after which a refresh answered with this non-2xx may be sent again; None: no retry.

    491 (the far end has a request of its own in progress): 0 to 2 s in steps of 10 ms, the range of
    the UAC that does not own the dialog's Call-ID (RFC 3311 5.1, RFC 3261 14.1); the far end chose
    the Call-ID of the call it sent us. A 5xx with ``Retry-After`` (RFC 3261 21.5): that many seconds.
    """
    if response.status == 491:
        return random.randint(0, 200) / 100  # not a secret: spreads retries (RFC 3261 14.1)
    if response.status is not None and 500 <= response.status < 600:
        match = _RETRY_AFTER.match(response.get("Retry-After") or "")
        if match and len(match.group(1)) <= 10:  # longer: past any deadline anyway
            return max(float(match.group(1)), MIN_5XX_RETRY)  # "Retry-After: 0" is no invitation to flood
    return None
