"""Who a SIP call belongs to: tenant, agent and the role of each RTP stream.

The mapping (also in ``docs/telephony.md``):

- **SIPREC** (an rs-metadata part, ``Require: siprec`` or a ``+sip.src`` Contact): one leg per
  accepted m-line, named ``label-<a=label>`` (``stream-<n>`` without a label; ``-2``, ``-3``...
  appended when two labels clean to one name). The stream's sender in the metadata decides its
  role: the agent participant (see :func:`telephony.sip.siprec.find_agent`) -> ``agent``, any
  other -> ``customer``; with no agent identified every leg is ``unknown``. ``agent_id`` is the
  user part of the agent's AOR (``sip:agent42@example.com`` -> ``agent42``); the full AOR is in
  ``metadata["agent_aor"]``.
- **Plain SIP**: one leg per accepted m-line, named after the ``X-Leg-Role`` header
  (``customer`` or ``agent``) or ``mixed`` (role ``unknown``) when the stream carries both
  parties, as a recorder port does. ``agent_id`` = ``X-Agent-Id`` header.
- **Call-start facts**, both kinds: ``X-Context-<name>: <number>`` headers (``CallPlan.context``,
  names in lower case, as SIP header names have no case).
- **Tenant**, both kinds: ``X-Tenant`` header, else ``tenant_by_domain`` of the agent AOR's
  domain, else of the request URI's domain, else ``default_tenant``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telephony.far_end import CONTEXT_PREFIX, call_context, clean_id
from telephony.settings import TelephonySettings
from telephony.sip.message import SipMessage, uri_host, uri_user
from telephony.sip.sdp import MediaChoice
from telephony.sip.siprec import RecordingMetadata, find_agent
from voice.frames import Role

LEG_ROLE_HEADER = "X-Leg-Role"
AGENT_HEADER = "X-Agent-Id"
CONTEXT_HEADER_PREFIX = "X-Context-"
TENANT_HEADER = "X-Tenant"


@dataclass(frozen=True)
class LegPlan:
    """One accepted m-line's leg."""

    choice_index: int
    leg: str
    role: Role


@dataclass(frozen=True)
class CallPlan:
    """Everything the CallStartedFrame needs besides the call id."""

    source: str
    tenant: str
    agent_id: str | None
    legs: list[LegPlan]
    metadata: dict[str, Any] = field(default_factory=dict)
    context: dict[str, float] = field(default_factory=dict)
    """Call-start facts from ``X-Context-<name>`` headers (names in lower case)."""


def is_siprec(invite: SipMessage, recording: RecordingMetadata | None) -> bool:
    """True when the INVITE opens a recording session (RFC 7866)."""
    require = (invite.get("Require") or "").lower()
    contact = (invite.get("Contact") or "").lower()
    return recording is not None or "siprec" in require or "+sip.src" in contact


def plan_call(
    invite: SipMessage,
    choices: list[MediaChoice],
    recording: RecordingMetadata | None,
    settings: TelephonySettings,
) -> CallPlan:
    """Map an accepted INVITE to tenant, agent and legs."""
    accepted = [choice for choice in choices if choice.accepted]
    metadata: dict[str, Any] = {
        "sip_call_id": invite.call_id,
        "from": invite.get("From"),
        "to": invite.get("To"),
        "request_uri": invite.uri,
        "codecs": {str(c.index): c.codec for c in accepted},
    }
    agent_hint = _header(invite, AGENT_HEADER)
    if is_siprec(invite, recording):
        legs, agent_aor = _siprec_legs(accepted, recording, settings, agent_hint)
        agent_id = (uri_user(agent_aor) or agent_aor) if agent_aor else None
        metadata["agent_aor"] = agent_aor
        if recording is not None:
            metadata["participants"] = [
                {"id": p.id, "aor": p.aor, "name": p.name} for p in recording.participants
            ]
            metadata["metadata_namespace"] = recording.namespace
        source = "siprec"
    else:
        legs, agent_id, agent_aor, source = _plain_legs(accepted, invite), agent_hint, None, "sip"
    tenant = _tenant(invite, agent_aor, settings)
    return CallPlan(source=source, tenant=tenant, agent_id=agent_id, legs=legs, metadata=metadata,
                    context=_call_context(invite))  # fmt: skip


def _call_context(invite: SipMessage) -> dict[str, float]:
    """``X-Context-<name>: <number>`` headers as call-start facts (SIP header names have no case)."""
    prefix = CONTEXT_HEADER_PREFIX.lower()
    headers = [(key.lower(), value) for key, value in invite.headers]
    facts = {CONTEXT_PREFIX + key.removeprefix(prefix): value for key, value in headers if key.startswith(prefix)}
    return call_context(facts)


def _siprec_legs(
    accepted: list[MediaChoice],
    recording: RecordingMetadata | None,
    settings: TelephonySettings,
    hint: str | None,
) -> tuple[list[LegPlan], str | None]:
    agent = (
        find_agent(recording, pattern=settings.siprec_agent_pattern, hint=hint)
        if recording
        else None
    )
    legs: list[LegPlan] = []
    for position, choice in enumerate(accepted):
        label = choice.media.label
        safe_label = clean_id(label)
        name = f"label-{safe_label}" if safe_label else f"stream-{position + 1}"
        name = _unique(name, {leg.leg for leg in legs})
        sender = recording.sender_of_label(label) if recording and label else None
        role: Role = "unknown"
        if agent is not None and sender is not None:
            role = "agent" if sender.id == agent.id else "customer"
        legs.append(LegPlan(choice.index, name, role))
    return legs, (agent.aor if agent else None)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``... when another leg has it already.

    Why: legs key the call's RTP receivers and the pipeline's streams, and two labels can clean to
    one name ("a b" and "a_b", or a label repeated): the second leg would replace the first one's
    receiver, whose port then stays bound and whose audio never ends.
    """
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{name}-{n}"
    return unique


def _plain_legs(accepted: list[MediaChoice], invite: SipMessage) -> list[LegPlan]:
    declared = (_header(invite, LEG_ROLE_HEADER) or "").lower()
    role: Role = declared if declared in ("customer", "agent") else "unknown"  # type: ignore[assignment]
    base = role if role != "unknown" else "mixed"
    return [
        LegPlan(choice.index, base if n == 0 else f"{base}-{n + 1}", role)
        for n, choice in enumerate(accepted)
    ]


def _tenant(invite: SipMessage, agent_aor: str | None, settings: TelephonySettings) -> str:
    explicit = _header(invite, TENANT_HEADER)
    if explicit:
        return explicit
    for uri in (agent_aor, invite.uri):
        if uri and (tenant := settings.tenant_by_domain.get(uri_host(uri))):
            return tenant
    return settings.default_tenant


def _header(invite: SipMessage, name: str) -> str | None:
    return clean_id(invite.get(name))
