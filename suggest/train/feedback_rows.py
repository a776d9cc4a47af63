"""Turn agent feedback into training signal for a new model (see ``suggest.feedback``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from suggest.feedback import FeedbackRecord, final_events
from suggest.state import CallState, Vocabulary
from suggest.train.dataset import EmbeddingLookup, EntityLookup
from suggest.train.policy_fit import ExtraRows
from suggest.types import Conversation, Turn


@dataclass
class FeedbackSignal:
    """Positive rows for the policy, the log-odds bias table, and what was used."""

    rows: ExtraRows
    bias: np.ndarray
    """(n_intents + 1, n_actions): shrunk log((accepted + 1) / (dismissed + 1))."""
    used: int
    skipped: int
    """Decided suggestions whose context could not be rebuilt (no context, call unknown), and
    edits that record no wording (neither the shown one nor the agent's is a positive)."""


def feedback_texts(records: Sequence[FeedbackRecord]) -> list[str]:
    """Every text that must be embedded to use ``records``."""
    texts = []
    for record in final_events(records):
        if _wordless_edit(record):
            continue  # not used (feedback_signal)
        texts.append(record.edited_text if record.event == "edited" and record.edited_text else record.text)
        texts.extend(t.text for t in record.context)
    return texts


def _wordless_edit(record: FeedbackRecord) -> bool:
    """An ``edited`` record without the edited wording (or a blank one): what the agent said
    instead is unknown, and the wording shown was not what they used, so it is no positive."""
    return record.event == "edited" and not (record.edited_text and record.edited_text.strip())


def feedback_signal(
    records: Sequence[FeedbackRecord],
    conversations: Sequence[Conversation],
    vocabulary: Vocabulary,
    embed: EmbeddingLookup,
    entities: EntityLookup,
    weight: float,
    prior: float,
) -> FeedbackSignal:
    """Rows and bias from the deciding event of each suggestion."""
    specs = vocabulary.specs
    by_call = {c.id: c for c in conversations}
    accepted = np.zeros((specs.n_intents + 1, specs.n_actions), np.float32)
    dismissed = np.zeros_like(accepted)
    features, actions, used, skipped = [], [], 0, 0
    for record in final_events(records):
        context = None if _wordless_edit(record) else _context_of(record, by_call)
        if context is None:
            skipped += 1
            continue
        state = CallState(specs)
        call = by_call.get(record.call_id)  # call-start facts: known only for training calls
        state.set_context(call.context if call is not None else {})
        for turn in context:
            state.advance(turn.role, embed(turn.text), vocabulary, entities(turn))
        wording = record.edited_text if record.event == "edited" and record.edited_text else record.text
        action = int((vocabulary.action_centroids @ embed(wording)).argmax())
        intent = state.last_intent if state.last_intent >= 0 else specs.n_intents
        if record.event == "dismissed":
            dismissed[intent, action] += 1
        else:
            accepted[intent, action] += 1
            features.append(state.features(vocabulary, vocabulary.style_of(record.agent_id)))
            actions.append(action)
        used += 1
    seen = accepted + dismissed
    bias = (seen / (seen + prior)) * np.log((accepted + 1.0) / (dismissed + 1.0))
    rows = ExtraRows(
        features=np.stack(features) if features else np.zeros((0, specs.n_features), np.float32),
        actions=np.array(actions, dtype=np.int64),
        weight=weight,
    )
    return FeedbackSignal(rows=rows, bias=bias.astype(np.float32), used=used, skipped=skipped)


def _context_of(record: FeedbackRecord, by_call: dict[str, Conversation]) -> Sequence[Turn] | None:
    """The turns the suggestion was served after: the whole call up to it when the call is among
    the training conversations (its stored context is the last few turns only, so the phase,
    action history and summary rebuilt from it alone differ from the served state), else the
    stored context."""
    conversation = by_call.get(record.call_id)
    whole = None
    if conversation is not None and record.turn_index <= len(conversation.turns):
        whole = conversation.turns[: record.turn_index]
    if not record.context:
        return whole
    # the same call as served: the turn before the suggestion is the stored context's last one
    same = whole and whole[-1].role == record.context[-1].role and whole[-1].text == record.context[-1].text
    return whole if same else record.context
