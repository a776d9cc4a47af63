"""Decide which speaker is the agent.

The suggestion engine needs roles, not speaker ids. Stereo recordings usually carry a
configured agent channel; when it is not configured, and for mono (diarized) calls, the text
decides:

1. Phrases agents say (greetings, offers of help, their own name, closing) and phrases customers
   say (what they need, their account) are counted per speaker; turns early in the call weigh
   more, since the opening is where the roles are clearest.
2. The speaker with the highest agent-minus-customer score is the agent.
3. With no evidence either way, the first speaker is the agent (an inbound call is answered by
   the agent). This fallback is weak: the SpokenWOZ calls open with the customer's "hello",
   which is why the phrases come first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

AGENT_PHRASES = [
    r"\bthank(s| you) for (calling|contacting|holding|waiting)\b",
    r"\bhow (can|may|could) i (help|assist)\b",
    r"\bwhat can i do for you\b",
    r"\b(customer|client) (service|support|care)\b",
    r"\bmy name is \w+\b",
    r"\bthis is \w+ (from|with|at|speaking)\b",
    r"\bspeaking\b",
    r"\bis there anything else\b",
    r"\b(have|enjoy) a (nice|good|great|wonderful) (day|evening|trip|stay)\b",
    r"\blet me (check|see|look|pull|find|book|verify)\b",
    r"\b(i|we) (can|could) (book|reserve|offer|recommend|arrange)\b",
    r"\bi('ve| have) (booked|reserved|found)\b",
    r"\byour (reference|confirmation|booking|order|account) (number|code|id)\b",
    r"\bcan i (have|get) your\b",
    r"\bmay i (have|ask|know)\b",
    r"\bwould you like\b",
]
CUSTOMER_PHRASES = [
    r"\bi('m| am) (looking for|calling (about|because|to))\b",
    r"\bi (need|want|would like|'d like)\b",
    r"\bi('d| would) like to\b",
    r"\bcan you (help|tell|book|find|check)\b",
    r"\bmy (account|order|bill|card|phone|booking|reservation)\b",
    r"\bi have a (problem|question|complaint)\b",
]
_AGENT = [re.compile(p) for p in AGENT_PHRASES]
_CUSTOMER = [re.compile(p) for p in CUSTOMER_PHRASES]


@dataclass(frozen=True)
class SpokenTurn:
    """What the role heuristic needs of a segment."""

    speaker: str
    start: float
    text: str


@dataclass(frozen=True)
class RoleDecision:
    """The agent's speaker id and the per-speaker evidence (agent minus customer score)."""

    agent: str | None
    scores: dict[str, float]
    method: str


def score_text(text: str) -> float:
    """Agent evidence minus customer evidence of one piece of text."""
    text = text.lower()
    return float(sum(bool(p.search(text)) for p in _AGENT) - sum(bool(p.search(text)) for p in _CUSTOMER))


def decide_agent(turns: Iterable[SpokenTurn], speakers: Sequence[str], *, opening: float = 60.0) -> RoleDecision:
    """Pick the agent among ``speakers`` from what each says (weighting the first ``opening`` s)."""
    ordered = sorted(turns, key=lambda t: t.start)
    scores = dict.fromkeys(speakers, 0.0)
    for turn in ordered:
        if turn.speaker in scores:
            weight = 2.0 if turn.start < opening else 1.0
            scores[turn.speaker] += weight * score_text(turn.text)
    if not speakers:
        return RoleDecision(None, scores, "none")
    best = max(speakers, key=lambda s: scores[s])
    if len(speakers) == 1 or scores[best] > max(scores[s] for s in speakers if s != best):
        return RoleDecision(best, scores, "phrases")
    first = next((t.speaker for t in ordered if t.speaker in scores), speakers[0])
    return RoleDecision(first, scores, "first-speaker")
