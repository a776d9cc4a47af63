"""SIP messages (RFC 3261 section 7): parse, validate, build responses, serialize.

Why our own: an SRS needs the start line, about ten headers, header parameters and the body;
that is a few hundred lines, with full control over what counts as malformed (answered 400)
versus unreadable (dropped). ``sipmessage`` 0.7.1 would add a dependency without covering
multipart bodies or the 400-versus-drop distinction. Header names are kept canonical (compact
forms expanded) and values verbatim, so a response can copy Via, From, To, Call-ID and CSeq.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from telephony.errors import SipParseError

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE_BYTES = 65535
COMPACT_FORMS = {
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "v": "Via",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "x": "Session-Expires",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Call-ID",
        "From",
        "To",
        "Via",
        "Contact",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Max-Forwards",
        "Supported",
        "Require",
        "Allow",
        "Accept",
        "User-Agent",
        "Server",
        "Content-Disposition",
        "Subject",
        "Content-Encoding",
        "Record-Route",
        "Route",
        "Session-Expires",
        "Min-SE",
    )
} | {"cseq": "CSeq", "call-id": "Call-ID", "www-authenticate": "WWW-Authenticate"}
REQUIRED_REQUEST_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")
_NUMBER = re.compile(r"[0-9]+")
MAX_NUMBER_DIGITS = 10
"""Digits (after leading zeros) of the numbers we read: every one fits (CSeq < 2**31 by RFC 3261
8.1.1.5, Content-Length, ports, payload types, clock rates), and ``int`` of over 4,300 digits
raises ValueError (a 500 and a traceback, not a 400 with a Warning)."""


def is_number(text: str) -> bool:
    """True for a non-empty run of ASCII digits only.

    Why not ``str.isdigit``: it accepts ``"²"`` and other Unicode digits that ``int`` rejects
    (or reads as digits), so a hostile header would escape the parser as ``ValueError``.
    """
    return _NUMBER.fullmatch(text) is not None


def is_short_number(text: str) -> bool:
    """:func:`is_number` of at most ``MAX_NUMBER_DIGITS`` digits after leading zeros (``1*DIGIT``
    allows those); read it with :func:`number_value`."""
    return is_number(text) and len(text.lstrip("0")) <= MAX_NUMBER_DIGITS


def number_value(text: str) -> int:
    """The value of a text that :func:`is_short_number` accepted.

    Why not ``int(text)``: ``int`` counts leading zeros towards its 4,300-digit limit.
    """
    return int(text.lstrip("0") or "0")


def canonical_name(name: str) -> str:
    """Expand compact forms and normalise case of the headers we use."""
    lowered = name.strip().lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    return _CANONICAL.get(lowered, "-".join(part.capitalize() for part in lowered.split("-")))


@dataclass
class SipMessage:
    """A request (``method`` and ``uri`` set) or a response (``status`` set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        """True for requests."""
        return self.method is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of header ``name`` (any case, compact form allowed)."""
        wanted = canonical_name(name)
        return next((value for key, value in self.headers if key == wanted), default)

    def get_all(self, name: str) -> list[str]:
        """All values of header ``name``, in order (comma-joined lines are not split)."""
        wanted = canonical_name(name)
        return [value for key, value in self.headers if key == wanted]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one value."""
        wanted = canonical_name(name)
        self.headers = [(key, val) for key, val in self.headers if key != wanted]
        self.headers.append((wanted, value))

    @property
    def call_id(self) -> str:
        """The Call-ID (empty if missing)."""
        return (self.get("Call-ID") or "").strip()

    @property
    def cseq(self) -> tuple[int, str]:
        """(sequence number, method) of the CSeq header.

        Raises:
            SipParseError: missing or malformed CSeq.
        """
        value = self.get("CSeq")
        parts = (value or "").split()
        if len(parts) != 2 or not is_short_number(parts[0]) or not _TOKEN.match(parts[1]):
            raise SipParseError(f"malformed CSeq {value!r}")
        return number_value(parts[0]), parts[1].upper()

    def to_bytes(self) -> bytes:
        """Serialize, with Content-Length set from the body."""
        if self.is_request:
            start = f"{self.method} {self.uri} {SIP_VERSION}"
        else:
            start = f"{SIP_VERSION} {self.status} {self.reason}"
        lines = [start] + [
            f"{key}: {value}" for key, value in self.headers if key != "Content-Length"
        ]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete SIP message (a datagram, or a TCP message framed by Content-Length).

    Raises:
        SipParseError: the message is malformed. ``error.headers`` holds whatever headers
            could be read, so the caller can still answer 400 when Via, From, To, Call-ID and
            CSeq are among them.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    head, body = _split_head(data)
    lines = _unfold(decode_head(head).split("\n"))
    if not lines:
        raise SipParseError("empty message")
    headers, bad_header = _parse_headers(lines[1:])
    message = SipMessage(headers=headers)
    problem = _parse_start_line(lines[0], message) or bad_header
    problem = problem or _check_length(message, body)
    if problem is None and message.is_request:
        problem = validation_problem(message)
    if problem is not None:
        raise SipParseError(problem, headers=headers)
    return message


def decode_head(head: bytes) -> str:
    """The start line and headers as text: UTF-8 (RFC 3261 25.1), line by line, else Latin-1.

    Why lenient: older PBXs and ISDN gateways put the calling name in the From display name as
    Latin-1 (``"José Müller"``); refusing the message left such calls unanswered and unrecorded.
    Latin-1 maps every byte, so a line never fails, and the text stays valid Unicode (no lone
    surrogates) for the logs, the pipeline's metadata and the UTF-8 of our responses.
    """
    lines = []
    for raw in head.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode("latin-1"))
    return "\n".join(lines)


def salvage_headers(data: bytes) -> list[tuple[str, str]]:
    """Whatever headers a message has, read leniently (to answer one we failed to handle)."""
    head, _ = _split_head(data[:MAX_MESSAGE_BYTES])
    lines = _unfold(decode_head(head).split("\n"))
    return _parse_headers(lines[1:])[0]


def validation_problem(request: SipMessage) -> str | None:
    """Why a parsed request breaks RFC 3261 8.1.1 (missing headers, CSeq mismatch), or None."""
    missing = [name for name in REQUIRED_REQUEST_HEADERS if not request.get(name)]
    if missing:
        return f"missing header(s): {', '.join(missing)}"
    try:
        _, method = request.cseq
    except SipParseError as exc:
        return exc.message
    if method != request.method:
        return f"CSeq method {method} does not match request method {request.method}"
    return None


def response_to(
    request: SipMessage,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
) -> SipMessage:
    """A response copying the request's Via, From, To (plus ``to_tag`` if it has none),
    Call-ID and CSeq, as RFC 3261 8.2.6.2 requires, and Record-Route in 1xx/2xx to INVITE."""
    copied = [
        (key, value) for key, value in request.headers if key in ("Via", "From", "Call-ID", "CSeq")
    ]
    to = request.get("To") or ""
    if to_tag and tag_of(to) is None:
        to = f"{to};tag={to_tag}"
    copied.insert(2 if len(copied) >= 2 else len(copied), ("To", to))
    if request.method == "INVITE" and 100 < status < 300:
        # RFC 3261 12.1.1: responses that set up (or refresh) a dialog echo Record-Route, in
        # order, so record-routing proxies stay on the path of ACK and BYE.
        copied += [("Record-Route", value) for value in request.get_all("Record-Route")]
    return SipMessage(status=status, reason=reason, headers=copied + list(headers), body=body)


def option_tags(message: SipMessage, *names: str) -> set[str]:
    """The option tags (``timer``, ``siprec``) listed in headers ``names``, lower-cased."""
    values = [value for name in names for value in message.get_all(name)]
    return {tag.strip().lower() for value in values for tag in value.split(",") if tag.strip()}


def warning_header(message: str, *, code: int = 399) -> tuple[str, str]:
    """A Warning header (RFC 3261 20.43) carrying our explanation: printable, one line, short."""
    text = re.sub(r"[^\x20-\x7e]", " ", message)[:100] or "Bad Request"
    return ("Warning", f'{code} nextline "{text.replace(chr(34), chr(39))}"')


def split_header_values(values: list[str]) -> list[str]:
    """Comma-separated header values (Route, Record-Route) as one list, in order.

    Commas inside ``<...>`` or quotes belong to the value (a URI parameter, a display name).
    """
    items: list[str] = []
    for value in values:
        depth, quoted, start = 0, False, 0
        for index, char in enumerate(value):
            if char == '"':
                quoted = not quoted
            elif not quoted and char in "<>":
                depth += 1 if char == "<" else -1
            elif char == "," and not quoted and depth == 0:
                items.append(value[start:index].strip())
                start = index + 1
        items.append(value[start:].strip())
    return [item for item in items if item]


# --- header values ------------------------------------------------------------------------


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact value: optional display name, URI and header parameters."""

    uri: str
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Alice" <sip:alice@x>;tag=1`` or ``sip:alice@x;tag=1``."""
    value = value.strip()
    if "<" in value and ">" in value:
        display, _, rest = value.partition("<")
        uri, _, param_text = rest.partition(">")
        display = display.strip().strip('"')
    else:
        uri, _, param_text = value.partition(";")
        param_text, display = ";" + param_text if param_text else "", ""
    return NameAddr(uri=uri.strip(), display=display, params=_params(param_text))


def tag_of(value: str) -> str | None:
    """The ``tag`` parameter of a From/To value."""
    return parse_name_addr(value).params.get("tag") or None


def via_branch(via: str) -> str:
    """The ``branch`` parameter of a Via value (empty when missing, as in RFC 2543 peers)."""
    return _params(";" + via.partition(";")[2]).get("branch", "")


def uri_user(uri: str) -> str:
    """The user part of a SIP URI (``sip:agent42@example.com`` -> ``agent42``)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0] if "@" in rest else ""


def uri_host(uri: str) -> str:
    """The host part of a SIP URI, without port or parameters."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    host = rest.split("@", 1)[-1]
    return re.split(r"[:;>?]", host, maxsplit=1)[0].lower()


def _params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in text.split(";")[1:]:
        name, _, val = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = val.strip().strip('"')
    return params


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = data.find(separator)
        if index >= 0:
            return data[:index], data[index + len(separator) :]
    return data, b""


def _unfold(raw_lines: list[str]) -> list[str]:
    lines: list[str] = []
    for raw in raw_lines:
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        elif line:
            lines.append(line)
    return lines


def _parse_headers(lines: list[str]) -> tuple[list[tuple[str, str]], str | None]:
    headers: list[tuple[str, str]] = []
    problem = None
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name.strip()):
            problem = problem or f"malformed header line {line[:40]!r}"
            continue
        headers.append((canonical_name(name), value.strip()))
    return headers, problem


def _parse_start_line(line: str, message: SipMessage) -> str | None:
    if match := _REQUEST_LINE.match(line):
        message.method, message.uri = match.group(1).upper(), match.group(2)
        return None
    if match := _STATUS_LINE.match(line):
        message.status, message.reason = int(match.group(1)), match.group(2)
        return None
    message.method = line.split(" ", 1)[0].upper() if _TOKEN.match(line.split(" ", 1)[0]) else None
    return f"malformed start line {line[:60]!r}"


def _check_length(message: SipMessage, body: bytes) -> str | None:
    declared = message.get("Content-Length")
    if declared is None:
        message.body = body
        return None
    if not is_short_number(declared.strip()):
        return f"malformed Content-Length {declared!r}"
    length = number_value(declared.strip())
    if length > len(body):
        return f"Content-Length {length} exceeds the {len(body)} body bytes received"
    message.body = body[:length]
    return None
