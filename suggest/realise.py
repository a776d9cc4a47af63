"""Realisation: turn chosen actions into words successful agents actually used.

For each of the policy's top actions, the exemplar (an agent turn from a *successful* training
conversation, close to the action's centroid) whose preceding context is most like the current
call is picked; the current agent's own successful phrasing wins near-ties. Entities are refilled
from the call: exemplars store entity spans found at training time (delexicalisation), and a
span is replaced by the call's latest value of that label; a DATE, TIME or MONEY span only when
it and the call's value are both specific (a date for a date: "today" stays "today"). Personal labels (names, phone
numbers, card numbers, ...) are never copied from another conversation: an exemplar whose personal
slot cannot be refilled is not used, and :func:`refill` masks such a slot as ``[LABEL]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
NEVER_REFILLED = PERSONAL_LABELS - REFILL_LABELS
"""Personal labels no call value replaces (card numbers, SSNs): their slots are always masked."""
OWN_AGENT_MARGIN = 0.05
"""An exemplar of the current agent wins when its context fit is within this of the best."""
REPEAT_COSINE = 0.92
"""Exemplars this close to the agent's previous turn would repeat it: skipped. In the full
MiniLM's space; a model with another encoder carries its own value (``repeat_cosine`` in its
manifest), set where its space marks the same share of an agent's consecutive turns as repeats."""

# Where an agent turn names the listener: "Thanks John," / "Hi Anna, ..." / "Thank you, Maria."
# NER tags many script words of agent turns as PERSON ("Save the Children", "Glad your week ...",
# "Ho are you", "St Jude charity"); only a capitalised name right after a greeting, thanks, title
# or comma and right before punctuation is taken for the customer's name and refilled.
_NAME = re.compile(r"[A-Z][A-Za-z'’-]+(?: [A-Z][A-Za-z'’-]+){0,2}")
_ADDRESS_BEFORE = re.compile(
    r"(?:,|\b(?:hi|hello|hey|dear|thanks|thank you|bye|goodbye|morning|afternoon|evening"
    r"|welcome|mr|mrs|ms|miss|dr)\.?)\s*$",
    re.IGNORECASE,
)
_ADDRESS_AFTER = re.compile(r"\s*(?:[,.!?]|$)")

# DATE/TIME/MONEY slots are refilled only same kind for same kind: a specific date, clock time or
# amount for another. NER tags script words as DATE ("How are you today?", "daily", "a great day"),
# and the call's latest DATE is as often relative ("last year"): "How are you last year?".
SPECIFIC_LABELS = frozenset({"DATE", "TIME", "MONEY"})
"""Labels whose slot and call value must both be specific (:func:`specific`) to be refilled."""
_MONTH = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_WEEKDAY = r"mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun"
_ABSOLUTE_DATE = re.compile(
    rf"\b(?:(?:{_MONTH})\b|(?:{_WEEKDAY})(?:day)?\b|(?:1[89]|20)\d\d\b|\d{{1,2}}(?:st|nd|rd|th)\b"
    r"|\d{1,4}[/.-]\d{1,2}(?:[/.-]\d{1,4})?\b)",
    re.IGNORECASE,
)
_CLOCK_TIME = re.compile(
    r"\b(?:\d{1,2}(?::\d\d)?\s*(?:a\.?m\b\.?|p\.?m\b\.?|o'?clock\b)|\d{1,2}:\d\d\b|noon\b|midnight\b)",
    re.IGNORECASE,
)
_RELATIVE = re.compile(
    r"\b(?:today|tonight|tomorrow|yesterday|now|daily|weekly|monthly|yearly|annually|nightly|ago"
    r"|last|next|this|these|that|those|every|each|past|previous|recent(?:ly)?|coming|current"
    r"|later|soon|earlier|since|until|till|within|for|per|a|an|some|few|several|many)\b",
    re.IGNORECASE,
)
_AMOUNT = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty"
    r"|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|half)\b"
    r"|\ban?\s+(?:dollar|buck|cent|penny|pound|euro|quid)s?\b",  # "a dollar", not "a few dollars"
    re.IGNORECASE,
)


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

    def personal_needs(self) -> frozenset[str] | None:
        """The personal labels a call must supply for this exemplar to be shown, or None when
        no call can: a personal slot that is never refilled (a card number, an SSN, a name NER
        found outside an address, two different values of one label) would show another
        conversation's data."""
        personal = frozenset(s.label for s in self.slots if s.label in PERSONAL_LABELS)
        return personal if personal <= fillable_labels(self.text, self.slots) else None


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
        # Exemplars no call may be shown (models trained before training dropped them) are
        # blocked here, so an old model folder never shows another customer's card number.
        self._personal: list[list[tuple[int, frozenset[str]]]] = []
        self._blocked: list[np.ndarray] = []
        self._by_agent: list[dict[str, np.ndarray]] = []
        for rows in self.by_action:
            personal: list[tuple[int, frozenset[str]]] = []
            blocked: list[int] = []
            agents: dict[str, list[int]] = {}
            for position, j in enumerate(rows.tolist()):
                needs = exemplars[j].personal_needs()
                if needs is None:
                    blocked.append(position)
                elif needs:
                    personal.append((position, needs))
                agent = exemplars[j].agent_id
                if agent:
                    agents.setdefault(agent, []).append(position)
            self._personal.append(personal)
            self._blocked.append(np.array(blocked, dtype=np.int64))
            self._by_agent.append({a: np.array(p, dtype=np.int64) for a, p in agents.items()})

    def realise(
        self,
        action: int,
        context: np.ndarray,
        agent_id: str | None,
        entity_values: Mapping[str, str],
        last_agent: np.ndarray | None,
    ) -> Realisation | None:
        """The best-fitting wording of ``action`` here, or None when the action has none usable."""
        if action >= len(self.by_action) or len(self.by_action[action]) == 0:
            return None
        fit = self._contexts[action] @ context
        if last_agent is not None:
            fit[(self._texts[action] @ last_agent) >= self.repeat_cosine] = -np.inf
        fit[self._blocked[action]] = -np.inf
        for position, labels in self._personal[action]:
            if not all(_call_value(entity_values, label) for label in labels):
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
    text: str, slots: Sequence[Slot], entity_values: Mapping[str, str], *, keep_missing: bool = True
) -> str:
    """``text`` with each refillable slot replaced by the call's value of its label.

    Only labels of :func:`fillable_labels` take the call's value, and a DATE, TIME or MONEY slot
    only where its words and the call's value are both :func:`specific` (a date for a date, an
    amount for an amount: never "today" for "last year"). Other slots of
    :data:`REFILL_LABELS` keep their original words (``keep_missing``) or become ``[LABEL]``;
    a personal slot without a value always becomes ``[LABEL]``, whatever its label; other labels
    (organisations, places) always stay.
    """
    fillable = fillable_labels(text, slots)
    pieces: list[str] = []
    position = 0
    for slot in sorted(slots, key=lambda s: (s.start, -s.end)):
        personal = slot.label in PERSONAL_LABELS
        if slot.start < position:
            # Overlaps a replaced span: that replacement stands, but no personal words show.
            if personal and slot.end > position:
                pieces.append(f"[{slot.label}]")
                position = slot.end
            continue
        if not personal and slot.label not in REFILL_LABELS:
            continue
        value = _call_value(entity_values, slot.label) if slot.label in fillable else None
        if value is not None and slot.label in SPECIFIC_LABELS and not (
            specific(slot.label, text[slot.start : slot.end]) and specific(slot.label, value)
        ):
            value = None  # "today" keeps its word, and so does "1 May" for the call's "last year"
        if value is None and keep_missing and not personal:
            continue
        pieces.append(text[position : slot.start])
        pieces.append(value if value is not None else f"[{slot.label}]")
        position = slot.end
    pieces.append(text[position:])
    return "".join(pieces)


def fillable_labels(text: str, slots: Sequence[Slot]) -> frozenset[str]:
    """Labels of ``slots`` that the call's value may replace.

    A label of :data:`REFILL_LABELS` whose slots all carry the same words: the call's one latest
    value cannot stand for two amounts or two dates. PERSON only where the turn addresses the
    listener by a name (``_NAME``, ``_ADDRESS_BEFORE``); elsewhere NER mostly mis-tags words.
    """
    words: dict[str, set[str]] = {}
    unfit: set[str] = set()
    for slot in slots:
        if slot.label not in REFILL_LABELS:
            continue
        original = text[slot.start : slot.end]
        words.setdefault(slot.label, set()).add(" ".join(original.split()).casefold())
        if slot.label == "PERSON" and not (
            _NAME.fullmatch(original)
            and _ADDRESS_BEFORE.search(text, 0, slot.start)
            and _ADDRESS_AFTER.match(text, slot.end)
        ):
            unfit.add(slot.label)
    return frozenset(label for label, seen in words.items() if len(seen) == 1) - unfit


def specific(label: str, words: str) -> bool:
    """Whether ``words`` of a DATE, TIME or MONEY span name one date, clock time or amount.

    A date: a month, weekday, year, ordinal day or numeric date ("March 3", "2018", "the 5th");
    a time: a clock time ("3 pm", "10:30", "noon"); either without a relative or vague word
    ("today", "last year", "every Monday", "a few days", "daily", "now"). An amount: a number,
    in digits or words ("$20", "fifty cents", "a dollar"), not "some money" or "a few dollars".
    """
    if label == "MONEY":
        return bool(_AMOUNT.search(words))
    pattern = _CLOCK_TIME if label == "TIME" else _ABSOLUTE_DATE
    # The clock time itself goes before the vague-word check: the "a" of "9 a.m." is no article.
    return bool(pattern.search(words)) and not _RELATIVE.search(_CLOCK_TIME.sub(" ", words))


def _call_value(entity_values: Mapping[str, str], label: str) -> str | None:
    """The call's value of ``label``; an empty one counts as none."""
    value = entity_values.get(label)
    return value if value and value.strip() else None
