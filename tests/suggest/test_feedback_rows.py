"""Feedback as training signal: the state a decided suggestion is learnt from.

The server stores a suggestion's last six turns with its feedback. For a call that is among the
training conversations (a live call imported from the database), the rows are rebuilt from the
whole call up to the suggestion, so the phase, action history and summary are those it was
served with, not those of a call that started six turns ago.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from suggest.feedback import FeedbackRecord
from suggest.model import load_model
from suggest.state import CallState
from suggest.train.feedback_rows import feedback_signal
from suggest.types import Conversation, Outcome, Turn

pytestmark = pytest.mark.unit


def _embed(dim: int):  # type: ignore[no-untyped-def]
    def embed(text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
        vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
        return vector / np.linalg.norm(vector)

    return embed


def test_feedback_of_a_known_call_is_learnt_from_the_whole_call(bundled_suggestion_model: Path) -> None:
    model = load_model(bundled_suggestion_model)
    vocabulary, specs = model.vocabulary, model.specs
    embed = _embed(specs.embedding_dim)
    turns = tuple(
        Turn("customer" if i % 2 == 0 else "agent", f"turn {i} of the call") for i in range(20)
    )
    call = Conversation("call-1", "acme", Outcome(True), turns, agent_id="dana")
    record = FeedbackRecord(
        suggestion_id="s1", call_id="call-1", event="accepted", text="Would you like to donate?",
        agent_id="dana", turn_index=20, context=turns[-6:],
    )  # fmt: skip
    other = FeedbackRecord(  # a call not among the conversations: its stored turns are all there is
        suggestion_id="s2", call_id="call-2", event="accepted", text="Would you like to donate?",
        agent_id="dana", turn_index=20, context=turns[-6:],
    )  # fmt: skip

    def expected(history: tuple[Turn, ...]) -> np.ndarray:
        state = CallState(specs)
        for turn in history:
            state.advance(turn.role, embed(turn.text), vocabulary, [])
        return state.features(vocabulary, vocabulary.style_of("dana"))

    signal = feedback_signal([record, other], [call], vocabulary, embed, lambda _t: [], 1.0, 1.0)
    assert signal.used == 2 and len(signal.rows.features) == 2
    np.testing.assert_allclose(signal.rows.features[0], expected(turns), atol=1e-6)
    np.testing.assert_allclose(signal.rows.features[1], expected(turns[-6:]), atol=1e-6)
    assert not np.allclose(expected(turns), expected(turns[-6:]))
