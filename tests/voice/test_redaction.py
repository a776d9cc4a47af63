"""Redaction rewrites text, words and entity offsets consistently."""

from __future__ import annotations

import pytest

from voice.frames import TimedWord
from voice.redaction import Span, mask_metadata, mask_number_runs, merge_masks, redact_segment

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


@pytest.mark.parametrize("text", [
    "between 10:30 and 11:45", "$45.50 and $12.99", "the total is $12,345.67", "on 2024-03-15 or 03-15-2024",
    "flights BA2490 and BA2491", "1,500,000 units", "in 2019 and 2020", "at 7:30 on 12/03/2024", "4.99 and 12.50",
])
def test_times_prices_dates_quantities_and_codes_are_no_digit_run(text: str) -> None:
    """Every digit of every token counted: "between 10:30 and 11:45" became "between [PHONE]"."""
    from voice.redaction import mask_number_runs

    assert mask_number_runs(_words(text)) == (_words(text), 0)


@pytest.mark.parametrize(("text", "masked"), [
    ("my social is 123-45-6789.", "my social is [PHONE]"),  # by length; the extractor names it (below)
    ("call 555-123-4567", "call [PHONE]"),
    ("it's 555.123.4567", "it's [PHONE]"),
    ("a 370 -318 and 04 -82.", "a [PHONE]"),  # Whisper's dashes on SNG0696
    ("(555) 123 4567", "[PHONE]"),
    ("2019 2020 2021 2022", "[CARD]"),  # more than three years: four groups of a card
    ("four one one one 1111 2222", "[PHONE]"),
])
def test_numbers_read_out_are_still_digit_runs(text: str, masked: str) -> None:
    from voice.redaction import mask_number_runs, merge_masks

    words, runs = mask_number_runs(_words(text))
    assert " ".join(w.text for w in merge_masks(words)) == masked and runs == 1


def test_a_run_takes_the_label_the_extractor_gave_its_words() -> None:
    from voice.redaction import mask_number_runs, word_labels

    text = "my social is 123 45 6789 ok"
    words = _words(text)
    ssn = Span("SSN", "123 45 6789", text.index("123"), text.index(" ok"), "123456789")
    labels = word_labels(text, words, [ssn])
    assert labels == [None, None, None, "SSN", "SSN", "SSN", None]
    assert [w.text for w in mask_number_runs(words, labels)[0]] == ["my", "social", "is"] + ["[SSN]"] * 3 + ["ok"]


def test_batch_entities_name_the_numbers_the_digit_runs_masked() -> None:
    """Batch output had no entity for a run mask (live had), and called an SSN a [PHONE]."""
    from voice.batch.pipeline import _entities
    from voice.transcript import Segment

    def segment(i: int, text: str) -> Segment:
        words = _words(text)
        return Segment(i, words[0].start, words[-1].end, "S1", text, words=words)

    segments = [segment(0, "My social is 123-45-6789."), segment(1, "my number is 370 318"),
                segment(2, "and 04 82"), segment(3, "between 10:30 and 11:45 please")]
    mentions = _entities(segments, redact=True)
    assert [s.text for s in segments] == ["My social is [SSN]", "my number is [PHONE]", "[PHONE]",
                                          "between 10:30 and 11:45 please"]
    masks = [(m.label, m.segment, m.text, m.value) for m in mentions if m.text.startswith("[")]
    assert masks == [("SSN", 0, "[SSN]", None), ("PHONE", 1, "[PHONE]", None), ("PHONE", 2, "[PHONE]", None)]
    for m in mentions:
        assert segments[m.segment].text[m.start_char:m.end_char] == m.text


def test_a_later_segment_with_a_number_and_an_email_is_masked_whole() -> None:
    """The masked segments were read again only when the first one had changed: a number and an
    e-mail in a later segment left 'my number is [PHONE]l is jane dot doe[EMAIL]'."""
    from voice.batch.pipeline import _entities
    from voice.transcript import Segment

    def segment(i: int, text: str) -> Segment:
        words = _words(text)
        return Segment(i, words[0].start, words[-1].end, "S1", text, words=words)

    segments = [segment(0, "hello there"),
                segment(1, "my number is 5 5 5 1 2 3 4 5 6 7 and my email is jane dot doe at gmail dot com")]
    mentions = _entities(segments, redact=True)
    assert segments[1].text == "my number is [PHONE] and my email is [EMAIL]"
    assert " ".join(w.text for w in segments[1].words) == segments[1].text
    for m in mentions:
        assert segments[m.segment].text[m.start_char:m.end_char] == m.text


@pytest.mark.parametrize(("said", "shown"), [
    ("my phone is (555)123-4567", "my phone is [PHONE]"),
    ("my number is 5,551,234,567", "my number is [PHONE]"),
    ('it is "5551234567" ok', "it is [PHONE] ok"),
    ("call number:5551234567 now", "call [PHONE] now"),
    ("my phone is 555\u2013123\u20134567", "my phone is [PHONE]"),
    ("call 555.1234 now", "call [PHONE] now"),
    ("we sold 1,500,000 units", "we sold 1,500,000 units"),
    ("it costs 4.99 a month", "it costs 4.99 a month"),
])
def test_numbers_written_with_brackets_commas_quotes_or_labels_are_still_runs(said: str, shown: str) -> None:
    """Keeping times, prices and dates out of digit runs had let these through the live partials
    (which only the runs mask): brackets, thousands commas on a 10-digit number, quotes, a label
    glued on, en dashes, a dotted piece of four digits."""
    masked, _ = mask_number_runs(_words(said))
    assert " ".join(w.text for w in merge_masks(masked)) == shown


@pytest.mark.parametrize(("metadata", "masked"), [
    ({"to": "<tel:+1.415.555.0123>"}, {"to": "<tel:[PHONE]>"}),  # RFC 3966 visual separators
    ({"from": "<sip:0044.20.7946.0958@gw>"}, {"from": "<sip:[PHONE]@gw>"}),
    ({"participants": [{"aor": "sip:+14155550123@sbc", "name": "+1 (415) 555-0123"}]},
     {"participants": [{"aor": "sip:[PHONE]@sbc", "name": "[PHONE]"}]}),
    # ids are kept whole: a UUID's digit groups, a CRM case number, a dotted-quad host
    ({"participant": {"id": "12345678-1234-5678-1234-567812345678", "ani": "tel:+14155550123"}},
     {"participant": {"id": "12345678-1234-5678-1234-567812345678", "ani": "tel:[PHONE]"}}),
    ({"custom_parameters": {"crm_ticket": "CASE-20240612-000123"}},
     {"custom_parameters": {"crm_ticket": "CASE-20240612-000123"}}),
    ({"from": "<sip:1001@192.168.100.200>"}, {"from": "<sip:1001@192.168.100.200>"}),
])
def test_call_metadata_masks_numbers_and_keeps_ids(metadata: dict[str, object], masked: dict[str, object]) -> None:
    assert mask_metadata(metadata) == masked
