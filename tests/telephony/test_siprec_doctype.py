"""rs-metadata refuses a DOCTYPE in every encoding, not only when it is ASCII bytes."""

from __future__ import annotations

import pytest

from telephony.errors import ProtocolError
from telephony.sip.siprec import parse_metadata

pytestmark = pytest.mark.unit
NS = "urn:ietf:params:xml:ns:recording:1"
BOMB = (
    '<!DOCTYPE r [<!ENTITY a "agent"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
)
BODY = f'<recording xmlns="{NS}"><participant participant_id="p1"><nameID aor="sip:&c;@x"/></participant></recording>'
PLAIN = f'<recording xmlns="{NS}"><participant participant_id="p1"><nameID aor="sip:a@x"/></participant></recording>'


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
def test_a_doctype_is_refused_whatever_the_encoding(encoding: str) -> None:
    declaration = f'<?xml version="1.0" encoding="{encoding.upper()}"?>'
    raw = (declaration + BOMB + BODY).encode(encoding)  # Python's utf-16 writes a BOM
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        parse_metadata(raw)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
def test_metadata_without_doctype_still_parses_in_utf16(encoding: str) -> None:
    raw = (f'<?xml version="1.0" encoding="{encoding.upper()}"?>' + PLAIN).encode(encoding)
    metadata = parse_metadata(raw)
    assert [p.aor for p in metadata.participants] == ["sip:a@x"]


def test_an_encoding_expat_cannot_read_is_a_protocol_error() -> None:
    raw = ('<?xml version="1.0" encoding="UTF-16-LE"?>' + PLAIN).encode("utf-16-le")
    with pytest.raises(ProtocolError, match="cannot be read"):
        parse_metadata(raw)


def test_malformed_xml_is_still_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not well-formed"):
        parse_metadata(b"<recording><participant></recording>")
