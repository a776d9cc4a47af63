"""SIPREC multipart bodies, rs-metadata in both namespaces, and the tenant/agent/role mapping."""

from __future__ import annotations

import pytest

from telephony.errors import ProtocolError
from telephony.settings import TelephonySettings
from telephony.sip.mapping import plan_call
from telephony.sip.message import SipMessage
from telephony.sip.sdp import negotiate
from telephony.sip.server import read_offer
from telephony.sip.siprec import find_agent, parse_metadata, split_multipart

pytestmark = pytest.mark.unit

RFC7865 = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="S1"><sipSessionID>abc</sipSessionID></session>
  <participant participant_id="P1">
    <nameID aor="sip:+15551230000@carrier.example"><name>Bob</name></nameID></participant>
  <participant participant_id="P2">
    <nameID aor="sip:agent42@acme.example"><name>Alice</name></nameID></participant>
  <stream stream_id="ST1" session_id="S1"><label>1</label></stream>
  <stream stream_id="ST2" session_id="S1"><label>2</label></stream>
  <participantstreamassoc participant_id="P1">
    <send>ST1</send><recv>ST2</recv></participantstreamassoc>
  <participantstreamassoc participant_id="P2">
    <send>ST2</send><recv>ST1</recv></participantstreamassoc>
</recording>"""

# The older draft namespace as in an Oracle SBC sample: <aor> elements, send/recv inside
# participants, id= attributes, participants nested in the session.
OLDER = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording">
  <datamode>complete</datamode>
  <session id="S1">
    <participant id="P1" session="S1"><aor>sip:customer@example.com</aor><name>Customer</name>
      <send>ST1</send><recv>ST2</recv></participant>
    <participant id="P2" session="S1"><nameID aor="agent7@example.com"/>
      <send>ST2</send><recv>ST1</recv></participant>
  </session>
  <stream id="ST1" session="S1"><label>10</label></stream>
  <stream id="ST2" session="S1"><label>11</label></stream>
</recording>"""

SDP = (
    "v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=label:{a}\r\na=sendonly\r\n"
    "m=audio 6002 RTP/AVP 0\r\na=label:{b}\r\na=sendonly\r\n"
)


def siprec_invite(xml: str, labels: tuple[str, str] = ("1", "2"), **headers: str) -> SipMessage:
    body = (
        f"--xyz\r\nContent-Type: application/sdp\r\n\r\n{SDP.format(a=labels[0], b=labels[1])}\r\n"
        f"--xyz\r\nContent-Type: application/rs-metadata+xml\r\n"
        f"Content-Disposition: recording-session\r\n\r\n{xml}\r\n--xyz--\r\n"
    ).encode()
    return SipMessage(
        method="INVITE",
        uri="sip:srs@rec.acme.example",
        body=body,
        headers=[
            ("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1"),
            ("From", "<sip:src@sbc>;tag=1"),
            ("To", "<sip:srs@rec>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 INVITE"),
            ("Require", "siprec"),
            ("Contact", "<sip:src@127.0.0.1>;+sip.src"),
            ("Content-Type", 'multipart/mixed; boundary="xyz"'),
            *headers.items(),
        ],
    )


def test_multipart_split_finds_sdp_and_metadata() -> None:
    message = siprec_invite(RFC7865)
    parts = split_multipart(message.get("Content-Type") or "", message.body)
    assert [p.content_type for p in parts] == ["application/sdp", "application/rs-metadata+xml"]
    assert parts[1].headers["content-disposition"] == "recording-session"
    assert parts[0].body.startswith(b"v=0") and parts[1].body.endswith(b"</recording>")


def test_rfc7865_namespace() -> None:
    metadata = parse_metadata(RFC7865)
    assert metadata.namespace == "urn:ietf:params:xml:ns:recording:1"
    assert [p.aor for p in metadata.participants] == [
        "sip:+15551230000@carrier.example",
        "sip:agent42@acme.example",
    ]
    assert metadata.sender_of_label("2").name == "Alice"
    assert find_agent(metadata, pattern=r"(?i)\bagent").id == "P2"


def test_older_namespace_with_aor_elements() -> None:
    metadata = parse_metadata(OLDER)
    assert metadata.namespace == "urn:ietf:params:xml:ns:recording"
    assert metadata.sender_of_label("10").aor == "sip:customer@example.com"
    assert metadata.sender_of_label("11").aor == "sip:agent7@example.com"  # scheme added


def test_agent_named_by_header_wins_over_pattern() -> None:
    metadata = parse_metadata(RFC7865)
    assert find_agent(metadata, pattern="nomatch", hint="Bob").id == "P1"
    assert find_agent(metadata, pattern="nomatch") is None


@pytest.mark.parametrize(
    "xml",
    [
        "<recording",
        "<other xmlns='urn:ietf:params:xml:ns:recording:1'/>",
        '<!DOCTYPE r [<!ENTITY a "aaaa">]><recording>&a;</recording>',
    ],
)
def test_bad_metadata_is_a_protocol_error(xml: str) -> None:
    with pytest.raises(ProtocolError):
        parse_metadata(xml)


@pytest.mark.parametrize(
    ("xml", "labels", "agent", "legs"),
    [
        (RFC7865, ("1", "2"), "agent42", {"label-1": "customer", "label-2": "agent"}),
        (OLDER, ("10", "11"), "agent7", {"label-10": "customer", "label-11": "agent"}),
    ],
)
def test_siprec_call_plan_from_metadata(xml: str, labels, agent: str, legs: dict) -> None:
    invite = siprec_invite(xml, labels)
    offer, recording = read_offer(invite)
    settings = TelephonySettings(tenant_by_domain={"acme.example": "acme"})
    plan = plan_call(invite, negotiate(offer), recording, settings)
    assert plan.source == "siprec" and plan.agent_id == agent
    assert {leg.leg: leg.role for leg in plan.legs} == legs
    assert plan.tenant == ("acme" if xml is RFC7865 else "default")  # agent AOR domain
    assert plan.metadata["metadata_namespace"] == recording.namespace


def test_tenant_header_and_unknown_roles_without_an_agent() -> None:
    headers = {"X-Tenant": "globex", "X-Context-Customer_Tier": "2", "X-Context-Plan": "gold"}
    invite = siprec_invite(RFC7865.replace("agent42", "user42"), **headers)
    offer, recording = read_offer(invite)
    plan = plan_call(invite, negotiate(offer), recording, TelephonySettings())
    assert plan.tenant == "globex" and plan.agent_id is None
    assert plan.context == {"customer_tier": 2.0}  # a fact that is not a number is left out
    assert {leg.role for leg in plan.legs} == {"unknown"}


def test_plain_sip_plan_uses_headers() -> None:
    invite = SipMessage(
        method="INVITE",
        uri="sip:rec@x",
        body=SDP.format(a=1, b=2).encode(),
        headers=[
            ("Call-ID", "c2"),
            ("Content-Type", "application/sdp"),
            ("X-Agent-Id", "a-17"),
            ("X-Tenant", "acme"),
            ("X-Leg-Role", "customer"),
            ("x-context-monthly_price", "39.9"),
        ],
    )
    offer, recording = read_offer(invite)
    plan = plan_call(invite, negotiate(offer), recording, TelephonySettings())
    assert (plan.source, plan.tenant, plan.agent_id) == ("sip", "acme", "a-17")
    assert plan.context == {"monthly_price": 39.9}
    assert [(leg.leg, leg.role) for leg in plan.legs] == [
        ("customer", "customer"),
        ("customer-2", "customer"),
    ]
    mixed = plan_call(
        SipMessage(method="INVITE", uri="sip:rec@x", headers=[]),
        negotiate(offer),
        None,
        TelephonySettings(),
    )
    assert [(leg.leg, leg.role) for leg in mixed.legs] == [
        ("mixed", "unknown"),
        ("mixed-2", "unknown"),
    ]
