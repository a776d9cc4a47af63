"""Numbers as people say them and ASR writes them: "forty-two", "one hundred and five", "1,299.99",
"fifteenth", plus the Luhn checksum of card numbers. Pure functions, no spaCy."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
"""Words read out one digit at a time in phone and card numbers ("oh" as in "five oh two")."""

UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
JOINERS = {"and", "-", "a", "an"}
"""Words that may sit inside a spoken number ("a hundred and five", "forty - two")."""

NUMBER_WORDS = set(UNITS) | set(TENS) | set(SCALES)

ORDINAL_UNITS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}


def parse_numeral(token: str) -> Decimal | None:
    """``"1,299.99"`` -> 1299.99; None when the token is not a plain numeral."""
    cleaned = token.replace(",", "")
    if not cleaned or not cleaned[0].isdigit():
        return None
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def words_to_number(tokens: list[str]) -> Decimal | None:
    """Value of a spoken or written number split into tokens, or None if it is not one.

    ``["one", "hundred", "and", "twenty"]`` -> 120; ``["1.5", "million"]`` -> 1500000;
    ``["forty", "-", "two"]`` -> 42; ``["37"]`` -> 37.
    """
    words = [t.lower() for t in tokens]
    total, current, seen = Decimal(0), Decimal(0), False
    for i, word in enumerate(words):
        numeral = parse_numeral(word)
        following = words[i + 1] if i + 1 < len(words) else ""
        if numeral is not None:
            current += numeral
        elif word in UNITS:
            current += UNITS[word]
        elif word in TENS:
            current += TENS[word]
        elif word == "hundred":
            current = (current or Decimal(1)) * 100
        elif word in SCALES:
            total += (current or Decimal(1)) * SCALES[word]
            current = Decimal(0)
        elif word in ("a", "an") and following in SCALES:
            current += 1
        elif word in ("and", "-") and seen:
            continue
        else:
            return None
        seen = True
    return total + current if seen else None


def ordinal_to_int(tokens: list[str]) -> int | None:
    """``["15th"]``, ``["fifteenth"]``, ``["twenty", "-", "first"]``, ``["3"]`` -> the number."""
    words = [t.lower() for t in tokens if t != "-"]
    if len(words) == 1:
        word = words[0]
        digits = word.rstrip("stndrh")
        if digits.isdigit() and (digits == word or word[len(digits) :] in ("st", "nd", "rd", "th")):
            return int(digits)
        return ORDINAL_UNITS.get(word)
    if len(words) == 2 and words[0] in TENS and words[1] in ORDINAL_UNITS:
        return TENS[words[0]] + ORDINAL_UNITS[words[1]]
    return None


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum that every payment card number satisfies."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0
