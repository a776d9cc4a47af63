"""Batch suggestions for QA replay (the body of ``voice suggest``).

For every agent turn i of every conversation, the engine is asked for its top-k suggestions
given turns 0..i-1 exactly as a live call would (warm, turn by turn), and each suggestion is
scored by its cosine similarity with what the agent actually said at turn i: with the model's
own encoder, or with a given ``score_with`` (``voice suggest`` passes the full MiniLM for a model
with a cheaper encoder, as ``voice evaluate`` does, so similarities compare across models).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suggest.engine import SuggestionEngine
from suggest.types import Conversation, SuggestContext, SuggestResult


@dataclass(frozen=True)
class ReplayRow:
    """One agent turn: the suggestions beside the actual words."""

    conversation: str
    turn: int
    actual: str
    result: SuggestResult
    similarities: tuple[float, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The JSONL line of ``voice suggest``."""
        return {
            "conversation": self.conversation,
            "turn": self.turn,
            "actual": self.actual,
            "model_version": self.result.model_version,
            "intent": None if self.result.intent is None else self.result.intent.name,
            "suggestions": [
                {
                    "text": s.text,
                    "action": s.action,
                    "score": round(s.score, 4),
                    "why": s.why,
                    "source": s.source,
                    "similarity": round(sim, 4),
                }
                for s, sim in zip(self.result.suggestions, self.similarities, strict=True)
            ],
            "top1_similarity": round(self.similarities[0], 4) if self.similarities else None,
            "best_similarity": round(max(self.similarities), 4) if self.similarities else None,
            "latency_ms": round(self.result.latency.total_ms, 3),
        }


def replay_conversation(
    engine: SuggestionEngine,
    conversation: Conversation,
    k: int,
    score_with: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> Iterator[ReplayRow]:
    """Rows for each agent turn of one conversation (the call state is dropped at the end)."""
    rows = []
    try:
        for index, turn in enumerate(conversation.turns):
            if turn.role != "agent":
                continue
            context = SuggestContext(
                call_id=f"replay:{conversation.id}",
                turns=conversation.turns[:index],
                agent_id=conversation.agent_id,
                tenant=conversation.tenant,
                k=k,
                context=conversation.context,
            )
            rows.append(ReplayRow(conversation.id, index, turn.text, engine.suggest(context)))
    finally:
        engine.end_call(f"replay:{conversation.id}")
    texts = [r.actual for r in rows] + [s.text for r in rows for s in r.result.suggestions]
    encode = score_with or engine.encoder.encode
    vectors = encode(texts) if texts else np.zeros((0, 1), np.float32)
    offset = len(rows)
    for i, row in enumerate(rows):
        count = len(row.result.suggestions)
        similarities = tuple(float(v @ vectors[i]) for v in vectors[offset : offset + count])
        offset += count
        yield ReplayRow(row.conversation, row.turn, row.actual, row.result, similarities)
