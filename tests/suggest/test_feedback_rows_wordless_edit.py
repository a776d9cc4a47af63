"""An ``edited`` feedback record without the edited wording is no positive for training.

Rows stored before the server refused such edits (or imported from a file) have ``edited_text``
empty or missing; training used the wording shown instead, so the suggestion the agent changed
counted as accepted. Such a record is skipped now, and its texts are not embedded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from suggest.feedback import FeedbackRecord
from suggest.model import load_model
from suggest.train.feedback_rows import feedback_signal, feedback_texts
from suggest.types import Turn
from tests.suggest.test_feedback_rows import _embed

pytestmark = pytest.mark.unit

SHOWN = "Would you like to donate?"


def _record(sid: str, event: str, edited: str | None) -> FeedbackRecord:
    context = (Turn("customer", "I am not sure I can afford it."), Turn("agent", "I understand."))
    return FeedbackRecord(suggestion_id=sid, call_id=f"call-{sid}", event=event, text=SHOWN,  # type: ignore[arg-type]
                          agent_id="dana", turn_index=2, edited_text=edited, context=context)


@pytest.mark.parametrize("edited", [None, "", "  "])
def test_an_edit_without_wording_is_skipped_not_a_positive(bundled: Path, edited: str | None) -> None:
    model = load_model(bundled)
    vocabulary = model.vocabulary
    embed = _embed(model.specs.embedding_dim)
    wordless = _record("s1", "edited", edited)
    worded = _record("s2", "edited", "Could you give five dollars?")
    signal = feedback_signal([wordless, worded], [], vocabulary, embed, lambda _t: [], 1.0, 1.0)
    assert signal.used == 1 and signal.skipped == 1
    assert len(signal.rows.features) == 1
    action = int((vocabulary.action_centroids @ embed("Could you give five dollars?")).argmax())
    assert signal.rows.actions.tolist() == [action]
    assert float(np.abs(signal.bias).sum()) > 0  # the worded edit still counts
    assert SHOWN not in feedback_texts([wordless])
