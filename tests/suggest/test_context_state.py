"""Call-start context in the state: layout, the manifest record, and train/serve agreement."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from suggest.specs import Specifications
from suggest.state import CallState, Vocabulary
from suggest.train.dataset import replay
from suggest.types import Conversation, Outcome, Turn

pytestmark = pytest.mark.unit

DIM = 8


def _specs(context_names: tuple[str, ...] = ()) -> Specifications:
    return Specifications(
        embedding_dim=DIM,
        projection_dim=4,
        n_actions=3,
        n_intents=2,
        entity_labels=("MONEY",),
        context_names=context_names,
    )


def _vocabulary(specs: Specifications) -> Vocabulary:
    rng = np.random.default_rng(0)
    return Vocabulary(
        specs=specs,
        action_centroids=rng.normal(size=(specs.n_actions, DIM)).astype(np.float32),
        intent_centroids=rng.normal(size=(specs.n_intents, DIM)).astype(np.float32),
        projection=rng.normal(size=(DIM, specs.projection_dim)).astype(np.float32),
        projection_mean=np.zeros(DIM, np.float32),
        style={},
        global_style=np.full(specs.n_actions, 1 / specs.n_actions, np.float32),
    )


def _embed(text: str) -> np.ndarray:
    vector = np.random.default_rng(zlib.crc32(text.encode())).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_specs_without_context_keep_their_layout_and_manifest() -> None:
    plain = _specs()
    assert [name for name, _ in plain.blocks()][-1] == "agent_style"
    assert "context_names" not in plain.to_dict()  # old manifests stay byte for byte
    assert Specifications.from_dict(plain.to_dict()) == plain
    with_context = _specs(("tier", "campaign"))
    assert with_context.n_features == plain.n_features + 4
    assert with_context.blocks()[-2:] == [("context", 2), ("context_present", 2)]
    assert with_context.to_dict()["context_names"] == ["tier", "campaign"]
    assert Specifications.from_dict(with_context.to_dict()) == with_context


def test_features_end_with_values_then_presence_bits_in_the_recorded_order() -> None:
    specs = _specs(("tier", "campaign"))
    vocabulary = _vocabulary(specs)
    state = CallState(specs)
    style = vocabulary.global_style
    assert state.features(vocabulary, style)[-4:].tolist() == [0.0, 0.0, 0.0, 0.0]
    state.set_context({"campaign": 3.0, "tier": 2.0, "unknown_to_the_model": 9.0})
    assert state.features(vocabulary, style)[-4:].tolist() == [2.0, 3.0, 1.0, 1.0]
    state.set_context({"campaign": 0.0})  # absent tier: 0 and not present; a real 0 is present
    assert state.features(vocabulary, style)[-4:].tolist() == [0.0, 0.0, 0.0, 1.0]
    plain = CallState(_specs())
    plain.set_context({"tier": 2.0})  # a model without context ignores it
    assert plain.features(_vocabulary(_specs()), style).shape == (_specs().n_features,)


def test_training_rows_carry_each_conversations_context() -> None:
    specs = _specs(("tier",))
    vocabulary = _vocabulary(specs)
    conversations = [
        Conversation(
            id=f"c{i}",
            tenant="t",
            outcome=Outcome(success=i == 0),
            turns=(Turn("agent", "Hello"), Turn("customer", "Hi"), Turn("agent", f"Offer {i}")),
            context={"tier": float(i + 1)} if i < 2 else {},
        )
        for i in range(3)
    ]
    rows = replay(
        conversations,
        np.array([1.0, 0.0, 0.0], np.float32),
        _embed,
        lambda _turn: [],
        vocabulary,
        [vocabulary.global_style] * 3,
    )
    assert rows.features[:, -2:].tolist() == [[1, 1], [1, 1], [2, 1], [2, 1], [0, 0], [0, 0]]
    # Serving builds the same vector for the same turns and context.
    state = CallState(specs)
    state.set_context(conversations[1].context)
    for turn in conversations[1].turns[:2]:
        state.advance(turn.role, _embed(turn.text), vocabulary)
    np.testing.assert_array_equal(state.features(vocabulary, vocabulary.global_style), rows.features[3])
