"""No suggestion shows another conversation's personal data, and refill never misplaces a value.

Hand-made exemplars pin the rules (card numbers and SSNs are never refilled, so their exemplars
are never shown; one call value cannot stand for two different amounts; PERSON is refilled only
where the agent addresses the listener). The bundled demo model, trained on real transcripts
before these rules existed, checks that an old model folder is safe as loaded, and the training
step's exemplar choice is checked on hand-built rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from suggest.clusters import ClusterInfo, ClusterSet
from suggest.model import load_model
from suggest.nlu.types import Entity
from suggest.realise import PERSONAL_LABELS, Exemplar, ExemplarBank, Slot, refill
from suggest.train.config import TrainConfig
from suggest.train.dataset import TrainingRows
from suggest.train.pipeline import _exemplar_bank
from suggest.types import Conversation, Outcome, Turn

pytestmark = pytest.mark.unit

CARD_TEXT = "I have your card 4111 1111 1111 1111 on file, shall I charge it?"
SSN_TEXT = "Thanks, I've verified SSN 078-05-1120 for you."
# Every label a live call can hold, so that no exemplar is held back for want of a value.
CALL_VALUES = {
    "PERSON": "Bob",
    "MONEY": "$1",
    "DATE": "Friday",
    "TIME": "noon",
    "PHONE": "555 0100",
    "EMAIL": "bob@example.com",
    "ORDER_ID": "ORD-1",
    "ACCOUNT_ID": "990011",
    "REFERENCE": "REF-9",
    "CARD": "5500 0000 0000 0004",
    "SSN": "123-45-6789",
}


def _slot(text: str, label: str, words: str, occurrence: int = 0) -> Slot:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(words, start + 1)
    return Slot(label, start, start + len(words))


def _card() -> Exemplar:
    return Exemplar(0, CARD_TEXT, (_slot(CARD_TEXT, "CARD", "4111 1111 1111 1111"),), None, "c1#5")


def _ssn() -> Exemplar:
    return Exemplar(0, SSN_TEXT, (_slot(SSN_TEXT, "SSN", "078-05-1120"),), None, "c2#3")


def _bank(exemplars: list[Exemplar]) -> ExemplarBank:
    """Exemplars of action 0, the first fitting the context best, the others ever less."""
    n = len(exemplars)
    contexts = np.zeros((n, n + 1), np.float32)
    contexts[:, 0] = np.linspace(1.0, 0.5, n)
    contexts[np.arange(n), np.arange(1, n + 1)] = 1.0
    contexts /= np.linalg.norm(contexts, axis=1, keepdims=True)
    texts = np.eye(n, n + 1, 1, dtype=np.float32)
    return ExemplarBank(exemplars, contexts, texts, n_actions=1)


def _context(width: int) -> np.ndarray:
    return np.eye(1, width, 0, dtype=np.float32)[0]


@pytest.mark.parametrize("make", [_card, _ssn])
@pytest.mark.parametrize("values", [{}, CALL_VALUES, {"CARD": "", "SSN": "[SSN]"}])
@pytest.mark.parametrize("keep_missing", [True, False])
def test_card_and_ssn_words_never_survive_refill_whatever_the_call_holds(
    make: Callable[[], Exemplar], values: dict[str, str], keep_missing: bool
) -> None:
    exemplar = make()
    (slot,) = exemplar.slots
    out = refill(exemplar.text, exemplar.slots, values, keep_missing=keep_missing)
    assert exemplar.text[slot.start : slot.end] not in out
    assert out == exemplar.text[: slot.start] + f"[{slot.label}]" + exemplar.text[slot.end :]


def test_an_exemplar_with_a_card_or_ssn_slot_is_never_chosen_even_when_the_call_has_one() -> None:
    plain = Exemplar(0, "Shall I charge the card we have on file?", (), None, "c3#5")
    bank = _bank([_card(), _ssn(), plain])
    chosen = bank.realise(0, _context(4), None, CALL_VALUES, None)
    assert chosen is not None and chosen.text == plain.text
    assert _bank([_card(), _ssn()]).realise(0, _context(3), None, CALL_VALUES, None) is None


def test_two_different_amounts_keep_their_words_and_one_repeated_amount_is_refilled() -> None:
    two = "Okay, you agree on two dollars and I agree on no dollars."
    slots = (_slot(two, "MONEY", "two dollars"), _slot(two, "MONEY", "no dollars"))
    assert refill(two, slots, {"MONEY": "$1"}) == two
    assert refill(two, slots, {"MONEY": "$1"}, keep_missing=False) == (
        "Okay, you agree on [MONEY] and I agree on [MONEY]."
    )
    same = "Even $5 helps, and $5 a month helps more."
    slots = (_slot(same, "MONEY", "$5"), _slot(same, "MONEY", "$5", 1))
    assert refill(same, slots, {"MONEY": "$2"}) == "Even $2 helps, and $2 a month helps more."


def test_a_personal_label_with_two_different_values_is_masked_and_its_exemplar_skipped() -> None:
    text = "Call 555 0199 or, after six, 555 0142."
    two = Exemplar(
        0, text, (_slot(text, "PHONE", "555 0199"), _slot(text, "PHONE", "555 0142")), None, "c4#2"
    )
    assert refill(text, two.slots, {"PHONE": "555 0100"}) == "Call [PHONE] or, after six, [PHONE]."
    plain = Exemplar(0, "Is this still the best number to reach you?", (), None, "c5#2")
    chosen = _bank([two, plain]).realise(0, _context(3), None, {"PHONE": "555 0100"}, None)
    assert chosen is not None and chosen.text == plain.text


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("Thanks John, even $0.50 helps.", "John", "Thanks Bob, even $0.50 helps."),
        ("Hi Anna, how are you?", "Anna", "Hi Bob, how are you?"),
        ("Thank you, Maria Lopez.", "Maria Lopez", "Thank you, Bob."),
        ("Have a lovely day, Sam!", "Sam", "Have a lovely day, Bob!"),
    ],
)
def test_a_name_addressing_the_listener_is_refilled_with_the_callers(
    text: str, name: str, expected: str
) -> None:
    exemplar = Exemplar(0, text, (_slot(text, "PERSON", name),), None, "c6#1")
    assert refill(text, exemplar.slots, {"PERSON": "Bob"}) == expected
    chosen = _bank([exemplar]).realise(0, _context(2), None, {"PERSON": "Bob"}, None)
    assert chosen is not None and chosen.text == expected


@pytest.mark.parametrize(
    ("text", "tagged"),
    [  # PERSON tags spaCy put on agent turns of PersuasionForGood
        ("Hello! Ho are you doing today?", "Ho"),
        ("Absolutely. Glad your week is starting off well.", "Glad"),
        ("Iam sure with St Jude charity", "St Jude"),
        ("thank you for your time for me.i will done with this chat.", "me.i"),
        ("It works with companies like IKEA and Walt Disney. I would like to help.", "Walt Disney"),
        ("Iam Fine. Did you know about the charity?", "Iam Fine"),
    ],
)
def test_a_person_tag_elsewhere_gets_neither_the_callers_name_nor_is_shown(
    text: str, tagged: str
) -> None:
    exemplar = Exemplar(0, text, (_slot(text, "PERSON", tagged),), None, "c7#1")
    out = refill(text, exemplar.slots, {"PERSON": "Bob"})
    assert "Bob" not in out and tagged not in out and "[PERSON]" in out
    plain = Exemplar(0, "Hello, how are you doing today?", (), None, "c8#1")
    chosen = _bank([exemplar, plain]).realise(0, _context(3), None, {"PERSON": "Bob"}, None)
    assert chosen is not None and chosen.text == plain.text


def test_an_empty_call_value_does_not_admit_a_personal_exemplar() -> None:
    text = "Hi Anna, how are you?"
    exemplar = Exemplar(0, text, (_slot(text, "PERSON", "Anna"),), None, "c9#0")
    assert _bank([exemplar]).realise(0, _context(2), None, {"PERSON": "  "}, None) is None


def test_a_personal_slot_overlapping_a_refilled_one_shows_none_of_its_words() -> None:
    text = "That is $40 on card 4111 1111 1111 1111 today."
    start = text.index("$40")
    end = text.index(" today")
    slots = (Slot("MONEY", start, start + 14), Slot("CARD", text.index("4111"), end))
    out = refill(text, slots, {"MONEY": "$2"})
    assert "1111" not in out and out == "That is $2[CARD] today."


@pytest.fixture(scope="module")
def bundled_bank(bundled: Path) -> ExemplarBank:
    """The demo's bundled model: real transcripts, trained before these rules existed."""
    return load_model(bundled).bank


def _outside_personal_slots(exemplar: Exemplar) -> str:
    pieces, position = [], 0
    for slot in sorted(exemplar.slots, key=lambda s: s.start):
        if slot.label in PERSONAL_LABELS and slot.start >= position:
            pieces.append(exemplar.text[position : slot.start] + "\0")
            position = slot.end
    return "".join(pieces) + exemplar.text[position:]


def test_an_old_model_never_shows_personal_words_nor_pastes_the_callers_name_into_script(
    bundled_bank: ExemplarBank,
) -> None:
    bank = bundled_bank
    personal = [
        i for i, e in enumerate(bank.exemplars) if any(s.label in PERSONAL_LABELS for s in e.slots)
    ]
    assert personal, "the bundled model has exemplars NER tagged with personal labels"
    for i in personal:
        exemplar = bank.exemplars[i]
        out = refill(exemplar.text, exemplar.slots, CALL_VALUES)
        outside = _outside_personal_slots(exemplar)
        for slot in exemplar.slots:
            words = exemplar.text[slot.start : slot.end]
            if slot.label in PERSONAL_LABELS:
                assert out.count(words) <= outside.count(words), (words, exemplar.text)
    # In these transcripts every PERSON tag of an agent turn is a script word ("Save the
    # Children", "Walt Disney"): no suggestion for any context carries the caller's name.
    for i, exemplar in enumerate(bank.exemplars):
        chosen = bank.realise(exemplar.action, bank.contexts[i], None, CALL_VALUES, None)
        assert chosen is None or "Bob" not in chosen.text, chosen


def test_an_old_model_keeps_two_different_amounts_instead_of_collapsing_them(
    bundled_bank: ExemplarBank,
) -> None:
    def amounts(e: Exemplar) -> set[str]:
        return {e.text[s.start : s.end].casefold() for s in e.slots if s.label == "MONEY"}

    mixed = [e for e in bundled_bank.exemplars if len(amounts(e)) > 1]
    assert mixed, "the bundled model has turns naming two different amounts"
    for exemplar in mixed:
        out = refill(exemplar.text, exemplar.slots, {"MONEY": "$1"})
        assert out.count("$1") == exemplar.text.count("$1"), exemplar.text
        assert all(a in out.casefold() for a in amounts(exemplar))


def _exemplars_trained_from(
    calls: list[list[Turn]], typicality: dict[str, float], cap: int
) -> list[Exemplar]:
    """The training step's exemplar choice over won ``calls`` whose agent turns all realise one
    action; ``typicality``: each text's cosine to that action's centroid."""
    chosen = [
        Conversation(f"c{i}", "t", Outcome(True), tuple(turns), agent_id="a1")
        for i, turns in enumerate(calls)
    ]
    where = [(c, t) for c, turns in enumerate(calls) for t in range(len(turns))]
    n = len(where)
    vectors = {
        text: np.array([fit, np.sqrt(1 - fit * fit)], np.float32) for text, fit in typicality.items()
    }
    rows = TrainingRows(
        features=np.zeros((n, 1), np.float32),
        actions=np.zeros(n, np.int64),
        conversation=np.array([c for c, _ in where]),
        turn=np.array([t for _, t in where]),
        intent_before=np.full(n, -1),
        contexts=np.tile(np.array([1.0, 0.0], np.float32), (n, 1)),
        reward=np.ones(n, np.float32),
        success=np.ones(n, bool),
    )
    info = ClusterInfo(0, "charge", ("charge",), calls[0][0].text, (), n, 1.0)
    actions = ClusterSet(np.array([[1.0, 0.0]], np.float32), [info], threshold=0.5, coverage=1.0)
    config = TrainConfig(tenant="t", max_exemplars_per_action=cap)
    bank = _exemplar_bank(chosen, rows, vectors, {}, actions, config)
    assert bank.contexts.shape == bank.texts.shape == (len(bank.exemplars), 2)
    return bank.exemplars


def _entity(text: str, label: str, words: str) -> Entity:
    start = text.index(words)
    return Entity(label, words, start, start + len(words), words)


def _turn(text: str, label: str | None = None, words: str = "") -> Turn:
    return Turn("agent", text, entities=(_entity(text, label, words),) if label else ())


def test_training_keeps_only_exemplars_some_call_can_refill_and_fills_the_cap_with_them() -> None:
    glad = "Absolutely. Glad you could make it."
    anna = "Thanks Anna, shall I put that on your card?"
    plain = "Shall I charge the card we have on file?"
    turns = [
        _turn(CARD_TEXT, "CARD", "4111 1111 1111 1111"),
        _turn(SSN_TEXT, "SSN", "078-05-1120"),
        _turn(glad, "PERSON", "Glad"),
        _turn(anna, "PERSON", "Anna"),
        _turn(plain),
    ]
    fits = {CARD_TEXT: 0.99, SSN_TEXT: 0.98, glad: 0.97, anna: 0.9, plain: 0.8}
    exemplars = _exemplars_trained_from([turns], fits, cap=2)
    # The most typical turns carry a card number, an SSN and a mis-tagged name: none is kept.
    assert [(e.text, e.source) for e in exemplars] == [(anna, "c0#3"), (plain, "c0#4")]


def test_a_card_number_recurring_across_calls_is_no_script_but_a_hotline_number_is() -> None:
    hotline = "You can call us on 800 555 0100 any time."
    plain = "Shall I charge the card we have on file?"
    call = [
        _turn(CARD_TEXT, "CARD", "4111 1111 1111 1111"),
        _turn(hotline, "PHONE", "800 555 0100"),
        _turn(plain),
    ]
    fits = {CARD_TEXT: 0.99, hotline: 0.95, plain: 0.8}
    exemplars = _exemplars_trained_from([call, call, call], fits, cap=10)
    # The same number in three calls makes a tenant constant (script words, no slot) of the
    # company's phone number; a card number stays a slot, and so no exemplar.
    assert {e.text for e in exemplars} == {hotline, plain}
    assert all(not e.slots for e in exemplars)
