"""Entity patterns without the spaCy model: numbers, digit runs, ids, money and dates."""

from __future__ import annotations

import pytest

from suggest.nlu.numbers import luhn_valid, ordinal_to_int, words_to_number
from suggest.nlu.patterns import find_structured, iso_date
from suggest.nlu.spoken import date_value, money_value

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("words", "value"),
    [
        ("forty", 40),
        ("forty - two", 42),
        ("one hundred and twenty", 120),
        ("a hundred", 100),
        ("two thousand five hundred", 2500),
        ("1,299.99", 1299.99),
        ("1.5 million", 1_500_000),
        ("thirty seven", 37),
        ("twelve", 12),
    ],
)
def test_spoken_and_written_numbers(words: str, value: float) -> None:
    assert float(words_to_number(words.split())) == pytest.approx(value)


@pytest.mark.parametrize("words", ["and", "forty apples", "", "a", "and forty"])
def test_non_numbers_are_none(words: str) -> None:
    assert words_to_number(words.split()) is None


def test_ordinals_luhn_and_iso_dates() -> None:
    assert [
        ordinal_to_int(w.split()) for w in ("15th", "fifteenth", "twenty - first", "3", "3x")
    ] == [15, 15, 21, 3, None]
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112") and not luhn_valid("41111a")
    assert iso_date(2024, 2, 29) == "2024-02-29" and iso_date(None, 2, 29) == "--02-29"
    assert iso_date(2023, 2, 29) is None and iso_date(2024, 13, 1) is None


@pytest.mark.parametrize(
    ("words", "value"),
    [
        (["$", "40"], "40.00 USD"),
        (["forty", "dollars"], "40.00 USD"),
        (["37", "pounds", "and", "80", "cents"], "37.80 GBP"),
        (["eighty", "cents"], "0.80 USD"),
        (["a", "hundred", "bucks"], "100.00 USD"),
        (["€", "1,299.99"], "1299.99 EUR"),
        (["USD", "2", "million"], "2000000.00 USD"),
        (["about", "$", "40"], "40.00 USD"),
        (["fifty", "pence"], "0.50 GBP"),
        (["a", "dollar"], "1.00 USD"),
    ],
)
def test_money_values(words: list[str], value: str) -> None:
    assert money_value(words) == value


def test_money_and_date_values_reject_non_money() -> None:
    assert money_value(["forty", "minutes"]) is None
    assert money_value(["1,299.99"]) is None
    assert date_value(["March", "15th", ",", "2024"]) == "2024-03-15"
    assert date_value(["the", "3rd", "of", "may"]) == "--05-03"
    assert date_value(["march", "twenty", "-", "first"]) == "--03-21"
    assert date_value(["march", "2024"]) == "2024-03"
    assert date_value(["february", "30th"]) is None


def _found(text: str) -> list[tuple[str, str, str]]:
    """Candidates that survive overlap resolution by priority, as (label, text, value)."""
    ranked = sorted(
        find_structured(text), key=lambda c: (c.priority, c.entity.start - c.entity.end)
    )
    kept = []
    for candidate in ranked:
        e = candidate.entity
        if all(e.end <= k.start or e.start >= k.end for k in kept):
            kept.append(e)
    return [(e.label, e.text, e.value) for e in sorted(kept, key=lambda e: e.start)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call me at 555-123-4567 please", [("PHONE", "555-123-4567", "5551234567")]),
        ("it's (555) 123 4567", [("PHONE", "(555) 123 4567", "5551234567")]),
        (
            "five five five, one two three, four five six seven",
            [("PHONE", "five five five, one two three, four five six seven", "5551234567")],
        ),
        (
            "my number is double five five one two three four",
            [("PHONE", "double five five one two three four", "5551234")],
        ),
        ("on +44 20 7946 0958.", [("PHONE", "+44 20 7946 0958", "442079460958")]),
        ("card 4111-1111-1111-1111", [("CARD", "4111-1111-1111-1111", "4111111111111111")]),
        (
            "my credit card is 4111 1111 1111 1112",
            [("CARD", "4111 1111 1111 1112", "4111111111111112")],
        ),
        (
            "tracking code 4111 1111 1111 1112 ok",
            [("REFERENCE", "4111 1111 1111 1112", "4111111111111112")],
        ),
        ("ssn 123-45-6789", [("SSN", "123-45-6789", "123456789")]),
        (
            "my social is one two three four five six seven eight nine",
            [("SSN", "one two three four five six seven eight nine", "123456789")],
        ),
        ("it is 123-45-6789", [("SSN", "123-45-6789", "123456789")]),
        ("it is 000-12-3456", []),
        (
            "write to Jo.Smith+cc@Example.co.uk now",
            [("EMAIL", "Jo.Smith+cc@Example.co.uk", "jo.smith+cc@example.co.uk")],
        ),
        (
            "it's jo underscore smith at yahoo dot com",
            [("EMAIL", "jo underscore smith at yahoo dot com", "jo_smith@yahoo.com")],
        ),
        ("just look at example dot com", []),
        ("order number is AB12345.", [("ORDER_ID", "AB12345", "AB12345")]),
        ("account number: 1234 5678 9012", [("ACCOUNT_ID", "1234 5678 9012", "123456789012")]),
        (
            "my confirmation number is k x seven seven one",
            [("REFERENCE", "k x seven seven one", "KX771")],
        ),
        ("the order 12345 I think", [("ORDER_ID", "12345", "12345")]),
        ("our policy is 365 days", []),
        ("customer 12345 called", []),
        ("the train is tr-4471-b", [("REFERENCE", "tr-4471-b", "TR4471B")]),
        ("at 10am on the 3rd, covid19 and mp3", []),
        (
            "shipped 2024-03-15 and due 15/04/2024",
            [("DATE", "2024-03-15", "2024-03-15"), ("DATE", "15/04/2024", "2024-04-15")],
        ),
        ("I paid 40, 50 and 60", []),
        ("room 12 at 14:06", []),
    ],
)
def test_structured_patterns(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email josé@gmail.com", [("EMAIL", "josé@gmail.com", "josé@gmail.com")]),
        ("it's müller@web.de", [("EMAIL", "müller@web.de", "müller@web.de")]),
        ("my email is zoë.smith@gmail.com", [("EMAIL", "zoë.smith@gmail.com", "zoë.smith@gmail.com")]),
        # a decomposed accent ("o" + U+0301) cut the address at the mark: "jó[EMAIL]"
        ("email jo\u0301se@gmail.com", [("EMAIL", "jo\u0301se@gmail.com", "jo\u0301se@gmail.com")]),
        (
            "my email is renée at outlook dot com",
            [("EMAIL", "renée at outlook dot com", "renée@outlook.com")],
        ),
        (
            "my email is françois dot dupont at gmail dot com",
            [("EMAIL", "françois dot dupont at gmail dot com", "françois.dupont@gmail.com")],
        ),
        (
            "it's j o h n dot s m i t h at gmail dot com",
            [("EMAIL", "j o h n dot s m i t h at gmail dot com", "john.smith@gmail.com")],
        ),
        (
            "my email is j o h n smith at gmail dot com",
            [("EMAIL", "j o h n smith at gmail dot com", "johnsmith@gmail.com")],
        ),
        (
            "my email address is john smith 1 9 8 5 at gmail dot com",
            [("EMAIL", "smith 1 9 8 5 at gmail dot com", "smith1985@gmail.com")],
        ),
        ("it's john j o h n at gmail dot com", [("EMAIL", "john j o h n at gmail dot com", "john@gmail.com")]),
        (
            "my email is sarah at hotmail dot co dot uk",
            [("EMAIL", "sarah at hotmail dot co dot uk", "sarah@hotmail.co.uk")],
        ),
        (
            "it's john underscore smith at yahoo dot co dot uk.",
            [("EMAIL", "john underscore smith at yahoo dot co dot uk", "john_smith@yahoo.co.uk")],
        ),
        ("send it to info at acme dot com", [("EMAIL", "info at acme dot com", "info@acme.com")]),
        ("meet me at the office dot com", []),
    ],
)
def test_emails_with_accents_spelled_out_and_long_domains(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "my phone number is oh seven seven double oh nine double oh one two three",
            [("PHONE", "oh seven seven double oh nine double oh one two three", "07700900123")],
        ),
        (
            "oh one six one four nine six oh oh oh oh",
            [("PHONE", "oh one six one four nine six oh oh oh oh", "01614960000")],
        ),
        ("oh nine nine nine", []),  # no phone keyword, no full number: an "oh" and three nines
        ("oh I see, that's fine", []),
    ],
)
def test_a_leading_oh_is_the_zero_of_a_phone_number(
    text: str, expected: list[tuple[str, str, str]]
) -> None:
    assert _found(text) == expected


def test_spoken_emails_stay_linear_on_adversarial_text() -> None:
    """The spoken pattern backtracked over every "a dot a dot ...": 1.6 s for 24k characters."""
    import time

    from suggest.nlu.patterns import _LOCAL_TOKENS, find_emails

    texts = ["a dot " * 4000, "at " + "a dot " * 4000, "j " * 8000 + "at gmail dot com", "a at " * 5000]
    # CPU time of this thread, not the wall clock: a loaded machine (or another thread of the test
    # session) does not count. Linear: about 0.03 s; backtracking: 1.6 s for the first text alone.
    started = time.thread_time()
    found = [find_emails(text) for text in texts]
    assert time.thread_time() - started < 0.5
    assert [len(f) for f in found] == [0, 0, 1, 0]
    assert found[2][0].entity.value == "j" * _LOCAL_TOKENS + "@gmail.com"  # read back a bounded way


def test_a_string_of_ohs_is_no_number() -> None:
    """Ten "oh"s in a row were a phone number 00000000000, and each "oh" re-read the rest."""
    from suggest.nlu.patterns import digit_runs

    assert digit_runs("Oh, oh, oh, oh, oh, oh, oh, oh, oh, oh, oh.") == []
    assert [r.digits for r in digit_runs("my phone number is oh seven seven double oh nine double oh one two three")] \
        == ["07700900123"]
