"""The engine's data: conversations in, suggestions out. Behaviour-free dataclasses only.

``Entity`` is the foundation's record (``suggest.nlu.types``); it is named here for typing only,
so importing this module never loads spaCy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from suggest.nlu.types import Entity

Role = Literal["agent", "customer"]
"""Which side said a turn. Transcripts' ``unknown`` speakers are resolved before they get here."""

ROLES: tuple[Role, ...] = ("agent", "customer")


@dataclass(frozen=True, slots=True)
class Turn:
    """One finished turn of a conversation."""

    role: Role
    text: str
    start: float | None = None
    """Seconds from the start of the call, when known."""
    end: float | None = None
    entities: tuple[Entity, ...] | None = None
    """Entities in ``text``; None means "not extracted" (the engine then knows of none)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the CRM says about the conversation."""

    success: bool
    value: float | None = None
    """Order value, donation, points: larger is better; the set's documentation gives the unit."""


@dataclass(frozen=True)
class Conversation:
    """A finished conversation with its outcome: one line of the conversation JSONL (v1)."""

    id: str
    tenant: str
    outcome: Outcome
    turns: tuple[Turn, ...]
    agent_id: str | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    """Free-form provenance: ``source``, ``license`` (``CC-BY-NC-4.0`` blocks shipping), ..."""
    context: Mapping[str, float] = field(default_factory=dict)
    """Numeric facts the agent knows at call start, by name (CRM tier, campaign, own priorities).

    A model trained with context names reads the same names from ``SuggestContext.context``.
    """


@dataclass(frozen=True)
class SuggestContext:
    """What the live server knows of a call when it asks for the next suggestion."""

    call_id: str
    turns: tuple[Turn, ...]
    """Every finished turn so far, oldest first; only turns not seen before are encoded."""
    agent_id: str | None = None
    tenant: str = "default"
    k: int | None = None
    """Number of suggestions wanted; None uses the engine's configured ``k``."""
    context: Mapping[str, float] = field(default_factory=dict)
    """Numeric facts known at call start, as in ``Conversation.context``.

    Names the model was not trained with are ignored; a trained name that is absent reads as 0
    with its presence bit off.
    """


@dataclass(frozen=True, slots=True)
class LatencyBreakdown:
    """Where the time of one suggestion went, in milliseconds."""

    total_ms: float
    encode_ms: float
    """Embedding the turns not seen before (shared by a micro-batch: its whole duration)."""
    state_ms: float
    policy_ms: float
    realise_ms: float
    queue_ms: float = 0.0
    """Time waiting in the micro-batcher before the batch ran."""
    batch_size: int = 1
    turns_encoded: int = 0
    """How many turns of this call were embedded for this suggestion (1 when warm)."""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One proposed next agent line."""

    id: str
    """Stable id (call, turn, model version, rank): feedback refers to it."""
    text: str
    action: str
    """Name of the action (cluster of agent moves) the line realises."""
    action_id: int
    score: float
    """Policy probability of the action in this state (0..1)."""
    why: str
    source: str
    """Conversation id and turn index the wording was taken from (``conv-id#7``)."""


@dataclass(frozen=True, slots=True)
class IntentPrediction:
    """The customer intent of the latest customer turn."""

    id: int
    name: str
    confidence: float


@dataclass(frozen=True)
class SuggestResult:
    """The engine's answer for one context."""

    call_id: str
    turn_index: int
    """Number of turns the suggestion was computed from (it proposes turn ``turn_index``)."""
    suggestions: tuple[Suggestion, ...]
    intent: IntentPrediction | None
    model_version: str
    tenant: str
    latency: LatencyBreakdown
    arm: str | None = None
    """A/B arm that served the call, set by ``suggest.ab.ABRouter``; None outside experiments."""
