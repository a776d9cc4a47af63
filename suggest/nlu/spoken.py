"""spaCy Matcher patterns for money and month-name dates, as written or spoken.

Word order is what identifies these ("forty dollars", "37 pounds and 80 cents", "$1,299.99",
"the 3rd of March", "March 15th, 2024"), so they are token patterns over the spaCy Doc, with
``LIKE_NUM`` and lower-case forms; the values are normalised by the functions here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from spacy.matcher import Matcher
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from suggest.nlu.numbers import (
    JOINERS,
    NUMBER_WORDS,
    ORDINAL_UNITS,
    SCALES,
    ordinal_to_int,
    words_to_number,
)
from suggest.nlu.patterns import iso_date
from suggest.nlu.types import PRIORITY_MONEY, PRIORITY_SPOKEN_DATE, Candidate, make_candidate

TokenPattern = dict[str, Any]
"""One token of a spaCy Matcher pattern."""

CURRENCY_SYMBOLS = {"$": "USD", "us$": "USD", "£": "GBP", "€": "EUR"}
CURRENCY_CODES = {"usd": "USD", "gbp": "GBP", "eur": "EUR"}
CURRENCY_WORDS = {
    "dollar": "USD",
    "dollars": "USD",
    "buck": "USD",
    "bucks": "USD",
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
    "euro": "EUR",
    "euros": "EUR",
    **CURRENCY_CODES,
}
SUBUNITS = {"cent": "USD", "cents": "USD", "penny": "GBP", "pence": "GBP"}

MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}

_NUMBER_TOKEN: TokenPattern = {
    "LOWER": {
        "REGEX": r"^(?:\d[\d,]*(?:\.\d+)?|"
        + "|".join(sorted(NUMBER_WORDS | JOINERS - {"-"}))
        + r"|-)$"
    }
}
_DAY_TOKEN: TokenPattern = {
    "LOWER": {
        "REGEX": r"^(?:(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?|" + "|".join(ORDINAL_UNITS) + ")$"
    }
}
_COMPOUND_DAY: list[TokenPattern] = [
    {"LOWER": {"IN": ["twenty", "thirty"]}},
    {"ORTH": "-", "OP": "?"},
    {"LOWER": {"IN": [w for w, n in ORDINAL_UNITS.items() if n < 10]}},
]
_MONTH: TokenPattern = {"LOWER": {"IN": list(MONTHS)}}
_YEAR: TokenPattern = {"LOWER": {"REGEX": r"^(?:19|20)\d{2}$"}}
_OPTIONAL_COMMA: TokenPattern = {"ORTH": ",", "OP": "?"}


def build_matcher(vocab: Vocab) -> Matcher:
    """Money and date patterns; match ids are ``MONEY`` and ``DATE``."""
    matcher = Matcher(vocab)
    some_numbers = {**_NUMBER_TOKEN, "OP": "+"}
    currency = {"LOWER": {"IN": list(CURRENCY_WORDS)}}
    subunit = {"LOWER": {"IN": list(SUBUNITS)}}
    scale = {"LOWER": {"IN": ["thousand", "million", "billion"]}, "OP": "?"}
    matcher.add(
        "MONEY",
        [
            [{"LOWER": {"IN": list(CURRENCY_SYMBOLS)}}, {"LIKE_NUM": True}, scale],
            [{"LOWER": {"IN": list(CURRENCY_CODES)}}, {"LIKE_NUM": True}, scale],
            [some_numbers, currency],
            [some_numbers, currency, some_numbers, subunit],
            [some_numbers, subunit],
            [{"LOWER": {"IN": ["a", "an"]}}, currency],
        ],
        greedy="LONGEST",
    )
    days: list[list[TokenPattern]] = [[_DAY_TOKEN], _COMPOUND_DAY]
    year_tail: list[TokenPattern] = [_OPTIONAL_COMMA, {**_YEAR, "OP": "?"}]
    date_patterns: list[list[TokenPattern]] = [[_MONTH, _YEAR]]
    for day in days:
        date_patterns.append([_MONTH, *day, *year_tail])
        date_patterns.append(
            [{"LOWER": "the", "OP": "?"}, *day, {"LOWER": "of"}, _MONTH, *year_tail]
        )
        date_patterns.append([*day, _MONTH, *year_tail])
    matcher.add("DATE", date_patterns, greedy="LONGEST")
    return matcher


def find_spoken(doc: Doc, matcher: Matcher, text: str, offset: int = 0) -> list[Candidate]:
    """Money and date candidates in ``doc`` (a Doc of ``text[offset:...]``)."""
    found = []
    for match_id, start, end in matcher(doc):
        label = doc.vocab.strings[match_id]
        span = _trim(doc[start:end])
        if span is None:
            continue
        words = [t.text for t in span]
        if label == "MONEY":
            value, priority = money_value(words), PRIORITY_MONEY
        else:
            value, priority = date_value(words), PRIORITY_SPOKEN_DATE
        if value is not None:
            found.append(
                make_candidate(
                    text, label, offset + span.start_char, offset + span.end_char, value, priority
                )
            )
    return found


def _trim(span: Span) -> Span | None:
    """Drop leading joiners ("and forty dollars") and trailing commas a pattern picked up."""
    start, end = span.start, span.end
    doc = span.doc
    while start < end and (
        doc[start].lower_ in ("and", "-", ",")
        or (
            doc[start].lower_ in ("a", "an")
            and start + 1 < end
            and doc[start + 1].lower_ not in SCALES
            and doc[start + 1].lower_ not in CURRENCY_WORDS
        )
    ):
        start += 1
    while end > start and doc[end - 1].text in (",", "-"):
        end -= 1
    return doc[start:end] if end > start else None


def money_value(words: list[str]) -> str | None:
    """``["37", "pounds", "and", "80", "cents"]`` -> ``"37.80 GBP"``, ``["$", "40"]`` ->
    ``"40.00 USD"``, ``["eighty", "cents"]`` -> ``"0.80 USD"``; None when it is not money."""
    lowered = [w.lower() for w in words]
    while lowered and not _is_money_word(lowered[0]):  # spaCy spans: "about $40"
        lowered.pop(0)
    if not lowered:
        return None
    if lowered[0] in CURRENCY_SYMBOLS or lowered[0] in CURRENCY_CODES:  # "$40", "USD 40"
        currency = CURRENCY_SYMBOLS.get(lowered[0]) or CURRENCY_CODES[lowered[0]]
        amount = _number(lowered[1:])
        return _format_money(amount, currency)
    at = next((i for i, w in enumerate(lowered) if w in CURRENCY_WORDS), None)
    if at is None:  # "eighty cents", "fifty pence"
        if lowered[-1] not in SUBUNITS:
            return None
        cents = _number(lowered[:-1])
        return _format_money(cents / 100 if cents is not None else None, SUBUNITS[lowered[-1]])
    amount = _number(lowered[:at])
    tail = [w for w in lowered[at + 1 :] if w not in SUBUNITS]
    if amount is not None and tail:
        cents = _number(tail)
        amount = amount + cents / 100 if cents is not None else None
    return _format_money(amount, CURRENCY_WORDS[lowered[at]])


def _is_money_word(word: str) -> bool:
    return (
        word in CURRENCY_SYMBOLS
        or word in CURRENCY_WORDS
        or word in NUMBER_WORDS
        or word in ("a", "an")
        or word[:1].isdigit()
    )


def _number(words: list[str]) -> Decimal | None:
    while words and words[0] in ("and", "-"):
        words = words[1:]
    if words in (["a"], ["an"]):
        return Decimal(1)
    return words_to_number(words)


def _format_money(amount: Decimal | None, currency: str) -> str | None:
    return None if amount is None else f"{amount.quantize(Decimal('0.01'))} {currency}"


def date_value(words: list[str]) -> str | None:
    """``["March", "15th", ",", "2024"]`` -> ``"2024-03-15"``; ``["the", "3rd", "of", "may"]``
    -> ``"--05-03"``; ``["March", "2024"]`` -> ``"2024-03"``."""
    lowered = [w.lower() for w in words if w not in (",", "the", "of", "The")]
    month_index = next((i for i, w in enumerate(lowered) if w in MONTHS), None)
    if month_index is None:
        return None
    month = MONTHS[lowered[month_index]]
    rest = lowered[:month_index] + lowered[month_index + 1 :]
    year = None
    if rest and rest[-1].isdigit() and len(rest[-1]) == 4:
        year = int(rest.pop())
    if not rest:
        return f"{year:04d}-{month:02d}" if year is not None else None
    day = ordinal_to_int(rest)
    return iso_date(year, month, day) if day is not None else None
