"""The fixed-size call state: what the policy sees, updated one turn at a time.

Only the newest turn is embedded per update; everything older lives in a running summary and
a few counters, so the cost of a suggestion does not grow with the length of the call. Training
replays every conversation through the same :class:`CallState`, so train and serve agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from suggest.specs import Specifications
from suggest.types import Role

NO_ROLE, CUSTOMER_ROLE, AGENT_ROLE = 0, 1, 2
CONTEXT_LIMIT = float(np.finfo(np.float32).max)
"""Largest magnitude of a call-start fact: the features are float32 (a larger one became inf,
and every score NaN). The engine rejects larger ones; :func:`context_block` clips defensively."""
CUSTOMER_ONLY_REFILL = frozenset({"PERSON", "MONEY"})
"""Labels whose refill value comes only from the customer's turns: a suggestion never addresses
the agent by name, nor puts the agent's own earlier amount ("the $2 task payment") in a line."""


@dataclass(frozen=True)
class Vocabulary:
    """The discrete spaces a state maps turns into (fitted clusters and per-agent style)."""

    specs: Specifications
    action_centroids: np.ndarray
    intent_centroids: np.ndarray
    projection: np.ndarray
    """(embedding_dim, projection_dim) PCA components of training turns."""
    projection_mean: np.ndarray
    style: dict[str, np.ndarray]
    """agent id -> smoothed action distribution (K); agents not listed get ``global_style``."""
    global_style: np.ndarray

    def project(self, embedding: np.ndarray) -> np.ndarray:
        """The policy's view of a turn embedding."""
        return (embedding - self.projection_mean) @ self.projection

    def style_of(self, agent_id: str | None) -> np.ndarray:
        """The agent's action mix, or everyone's for unknown agents."""
        return self.style.get(agent_id or "", self.global_style)


@dataclass
class CallState:
    """Everything the policy knows of a call so far, in constant memory."""

    specs: Specifications
    turns: int = 0
    last_customer: np.ndarray | None = None
    last_agent: np.ndarray | None = None
    summary: np.ndarray | None = None
    last_intent: int = -1
    intent_confidence: float = 0.0
    last_action: int = -1
    action_history: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    last_role: int = NO_ROLE
    entity_values: dict[str, str] = field(default_factory=dict)
    """Latest value per entity label said by either side (the state's entity-presence block)."""
    refill_values: dict[str, str] = field(default_factory=dict)
    """Latest value per label for refilling suggestion templates: as ``entity_values``, but the
    labels of :data:`CUSTOMER_ONLY_REFILL` only from the customer's turns (which DATE, TIME and
    MONEY values may replace which words is :func:`suggest.realise.refill`'s rule)."""
    fingerprint: str = ""
    """Chained hash of the turns consumed (``suggest.trail.chain_fingerprint``, set by the
    engine): detects a context that is not an extension, wherever it parts."""
    context: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """The ``context`` and ``context_present`` blocks (``set_context``); zeros until set."""

    def __post_init__(self) -> None:
        if self.action_history.size == 0:
            self.action_history = np.zeros(self.specs.n_actions, np.float32)
        if self.context.size == 0:
            self.context = np.zeros(2 * len(self.specs.context_names), np.float32)

    def set_context(self, values: Mapping[str, float]) -> None:
        """Take the call-start facts the model knows by name (others are ignored)."""
        self.context = context_block(self.specs.context_names, values)

    def advance(
        self,
        role: Role,
        embedding: np.ndarray,
        vocabulary: Vocabulary,
        entities: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Consume one finished turn; returns its cluster id (intent or action)."""
        specs = self.specs
        if role == "customer":
            sims = vocabulary.intent_centroids @ embedding
            cluster = int(sims.argmax())
            self.last_customer, self.last_intent = embedding, cluster
            self.intent_confidence = float(sims[cluster])
            self.last_role = CUSTOMER_ROLE
        else:
            cluster = int((vocabulary.action_centroids @ embedding).argmax())
            self.last_agent, self.last_action = embedding, cluster
            self.action_history *= specs.history_decay
            self.action_history[cluster] += 1.0
            self.last_role = AGENT_ROLE
        alpha = specs.summary_decay
        self.summary = (
            embedding.copy()
            if self.summary is None
            else (1 - alpha) * self.summary + alpha * embedding
        )
        for label, value in entities:
            self.entity_values[label] = value
            if label not in CUSTOMER_ONLY_REFILL or role == "customer":
                self.refill_values[label] = value
        self.turns += 1
        return cluster

    def features(
        self, vocabulary: Vocabulary, style: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """The state vector laid out as ``specs.blocks()`` (written into ``out`` when given).

        ``style`` is the agent's action mix (``vocabulary.style_of(agent_id)``; training passes
        a leave-this-conversation-out mix instead).
        """
        specs = self.specs
        vector = np.zeros(specs.n_features, np.float32) if out is None else out
        vector[:] = 0.0
        d, k = specs.projection_dim, specs.n_actions
        offset = 0
        for part in (self.last_customer, self.last_agent, self.summary):
            if part is not None:
                vector[offset : offset + d] = vocabulary.project(part)
            offset += d
        vector[offset + (self.last_intent if self.last_intent >= 0 else specs.n_intents)] = 1.0
        offset += specs.n_intents + 1
        vector[offset + (self.last_action if self.last_action >= 0 else k)] = 1.0
        offset += k + 1
        vector[offset : offset + k] = self.action_history
        offset += k
        vector[offset + phase_bucket(self.turns, specs.phase_edges)] = 1.0
        offset += len(specs.phase_edges)
        vector[offset + self.last_role] = 1.0
        offset += 3
        for i, label in enumerate(specs.entity_labels):
            vector[offset + i] = label in self.entity_values
        offset += len(specs.entity_labels)
        vector[offset : offset + k] = style
        offset += k
        vector[offset : offset + self.context.size] = self.context
        return vector

    def context_vector(self) -> np.ndarray:
        """Unit vector of "where the conversation is", for picking context-fitting exemplars.

        The last customer turn dominates (it is what the agent answers); the summary adds the
        topic. Zero before the first turn.
        """
        d = self.specs.embedding_dim
        vector = np.zeros(d, np.float32)
        if self.last_customer is not None:
            vector += self.last_customer
        if self.summary is not None:
            vector += 0.5 * self.summary
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector


def context_block(names: tuple[str, ...], values: Mapping[str, float]) -> np.ndarray:
    """Each named value (0 when absent), then a presence bit per name, in ``names`` order.

    A value past float32's range is clipped to :data:`CONTEXT_LIMIT` and a NaN counts as absent
    (the engine rejects both before they get here; other callers must not turn scores into NaN).
    """
    block = np.zeros(2 * len(names), np.float32)
    for i, name in enumerate(names):
        value = float(values[name]) if name in values else math.nan
        if not math.isnan(value):
            block[i] = min(max(value, -CONTEXT_LIMIT), CONTEXT_LIMIT)
            block[len(names) + i] = 1.0
    return block


def phase_bucket(turn_index: int, edges: tuple[int, ...]) -> int:
    """Index of the bucket whose start is the largest edge <= ``turn_index``."""
    bucket = 0
    for i, edge in enumerate(edges):
        if turn_index >= edge:
            bucket = i
    return bucket
