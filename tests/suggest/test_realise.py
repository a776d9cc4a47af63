"""Entity refill and exemplar choice of the realisation step, on hand-made exemplars."""

from __future__ import annotations

import numpy as np
import pytest

from suggest.realise import Exemplar, ExemplarBank, Slot, refill

pytestmark = pytest.mark.unit


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_refill_replaces_refillable_labels_and_keeps_others() -> None:
    text = "Thanks John, even $0.50 helps Save the Children."
    slots = (Slot("PERSON", 7, 11), Slot("MONEY", 18, 23), Slot("ORG", 30, 47))
    assert (
        refill(text, slots, {"PERSON": "Maria", "MONEY": "$2"})
        == "Thanks Maria, even $2 helps Save the Children."
    )
    # No value for money: the exemplar's own amount stays; a person's name never does.
    assert refill(text, slots, {}) == "Thanks [PERSON], even $0.50 helps Save the Children."
    assert (
        refill(text, slots, {}, keep_missing=False)
        == "Thanks [PERSON], even [MONEY] helps Save the Children."
    )


def _bank() -> ExemplarBank:
    exemplars = [
        Exemplar(0, "Hi Anna, how are you?", (Slot("PERSON", 3, 7),), "a1", "c1#0"),
        Exemplar(0, "Hello, how are you today?", (), "a2", "c2#0"),
        Exemplar(1, "Could you give $1 today?", (Slot("MONEY", 15, 17),), "a2", "c3#4"),
        Exemplar(1, "Would you donate something?", (), "a1", "c4#4"),
    ]
    contexts = np.stack([_unit(1, 0, 0), _unit(0.9, 0.1, 0), _unit(0, 1, 0), _unit(0, 0.8, 0.2)])
    texts = np.stack([_unit(1, 0, 0), _unit(0, 0, 1), _unit(0, 1, 0), _unit(0, 1, 1)])
    return ExemplarBank(exemplars, contexts, texts, n_actions=3)


def test_personal_slots_need_a_value_from_the_call() -> None:
    bank = _bank()
    without_name = bank.realise(0, _unit(1, 0, 0), None, {}, None)
    assert without_name is not None and without_name.text == "Hello, how are you today?"
    with_name = bank.realise(0, _unit(1, 0, 0), None, {"PERSON": "Maria"}, None)
    assert with_name is not None and with_name.text == "Hi Maria, how are you?"


def test_best_context_fit_then_the_agents_own_wording() -> None:
    bank = _bank()
    best = bank.realise(1, _unit(0, 1, 0), None, {"MONEY": "$3"}, None)
    assert best is not None and best.text == "Could you give $3 today?"
    own = bank.realise(1, _unit(0, 1, 0), "a1", {}, None)
    assert (
        own is not None and own.text == "Would you donate something?"
    )  # within the margin: a1's own words


def test_exemplars_repeating_the_last_agent_turn_are_skipped_and_empty_actions_give_none() -> None:
    bank = _bank()
    assert (
        bank.realise(1, _unit(0, 1, 0), None, {}, last_agent=_unit(0, 1, 0)).text
        == "Would you donate something?"
    )
    assert bank.realise(2, _unit(0, 1, 0), None, {}, None) is None
