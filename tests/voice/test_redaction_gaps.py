"""Redaction of numbers and mailboxes as callers really give them: a card read out in pieces over
several turns, a quantity said right after a phone number, letters spelled with stops or commas,
and the short last piece of a number read out across turns (``voice serve --redact`` and the
digit-run rule it shares with batch)."""

from __future__ import annotations

import re

import pytest

from suggest.nlu.entities import REDACTED_LABELS
from tests.voice.test_live_redaction import _final, _redact_call, _words
from voice.batch.engines import entity_extractor
from voice.frames import NluFrame, TimedWord, TranscriptFinalFrame, TranscriptPartialFrame
from voice.processors.redact import LiveRedactor, redact_final
from voice.redaction import Hidden, NumberMask, mask_number_runs, merge_masks

pytestmark = pytest.mark.unit


def _call(*turns: str, step: float = 4.0) -> tuple[list[TranscriptFinalFrame], list[NluFrame]]:
    """The finals and NluFrames a redacted call emits for the customer's ``turns``, ``step`` s apart."""

    frames = _redact_call(*(_final(i, text, step * i) for i, text in enumerate(turns)))
    finals = [f for f in frames if isinstance(f, TranscriptFinalFrame)]
    assert all(type(w) is TimedWord for f in finals for w in f.words)  # what a mask hid never leaves
    return finals, [f for f in frames if isinstance(f, NluFrame)]


def _labels(nlu: NluFrame) -> list[str]:
    return [e["label"] for e in nlu.entities]


# ------------------------------------------------------------------ a card read out in pieces


def test_a_card_read_out_over_two_turns_is_a_card() -> None:
    """Pieces of 8 digits each: the second made a 16-digit, Luhn-valid number, but the run kept
    the first piece's label and showed and stored it as [PHONE]."""
    finals, nlu = _call("yeah the card is 4111 1111", "1111 1111", "and the expiry is 04 26")
    assert [f.text for f in finals][:2] == ["yeah the card is [PHONE]", "[CARD]"]  # the first piece alone: 8 digits
    assert _labels(nlu[1]) == ["CARD"]
    assert finals[2].text == "and the expiry is 04 26"  # words between: no more of the card


def test_a_card_read_in_four_groups_and_an_amex_read_in_three() -> None:
    finals, nlu = _call("it's 4111 1111", "1111", "1111")
    assert [f.text for f in finals] == ["it's [PHONE]", "[PHONE]", "[CARD]"] and _labels(nlu[2]) == ["CARD"]
    finals, nlu = _call("it's an american express 3782 822463", "10005")
    assert finals[1].text == "[CARD]" and _labels(nlu[1]) == ["CARD"]


def test_digits_said_after_a_card_read_in_pieces_keep_the_card_label() -> None:
    """The history's masks are named [CARD] once their pieces made one, so what follows them
    (an expiry read straight after) continues the card, not a phone number."""
    finals, _ = _call("four one one one one one one one", "one one one one one one one one", "then 0 4 2 6")
    assert [f.text for f in finals] == ["[PHONE]", "[CARD]", "[CARD]"]


def test_sixteen_digits_failing_luhn_across_turns_stay_masked() -> None:
    finals, _ = _call("my number is 4111 1111", "1111 1112")  # misheard: not a card by checksum
    assert [f.text for f in finals] == ["my number is [PHONE]", "[PHONE]"]


def test_the_history_keeps_what_a_mask_hid_but_never_its_digits() -> None:
    digest = Hidden.of("41111111").then(Hidden.of("11111111"))
    assert digest == Hidden.of("4111111111111111") and digest.is_card
    assert not Hidden.of("4111111111111112").is_card and Hidden.of("378282246310005").is_card
    history = [NumberMask("[PHONE]", 0.0, 1.0, 0.9, Hidden.of("41111111"))]
    masked, runs = mask_number_runs([*history, *_words("1111 1111", 2.0)])
    assert [w.text for w in masked] == ["[CARD]"] * 3 and runs == 1
    assert "4111" not in repr(history) and "1111" not in repr(history)


# ------------------------------------------------------- a quantity said after a full number


@pytest.mark.parametrize(("said", "shown"), [
    ("my phone is 555-123-4567 and 2 rooms", "my phone is [PHONE] and 2 rooms"),
    ("it's 5 5 5 1 2 3 4 5 6 7 and two nights please", "it's [PHONE] and two nights please"),
    ("call me back on 555 123 4567 then 1 more thing", "call me back on [PHONE] then 1 more thing"),
    ("it's 555 123 456 and 7", "it's [PHONE]"),  # the last digit completes the number: part of it
])
def test_a_small_quantity_after_a_complete_number_in_the_same_turn_stays(said: str, shown: str) -> None:
    masked, _ = mask_number_runs(_words(said, 0.0))
    assert " ".join(w.text for w in merge_masks(masked)) == shown


def test_a_quantity_after_a_number_in_one_final_is_shown_and_heard() -> None:
    finals, _ = _call("my phone is 555-123-4567 and 2 rooms please")
    assert finals[0].text == "my phone is [PHONE] and 2 rooms please"
    two = _words("my phone is 555-123-4567 and 2 rooms please", 0.0)[5]
    assert not any(a < two.end and two.start < b for a, b in finals[0].masked_audio)  # its audio kept


# --------------------------------------------------------------- letters spelled with stops


@pytest.mark.parametrize("said", [
    "yes my email is J. O. H. N. at gmail dot com",
    "it's J, O, H, N, dot smith at gmail dot com",
    "sure it's J.O.H.N. at yahoo dot co dot uk",
    "J. O. H. N. dot S. M. I. T. H. at hotmail dot com",
])
def test_a_mailbox_spelled_with_stops_or_commas_is_masked_whole(said: str) -> None:
    extractor = entity_extractor()
    redacted = extractor.redact(said)
    assert redacted.endswith("[EMAIL]") and not any(c in redacted for c in ",.") and "N" not in redacted
    finals, nlu = _call(said)
    assert finals[0].text == redacted and _labels(nlu[0]).count("EMAIL") == 1


# ------------------------------------------- the short last piece of a number across turns


def test_a_short_last_piece_that_completes_a_number_is_masked_and_silenced() -> None:
    """A caller reads out 8 digits, then the last two: "six seven" was shown and heard, as any
    piece under three digits after a mask was taken for a quantity."""
    finals, _ = _call("my number is 555 123 45", "six seven")
    assert [f.text for f in finals] == ["my number is [PHONE]", "[PHONE]"]
    assert all(any(a <= w.start and w.end <= b for a, b in finals[1].masked_audio) for w in _words("six seven", 4.0))
    finals, nlu = _call("the card is 4111 1111 1111 11", "11")  # 14 digits, then the last two: Luhn valid
    assert [f.text for f in finals] == ["the card is [CARD]", "[CARD]"] and _labels(nlu[1]) == ["CARD"]


@pytest.mark.parametrize("after", ["and 2 rooms please", "one moment please", "for one night", "yes 12 nights"])
def test_a_short_number_after_a_complete_number_stays_in_clear(after: str) -> None:
    finals, _ = _call("my number is 555 123 4567", after)
    assert [f.text for f in finals] == ["my number is [PHONE]", after] and finals[1].masked_audio == []


def test_a_short_number_after_a_short_local_number_stays_in_clear() -> None:
    finals, _ = _call("it's 555 1234", "and 2 rooms please")  # 7 digits, then 1: no whole number
    assert [f.text for f in finals][1] == "and 2 rooms please"


def test_partials_mask_the_completing_piece_too() -> None:
    redactor = LiveRedactor(REDACTED_LABELS)
    done = redact_final(_final(0, "my number is 555 123 45", 0.0), [], entity_extractor(), REDACTED_LABELS)
    redactor.remember("inbound", done.frame.words, done.history)
    partial = TranscriptPartialFrame(leg="inbound", committed=_words("six", 4.0), tentative=_words("seven", 4.4),
                                     audio_time=5.0, role="customer")
    shown = redactor.partial(partial)
    assert [w.text for w in [*shown.committed, *shown.tentative]] == ["[PHONE]", "[PHONE]"]
    assert all(type(w) is TimedWord for w in [*shown.committed, *shown.tentative])


# ------------------------------------------- a quantity is split off a whole number only (fail safe)


@pytest.mark.parametrize("said", [
    "my social is 123 45 67 and 89",  # an SSN read 3-2-2, then its last piece
    "my social is one two three four five six seven and eight nine",
    "my member id is 4821 937 and 56",
    "my card is 4111 1111 1111 11 and 12",  # a card that fails Luhn (a digit misheard)
    "my card number is 5500 0000 0000 00 and 05",
])
def test_the_last_piece_of_a_number_not_known_whole_stays_masked(said: str) -> None:
    """Splitting "and 2 rooms" off a number must not show the last digits of one it cannot tell
    is whole: a review found these shown in clear ("my social is [PHONE] and 89")."""
    finals, _ = _call(said)
    assert not re.search(r"\d|\b(?:eight|nine)\b", finals[0].text), finals[0].text


def test_a_quantity_after_a_whole_ssn_in_the_next_turn_stays_in_clear() -> None:
    """An SSN is whole at 9 digits: "2 tickets" after it is not its 10th digit."""
    finals, _ = _call("my ssn is 123 45 6789", "2 tickets please")
    assert finals[0].text == "my ssn is [SSN]" and finals[1].text == "2 tickets please"
