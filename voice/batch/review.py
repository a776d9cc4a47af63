"""A stored call through the suggestion engine's batch path: suggested vs actual at each agent turn.

This is the engine-facing half of QA replay (only ``voice.batch`` and ``voice.processors`` import
engines); ``voice.server.review`` caches and serves the result. The engine's
``suggest.replay.replay_conversation`` asks for the top-k suggestions at every agent turn given
the turns before it, warm and turn by turn as a live call would, and scores each against the
agent's actual words by cosine similarity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice.errors import ConfigError
from voice.transcript import CallTranscript

BatchSuggest = Callable[..., list[tuple[int, list[dict[str, Any]]]]]
"""(engine, turns, *, k, agent_id, tenant, call_id) -> [(turn index, suggestions with similarity)]."""


@dataclass
class ReviewTurn:
    """A turn of the conversation as the engine sees it: consecutive segments of one role."""

    role: str
    text: str
    start: float
    end: float
    segments: list[int] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)
    """Entities with character offsets into ``text`` (label, text, start, end, value)."""


def conversation_turns(transcript: CallTranscript) -> list[ReviewTurn]:
    """Merge consecutive same-role segments into turns; segments of unknown role are left out."""
    by_segment: dict[int, list[Any]] = {}
    for entity in transcript.entities:
        by_segment.setdefault(entity.segment, []).append(entity)
    turns: list[ReviewTurn] = []
    for segment in sorted(transcript.segments, key=lambda s: (s.start, s.id)):
        text = segment.text.strip()
        if segment.role not in ("agent", "customer") or not text:
            continue
        if turns and turns[-1].role == segment.role:
            turn = turns[-1]
            offset = len(turn.text) + 1
            turn.text, turn.end = f"{turn.text} {text}", max(turn.end, segment.end)
            turn.segments.append(segment.id)
        else:
            offset = 0
            turn = ReviewTurn(segment.role, text, segment.start, segment.end, [segment.id])
            turns.append(turn)
        shift = offset - (len(segment.text) - len(segment.text.lstrip()))
        for e in by_segment.get(segment.id, []):
            turn.entities.append({"label": e.label, "text": e.text, "start": e.start_char + shift,
                                  "end": e.end_char + shift, "value": e.value or e.text})
    return turns


class Reviewer:
    """A loaded suggestion model that answers "what would you have suggested here" for whole calls."""

    def __init__(self, engine: Any, batch_suggest: BatchSuggest) -> None:
        self.engine = engine
        self._batch_suggest = batch_suggest

    def review(self, transcript: CallTranscript, *, k: int, agent_id: str | None, tenant: str
               ) -> list[dict[str, Any]]:
        """One row per agent turn: the actual words beside the top-k suggestions and their similarity."""
        turns = conversation_turns(transcript)
        results = self._batch_suggest(self.engine, turns, k=k, agent_id=agent_id, tenant=tenant,
                                      call_id=transcript.call_id)
        return [_row(index, turns[index], suggestions) for index, suggestions in results]


def _row(index: int, turn: ReviewTurn, suggestions: list[dict[str, Any]]) -> dict[str, Any]:
    best_rank = max(range(len(suggestions)), key=lambda i: suggestions[i]["similarity"]) if suggestions else 0
    return {"turn": index, "segments": turn.segments, "start": round(turn.start, 3), "end": round(turn.end, 3),
            "actual": turn.text, "suggestions": suggestions,
            "best_similarity": suggestions[best_rank]["similarity"] if suggestions else None,
            "best_rank": best_rank}


def engine_batch_suggest(engine: Any, turns: list[ReviewTurn], *, k: int, agent_id: str | None, tenant: str,
                         call_id: str, score_with: Callable[..., Any] | None = None,
                         ) -> list[tuple[int, list[dict[str, Any]]]]:
    """The suggestion engine's replay over a call's turns (``voice suggest --dialogues``, one call);
    ``score_with`` embeds texts for the similarities (default: the model's own encoder)."""
    from suggest.nlu.types import Entity
    from suggest.replay import replay_conversation
    from suggest.types import Conversation, Outcome, Turn

    conversation = Conversation(
        id=f"qa:{call_id}", tenant=tenant, outcome=Outcome(success=False), agent_id=agent_id,
        turns=tuple(Turn(t.role, t.text, t.start, t.end,  # type: ignore[arg-type]
                         tuple(Entity(e["label"], e["text"], e["start"], e["end"], e["value"]) for e in t.entities))
                    for t in turns))
    rows = replay_conversation(engine, conversation, k, score_with=score_with)
    return [(row.turn, row.to_dict()["suggestions"]) for row in rows]


def load_reviewer(model_dir: str | Path) -> Reviewer:
    """Load a suggestion model for batch review (blocking; once per model).

    Raises:
        ConfigError: the model cannot be loaded.
    """
    from suggest.encoder.export import default_cache_root
    from suggest.engine import SuggestionEngine
    from suggest.errors import SuggestError
    from suggest.train.encoders import yardstick_for

    try:
        engine = SuggestionEngine.load(Path(model_dir))
        # Similarities on the QA page are MiniLM cosines for every model (its 0.6 / 0.4 marks are
        # MiniLM's); call texts are not kept in the embedding cache.
        yardstick = yardstick_for(engine.model.manifest.get("parameters", {}), default_cache_root(),
                                  remember=False)
    except (OSError, SuggestError) as exc:
        raise ConfigError(f"cannot load the suggestion model at {model_dir}: {exc}",
                          hint="train one with `voice train` or point --suggest-model at a model directory") from exc
    return Reviewer(engine, functools.partial(engine_batch_suggest, score_with=yardstick))
