"""SIPREC (RFC 7866) bodies: multipart/mixed splitting and recording metadata (RFC 7865).

Metadata is parsed leniently because SRCs in the wild disagree on it:

- namespace ``urn:ietf:params:xml:ns:recording:1`` (RFC 7865): ``<participant participant_id=>``
  with ``<nameID aor=>``, streams linked by ``<participantstreamassoc>``;
- the older ``urn:ietf:params:xml:ns:recording`` (draft; Oracle and AudioCodes samples):
  ``<participant id=>`` with ``<aor>`` or ``<nameID aor=>`` and ``<send>``/``<recv>`` inside
  the participant, ``<stream id=>``; some put participants inside ``<session>``;
- attribute spellings ``participant_id``/``participant-id``/``id``, AORs with or without
  ``sip:``.

Roles: a participant is the agent when its AOR, AOR user or name equals the INVITE's
``X-Agent-Id`` header, or else matches ``siprec_agent_pattern``; every other participant is then
the customer. With no agent found, roles stay ``unknown`` (nothing is guessed from order).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass, field

from telephony.errors import ProtocolError
from telephony.sip.message import uri_user

NAMESPACES = ("urn:ietf:params:xml:ns:recording:1", "urn:ietf:params:xml:ns:recording")
METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")


@dataclass(frozen=True)
class BodyPart:
    """One part of a multipart body."""

    content_type: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Participant:
    """A recorded party."""

    id: str
    aor: str = ""
    name: str = ""
    sends: list[str] = field(default_factory=list)
    """Stream ids this participant's voice is carried on."""
    receives: list[str] = field(default_factory=list)


@dataclass
class RecordingMetadata:
    """The parts of rs-metadata we use."""

    namespace: str
    datamode: str = "complete"
    participants: list[Participant] = field(default_factory=list)
    stream_labels: dict[str, str] = field(default_factory=dict)
    """stream id -> SDP ``a=label`` value."""

    def sender_of_label(self, label: str) -> Participant | None:
        """The participant whose voice the stream with ``label`` carries."""
        stream_ids = {sid for sid, lab in self.stream_labels.items() if lab == label}
        return next((p for p in self.participants if stream_ids & set(p.sends)), None)


def split_multipart(content_type: str, body: bytes) -> list[BodyPart]:
    """Split a ``multipart/*`` body into its parts (RFC 2046 5.1).

    Raises:
        ProtocolError: no boundary parameter, or no part found.
    """
    match = re.search(r'boundary\s*=\s*("([^"]+)"|[^;\s]+)', content_type, re.IGNORECASE)
    if not match:
        raise ProtocolError(f"multipart body without boundary ({content_type!r})")
    boundary = (match.group(2) or match.group(1)).encode()
    parts: list[BodyPart] = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        parts.append(_parse_part(chunk))
    if not parts:
        raise ProtocolError("multipart body has no parts")
    return parts


def parse_metadata(xml: bytes | str) -> RecordingMetadata:
    """Parse an rs-metadata document in either namespace.

    Raises:
        ProtocolError: not well-formed XML, a DOCTYPE (refused: entity expansion), or a root
            element that is not ``recording``.
    """
    raw = xml.encode() if isinstance(xml, str) else xml
    _refuse_doctype(raw)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise ProtocolError(f"rs-metadata is not well-formed XML: {exc}") from None
    namespace, local = _split_tag(root.tag)
    if local != "recording":
        raise ProtocolError(f"rs-metadata root is <{local}>, expected <recording>")
    metadata = RecordingMetadata(namespace=namespace)
    participants: dict[str, Participant] = {}
    for element in root.iter():
        kind = _split_tag(element.tag)[1]
        if kind == "datamode":
            metadata.datamode = (element.text or "").strip() or metadata.datamode
        elif kind == "participant":
            _merge(participants, _parse_participant(element))
        elif kind == "stream":
            stream_id = _attr(element, "stream_id", "stream-id", "id")
            label = _child_text(element, "label")
            if stream_id and label:
                metadata.stream_labels[stream_id] = label
        elif kind == "participantstreamassoc":
            pid = _attr(element, "participant_id", "participant-id", "id")
            assoc = Participant(
                pid, sends=_children_text(element, "send"), receives=_children_text(element, "recv")
            )
            _merge(participants, assoc)
    metadata.participants = list(participants.values())
    return metadata


def _refuse_doctype(raw: bytes) -> None:
    """Refuse any DOCTYPE before ElementTree sees the document.

    Why expat and not a byte search: the document may be UTF-16 (or any encoding expat
    knows), where ``<!DOCTYPE`` is not those bytes; expat decodes first, and the handler stops
    the parse at the DOCTYPE's start, before any entity is declared or expanded.

    Raises:
        ProtocolError: a DOCTYPE, or XML that expat cannot read (an unknown encoding included).
    """

    def refuse(*_: object) -> None:
        raise ProtocolError(
            "rs-metadata with a DOCTYPE is refused",
            hint="RFC 7865 metadata needs no DTD; send the document without <!DOCTYPE>",
        )

    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse  # unreachable without a DOCTYPE; kept as a second lock
    try:
        parser.Parse(raw, True)
    except xml.parsers.expat.ExpatError as exc:
        raise ProtocolError(f"rs-metadata is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        # ValueError: pyexpat's "multi-byte encodings are not supported" (UTF-16-LE); LookupError:
        # an XML declaration naming an encoding Python does not know. Both are the sender's fault.
        raise ProtocolError(
            f"rs-metadata cannot be read: {exc}", hint="send it as UTF-8 (or UTF-16 with a BOM)"
        ) from None


def find_agent(
    metadata: RecordingMetadata, *, pattern: str, hint: str | None = None
) -> Participant | None:
    """The agent participant: the one named by ``hint`` (X-Agent-Id), else the first whose AOR
    or name matches ``pattern``."""
    if hint:
        wanted = hint.strip().lower()
        for participant in metadata.participants:
            names = {
                participant.aor.lower(),
                uri_user(participant.aor).lower(),
                participant.name.lower(),
            }
            if wanted in names:
                return participant
    regex = re.compile(pattern)
    return next(
        (
            p
            for p in metadata.participants
            if regex.search(p.aor) or (p.name and regex.search(p.name))
        ),
        None,
    )


def _parse_part(chunk: bytes) -> BodyPart:
    chunk = chunk.lstrip(b"\r\n")
    head, sep, body = chunk.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = chunk.partition(b"\n\n")
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", errors="replace").splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    body = body[:-2] if body.endswith(b"\r\n") else body.rstrip(b"\n")
    content_type = headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    return BodyPart(content_type=content_type, headers=headers, body=body)


def _parse_participant(element: ET.Element) -> Participant:
    participant = Participant(_attr(element, "participant_id", "participant-id", "id"))
    for child in element.iter():
        kind = _split_tag(child.tag)[1]
        if kind == "nameid":
            participant.aor = participant.aor or (child.get("aor") or "").strip()
        elif kind == "aor":
            participant.aor = participant.aor or (child.text or "").strip()
        elif kind == "name":
            participant.name = participant.name or (child.text or "").strip()
    if participant.aor and ":" not in participant.aor:
        participant.aor = "sip:" + participant.aor
    participant.sends = _children_text(element, "send")
    participant.receives = _children_text(element, "recv")
    return participant


def _merge(participants: dict[str, Participant], new: Participant) -> None:
    existing = participants.get(new.id)
    if existing is None:
        participants[new.id] = new
        return
    existing.aor = existing.aor or new.aor
    existing.name = existing.name or new.name
    existing.sends += [s for s in new.sends if s not in existing.sends]
    existing.receives += [s for s in new.receives if s not in existing.receives]


def _split_tag(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local.lower()
    return "", tag.lower()


def _attr(element: ET.Element, *names: str) -> str:
    return next((element.get(name, "").strip() for name in names if element.get(name)), "")


def _child_text(element: ET.Element, kind: str) -> str:
    texts = _children_text(element, kind)
    return texts[0] if texts else ""


def _children_text(element: ET.Element, kind: str) -> list[str]:
    return [
        (child.text or "").strip()
        for child in element
        if _split_tag(child.tag)[1] == kind and (child.text or "").strip()
    ]
