"""Realisation: turn chosen actions into words successful agents actually used.

For each of the policy's top actions, the exemplar (an agent turn from a *successful* training
conversation, close to the action's centroid) whose preceding context is most like the current
call is picked; the current agent's own successful phrasing wins near-ties. Entities are refilled
from the call: exemplars store entity spans found at training time (delexicalisation), and a
span is replaced by the call's latest value of that label. Personal labels (names, phone
numbers, ...) are never copied from another conversation: an exemplar whose personal slot cannot
be refilled is not used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REFILL_LABELS = frozenset(
    {"PERSON", "MONEY", "DATE", "TIME", "PHONE", "EMAIL", "ORDER_ID", "ACCOUNT_ID", "REFERENCE"}
)
"""Labels replaced by the call's own value when the call has one."""
PERSONAL_LABELS = frozenset(
    {"PERSON", "PHONE", "EMAIL", "CARD", "SSN", "ACCOUNT_ID", "ORDER_ID", "REFERENCE"}
)
"""Labels that identify someone: never shown with another conversation's value."""
OWN_AGENT_MARGIN = 0.05
"""An exemplar of the current agent wins when its context fit is within this of the best."""
REPEAT_COSINE = 0.92
"""Exemplars this close to the agent's previous turn would repeat it: skipped. In the full
MiniLM's space; a model with another encoder carries its own value (``repeat_cosine`` in its
manifest), set where its space marks the same share of an agent's consecutive turns as repeats."""


@dataclass(frozen=True, slots=True)
class Slot:
    """An entity span inside an exemplar's text (character offsets)."""

    label: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Exemplar:
    """An agent turn of a successful conversation that realises one action."""

    action: int
    text: str
    slots: tuple[Slot, ...]
    agent_id: str | None
    source: str
    """``<conversation id>#<turn index>``."""

    def delexicalised(self) -> str:
        """The text with entity spans shown as ``[LABEL]``."""
        return refill(self.text, self.slots, {}, keep_missing=False)


@dataclass(frozen=True, slots=True)
class Realisation:
    """The wording chosen for one action."""

    exemplar: int
    text: str
    context_fit: float


class ExemplarBank:
    """Exemplars with their context vectors, grouped by action for a copy-free lookup."""

    def __init__(
        self,
        exemplars: Sequence[Exemplar],
        contexts: np.ndarray,
        texts: np.ndarray,
        n_actions: int,
        *,
        repeat_cosine: float = REPEAT_COSINE,
    ) -> None:
        """``contexts``/``texts``: unit vectors (context before the turn, the turn itself)."""
        self.repeat_cosine = repeat_cosine
        """Cosine to the agent's previous turn from which an exemplar counts as a repeat."""
        self.exemplars = list(exemplars)
        self.contexts = contexts
        self.texts = texts
        actions = np.array([e.action for e in exemplars], dtype=np.int64)
        self.by_action = [np.flatnonzero(actions == a) for a in range(n_actions)]
        # Per-action contiguous copies: a suggestion touches 3+ actions, and fancy indexing
        # the full matrices per request measured ~3 ms per action on the loaded 2-core box.
        self._contexts = [np.ascontiguousarray(contexts[i]) for i in self.by_action]
        self._texts = [np.ascontiguousarray(texts[i]) for i in self.by_action]
        # Only the few exemplars with personal slots or of a given agent are looked at per call.
        self._personal: list[list[tuple[int, frozenset[str]]]] = []
        self._by_agent: list[dict[str, np.ndarray]] = []
        for rows in self.by_action:
            personal: list[tuple[int, frozenset[str]]] = []
            agents: dict[str, list[int]] = {}
            for position, j in enumerate(rows.tolist()):
                labels = frozenset(
                    s.label for s in exemplars[j].slots if s.label in PERSONAL_LABELS
                )
                if labels:
                    personal.append((position, labels))
                agent = exemplars[j].agent_id
                if agent:
                    agents.setdefault(agent, []).append(position)
            self._personal.append(personal)
            self._by_agent.append({a: np.array(p, dtype=np.int64) for a, p in agents.items()})

    def realise(
        self,
        action: int,
        context: np.ndarray,
        agent_id: str | None,
        entity_values: dict[str, str],
        last_agent: np.ndarray | None,
    ) -> Realisation | None:
        """The best-fitting wording of ``action`` here, or None when the action has none usable."""
        if action >= len(self.by_action) or len(self.by_action[action]) == 0:
            return None
        fit = self._contexts[action] @ context
        if last_agent is not None:
            fit[(self._texts[action] @ last_agent) >= self.repeat_cosine] = -np.inf
        for position, labels in self._personal[action]:
            if not labels <= entity_values.keys():
                fit[position] = -np.inf
        best = int(fit.argmax())
        if not np.isfinite(fit[best]):
            return None
        own = self._by_agent[action].get(agent_id) if agent_id else None
        if own is not None:
            own_best = int(own[fit[own].argmax()])
            if fit[own_best] >= fit[best] - OWN_AGENT_MARGIN:
                best = own_best
        index = int(self.by_action[action][best])
        exemplar = self.exemplars[index]
        return Realisation(
            index, refill(exemplar.text, exemplar.slots, entity_values), float(fit[best])
        )


def refill(
    text: str, slots: Sequence[Slot], entity_values: dict[str, str], *, keep_missing: bool = True
) -> str:
    """``text`` with each refillable slot replaced by the call's value of its label.

    Slots without a call value keep their original words (``keep_missing``) or become
    ``[LABEL]``; labels outside :data:`REFILL_LABELS` (organisations, places) always stay.
    """
    pieces: list[str] = []
    position = 0
    for slot in sorted(slots, key=lambda s: s.start):
        if slot.start < position or slot.label not in REFILL_LABELS:
            continue
        value = entity_values.get(slot.label)
        if value is None and keep_missing and slot.label not in PERSONAL_LABELS:
            continue
        pieces.append(text[position : slot.start])
        pieces.append(value if value is not None else f"[{slot.label}]")
        position = slot.end
    pieces.append(text[position:])
    return "".join(pieces)
