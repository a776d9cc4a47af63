"""Redaction rewrites text, words and entity offsets consistently."""

from __future__ import annotations

import pytest

from voice.frames import TimedWord
from voice.redaction import Span, redact_segment

pytestmark = pytest.mark.unit

LABELS = {"PHONE", "CARD", "EMAIL", "SSN"}


def _words(text: str) -> list[TimedWord]:
    return [TimedWord(w, i * 0.5, i * 0.5 + 0.4) for i, w in enumerate(text.split())]


def test_sensitive_spans_are_masked_in_text_words_and_entities() -> None:
    text = "call me on 555 123 4567 about order AB123 tomorrow"
    words = _words(text)
    phone = Span("PHONE", "555 123 4567", text.index("555"), text.index("4567") + 4, "5551234567")
    order = Span("ORDER_ID", "AB123", text.index("AB123"), text.index("AB123") + 5, "AB123")
    new_text, new_words, spans = redact_segment(text, words, [order, phone], LABELS)
    assert new_text == "call me on [PHONE] about order AB123 tomorrow"
    assert [w.text for w in new_words] == ["call", "me", "on", "[PHONE]", "about", "order", "AB123", "tomorrow"]
    masked = new_words[3]
    assert (masked.start, masked.end) == (words[3].start, words[5].end)  # one mask spans the three words
    by_label = {s.label: s for s in spans}
    assert new_text[by_label["ORDER_ID"].start:by_label["ORDER_ID"].end] == "AB123"
    assert new_text[by_label["PHONE"].start:by_label["PHONE"].end] == "[PHONE]"
    assert by_label["PHONE"].value is None and "555" not in repr(spans)


def test_nothing_sensitive_leaves_everything_as_is() -> None:
    text = "the order AB123 shipped"
    order = Span("ORDER_ID", "AB123", 10, 15, "AB123")
    assert redact_segment(text, _words(text), [order], LABELS) == (text, _words(text), [order])


def test_digits_right_after_a_masked_number_are_more_of_it() -> None:
    """tiny.en heard SNG0696's customer as "a 370. [PHONE] and 0 4 8 2": the third piece, after a
    number already masked, was shown in the clear (it is no run of 7 by itself)."""
    from voice.redaction import mask_number_runs

    history = _words("a 370. [PHONE] and 0 4 8 2 please")
    masked, runs = mask_number_runs(history)
    assert [w.text for w in masked] == ["a"] + ["[PHONE]"] * 7 + ["please"]  # the piece before too
    assert runs == 1
    again, more = mask_number_runs(masked)  # nothing new to mask: the turn is as it was
    assert again == masked and more == 0
    card = mask_number_runs(_words("[CARD] 0 4 2 6"))[0]  # an expiry date read after the card
    assert [w.text for w in card] == ["[CARD]"] * 5  # keeps the masked number's label
    kept = mask_number_runs(_words("[PHONE] then we talked about the 2 rooms"))[0]
    assert [w.text for w in kept][-2:] == ["2", "rooms"]  # words between: another number
    for said_after in ("[PHONE]. 2 rooms", "[PHONE] and 3 pm", "[PHONE] then 2 nights", "[PHONE] two",
                       "2 and [PHONE]", "[PHONE] and [CARD]"):
        assert mask_number_runs(_words(said_after)) == (_words(said_after), 0), said_after  # quantities stay
