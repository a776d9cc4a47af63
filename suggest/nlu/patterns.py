"""Text-level scanners for structured entities: e-mails, digit runs (phones, cards, SSNs),
order/account/reference ids and numeric dates.

These work on the raw string with regular expressions and one linear token walk, because
spoken digits cross spaCy's token boundaries in ways its tokenizer does not promise to keep
("555-123-4567" is one token, "(555) 123-4567" is five, "five five five ..." ten). Spoken money
and month-name dates, which follow word order, are spaCy Matcher patterns in ``spoken.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from suggest.nlu.numbers import DIGIT_WORDS, luhn_valid
from suggest.nlu.types import (
    PRIORITY_CARD,
    PRIORITY_CODE,
    PRIORITY_EMAIL,
    PRIORITY_KEYWORD_ID,
    PRIORITY_NUMERIC_DATE,
    PRIORITY_PHONE,
    PRIORITY_SSN,
    Candidate,
    make_candidate,
)

# ---------------------------------------------------------------------------- e-mail addresses

# Combining marks: "jó" may come as "o" + U+0301, which ``\w`` does not match; a local part cut
# at the mark would leave "jó" in the clear before the mask.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_WORD = rf"\w{_MARKS}"  # letters of any script, digits, "_" and combining marks (in a class)
_WRITTEN_EMAIL = re.compile(
    rf"(?<![{_WORD}.%+-])[^\W_][{_WORD}.%+-]*@[{_WORD}-]+(?:\.[{_WORD}-]+)*\.[^\W\d_]{{2,}}"
    rf"(?![{_WORD}])"
)
_SPOKEN_SEPARATORS = {"dot": ".", "underscore": "_", "dash": "-", "hyphen": "-"}
_SPOKEN_TLDS = "com|net|org|edu|gov|io|co|uk|us|ca|de|fr|au|in|info|biz|me"
# " at gmail dot com", " at hotmail dot co dot uk": the domain is the longest run of labels
# ending in a known top-level domain (at most six labels, so a long "a dot a dot ..." costs a
# bounded backtrack per "at"). The mailbox before "at" is read by ``_spoken_local``.
_SPOKEN_DOMAIN = re.compile(
    rf"(?<=\s)at\s+(?P<domain>(?:[{_WORD}-]+(?:\.|\s+dot\s+)){{1,6}}(?:{_SPOKEN_TLDS}))"
    rf"(?![{_WORD}])",
    re.IGNORECASE,
)
_LOCAL_ATOM = re.compile(rf"[^\W_][{_WORD}+-]*(?:\.[{_WORD}+-]+)*")
_LOCAL_MARKS = re.compile(rf"[{_MARKS}]")
_INITIALS = re.compile(r"(?:[^\W\d_]\.){2,}")
_LOCAL_TOKENS = 48
"""Words read back from "at" for a mailbox: a spelled-out one ("j o h n dot s m i t h") is long,
and a bound keeps a long run of letters before many "at"s linear."""
# "look at example dot com", "meet me at ..." name a website or a place, not a mailbox.
_NOT_A_MAILBOX = {
    "look",
    "be",
    "arrive",
    "meet",
    "stay",
    "call",
    "me",
    "us",
    "you",
    "them",
    "him",
    "her",
    "it",
    "here",
    "there",
    "is",
    "am",
    "are",
    "was",
    "were",
    "back",
    "home",
    "available",
    "reach",
    "email",
    "mail",
    "write",
    "contact",
    "visit",
    "check",
    "go",
    "online",
    "website",
    "site",
    "out",
    "up",
    "in",
    "on",
    "over",
    "just",
    "or",
    "and",
    "address",
}
# Words that introduce a mailbox spelled out after them ("my email is j o h n ..."): never a
# part of it.
_BEFORE_A_MAILBOX = _NOT_A_MAILBOX | {"my", "its", "to", "the", "e-mail", "name", "spelled", "so",
                                      "yes", "yeah", "okay", "ok", "uh", "um", "that's"}


def find_emails(text: str) -> list[Candidate]:
    """Written addresses ("jo@example.com") and spoken ones ("jo dot smith at gmail dot com",
    "j o h n smith at hotmail dot co dot uk")."""
    found = [
        make_candidate(text, "EMAIL", m.start(), m.end(), m.group().lower(), PRIORITY_EMAIL)
        for m in _WRITTEN_EMAIL.finditer(text)
    ]
    for match in _SPOKEN_DOMAIN.finditer(text):
        local = _spoken_local(text, match.start())
        if local is None:
            continue
        start, value = local
        value = f"{value}@{_join_spoken(match.group('domain'))}"
        found.append(make_candidate(text, "EMAIL", start, match.end(), value, PRIORITY_EMAIL))
    return found


def _spoken_local(text: str, at: int) -> tuple[int, str] | None:
    """(start, value) of the mailbox said before the "at" at ``at``: units joined by spoken or
    written separators ("jo dot smith", "jo.smith"), a unit being a word, letters or digits
    spelled one by one, or a word with a spelled run before or after it ("j o h n smith",
    "smith 1 9 8 5"). Read backwards over at most ``_LOCAL_TOKENS`` words, so linear."""
    window = max(0, at - 24 * _LOCAL_TOKENS)
    tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", text[window:at])]
    if window > 0 and tokens and not text[window - 1].isspace():
        tokens = tokens[1:]  # cut inside a word
    tokens = [(window + s, t) for s, t in tokens[-_LOCAL_TOKENS:]]
    units: list[str] = []
    i, start = len(tokens) - 1, None
    while i >= 0:
        unit = _local_unit(tokens, i)
        if unit is None:
            break
        value, i = unit
        units.insert(0, value)
        start = tokens[i + 1][0]
        if i >= 1 and tokens[i][1].lower() in _SPOKEN_SEPARATORS and _local_unit(tokens, i - 1):
            units.insert(0, _SPOKEN_SEPARATORS[tokens[i][1].lower()])
            i -= 1
            continue
        break
    if start is None or (len(units) == 1 and units[0] in _NOT_A_MAILBOX):
        return None
    return start, "".join(units)


def _local_unit(tokens: list[tuple[int, str]], i: int) -> tuple[str, int] | None:
    """The unit of a mailbox that ends with token ``i``: its value and the index before it."""
    pieces: list[str] = []
    while i >= 0 and (single := _spelled(tokens[i][1])) is not None:
        pieces.insert(0, single)
        i -= 1
    word = tokens[i][1] if i >= 0 else ""
    if _INITIALS.fullmatch(word):  # "J.O.H.N.": letters spelled, written as one word
        word = word.replace(".", "")
    if _is_local_word(word) and not (pieces and word.lower() in _BEFORE_A_MAILBOX):
        closes = not pieces  # the word ends the unit: letters spelled before it join it
        if word.lower() != "".join(pieces):  # "john j o h n": said, then spelled; the value is one
            pieces.insert(0, word.lower())
        i -= 1
        while closes and i >= 0 and (single := _spelled(tokens[i][1])) is not None:
            pieces.insert(0, single)
            i -= 1
    return ("".join(pieces), i) if pieces else None


def _spelled(token: str) -> str | None:
    """A letter or digit said on its own ("j", "5", "five"), as it is written; ASR writes a
    spelled letter with a full stop or a comma after it ("J. O. H. N.", "J, O, H, N,")."""
    token = token[:-1] if len(token) > 1 and token[-1] in ".," else token
    bare = _LOCAL_MARKS.sub("", token)
    if len(bare) == 1 and bare.isalnum():
        return token.lower()
    lower = token.lower()
    return DIGIT_WORDS[lower] if lower in DIGIT_WORDS and lower != "oh" else None


def _is_local_word(token: str) -> bool:
    return (
        bool(_LOCAL_ATOM.fullmatch(token))
        and token.lower() not in _SPOKEN_SEPARATORS
        and _spelled(token) is None
    )


def _join_spoken(part: str) -> str:
    words = re.split(r"\s+", part.strip().lower())
    return "".join(_SPOKEN_SEPARATORS.get(w, w) for w in words)


# ------------------------------------------------------------------------- digit runs (PII)

_TOKEN = re.compile(r"\d+|[A-Za-z]+|[^\sA-Za-z\d]")
_RUN_PUNCTUATION = {"-", "–", "(", ")", ",", "."}
_MAX_GAP = 3  # characters of whitespace allowed between two pieces of one number


@dataclass(frozen=True)
class DigitRun:
    """Digits read out or written in groups: ``groups`` holds the digit count of each group."""

    start: int
    end: int
    digits: str
    groups: tuple[int, ...]
    plus: bool


def _context(keywords: str) -> re.Pattern[str]:
    """A keyword within the last few words before a number ("card number is 4111 ...")."""
    return re.compile(rf"\b(?:{keywords})\b(?:\W+\w+){{0,4}}?\W*$", re.IGNORECASE)


_CARD_CONTEXT = _context(r"card|credit|debit|visa|master\s?card|amex|american express|discover")
_SSN_CONTEXT = _context(r"social security|social|ssn|s s n|s\.s\.n\.?")
_PHONE_CONTEXT = _context(
    r"phone|telephone|mobile|cell|cellphone|number|call|reach|contact|text|fax"
)


def digit_runs(text: str) -> list[DigitRun]:
    """Every maximal run of digits and digit words joined by spaces, dashes, dots or brackets."""
    tokens = list(_TOKEN.finditer(text))
    runs: list[DigitRun] = []
    i = 0
    while i < len(tokens):
        unit = _unit_at(text, tokens, i, first=True)
        if unit is None and tokens[i].group().lower() == "oh":
            run, after = _run_from(text, tokens, i, ("0", i + 1))
            if _oh_is_zero(text, run):  # "oh seven seven double oh nine ..."
                runs.append(run)
                i = after
                continue
            while i + 1 < len(tokens) and tokens[i + 1].group().lower() == "oh":
                i += 1  # "oh, oh, oh...": each "oh" read as a run again was quadratic
        if unit is None:
            i += 1
            continue
        run, i = _run_from(text, tokens, i, unit)
        runs.append(run)
    return runs


def _run_from(
    text: str, tokens: list[re.Match[str]], i: int, unit: tuple[str, int]
) -> tuple[DigitRun, int]:
    """The run whose first piece (``unit``) starts at token ``i``, and the index after it."""
    start = _prefix_start(text, tokens, i)
    digits, groups, i, end = unit[0], [len(unit[0])], unit[1], tokens[unit[1] - 1].end()
    while True:
        nxt = _next_unit(text, tokens, i, end)
        if nxt is None:
            break
        piece, i, end = nxt
        digits += piece
        groups.append(len(piece))
    return DigitRun(start, end, digits, tuple(groups), text[start] == "+"), i


def _oh_is_zero(text: str, run: DigitRun) -> bool:
    """Whether a run that begins with a spoken "oh" is a number that begins with 0: "oh" is
    mostly "oh, I see", so only after a phone keyword or when it makes a full phone number."""
    before = text[max(0, run.start - 48) : run.start]
    return bool(run.digits.strip("0")) and len(run.digits) > 1 and (  # "oh, oh, oh" is no number
        len(run.digits) in (10, 11) or bool(_PHONE_CONTEXT.search(before))
    )


def _unit_at(
    text: str, tokens: list[re.Match[str]], i: int, *, first: bool
) -> tuple[str, int] | None:
    """The digits a number piece at token ``i`` stands for, and the index after it."""
    token = tokens[i]
    word = token.group().lower()
    if word.isdigit():
        # Digits glued to letters ("AB12345", "10am", "3rd") belong to a code or a unit.
        glued_before = token.start() > 0 and text[token.start() - 1].isalpha()
        glued_after = token.end() < len(text) and text[token.end()].isalpha()
        return None if glued_before or glued_after else (word, i + 1)
    if word in DIGIT_WORDS and not (first and word == "oh"):
        return DIGIT_WORDS[word], i + 1
    if (
        word in ("double", "triple")
        and i + 1 < len(tokens)
        and _adjacent(text, token.end(), tokens[i + 1].start())
    ):
        following = tokens[i + 1].group().lower()
        digit = DIGIT_WORDS.get(
            following, following if len(following) == 1 and following.isdigit() else None
        )
        if digit is not None:
            return digit * (2 if word == "double" else 3), i + 2
    return None


def _next_unit(
    text: str, tokens: list[re.Match[str]], i: int, end: int
) -> tuple[str, int, int] | None:
    """The next piece of the same number after position ``end``, skipping up to two separators."""
    for _ in range(3):
        if i >= len(tokens) or not _adjacent(text, end, tokens[i].start()):
            return None
        unit = _unit_at(text, tokens, i, first=False)
        if unit is not None:
            return unit[0], unit[1], tokens[unit[1] - 1].end()
        mark = tokens[i].group()
        followed_by_digit = tokens[i].end() < len(text) and text[tokens[i].end()].isdigit()
        if mark not in _RUN_PUNCTUATION or (mark == "." and not followed_by_digit):
            return None
        end, i = tokens[i].end(), i + 1
    return None


def _adjacent(text: str, end: int, start: int) -> bool:
    gap = text[end:start]
    return len(gap) <= _MAX_GAP and "\n" not in gap


def _prefix_start(text: str, tokens: list[re.Match[str]], i: int) -> int:
    """Include a leading "+" (international) or "(" (area code) in the span."""
    start = tokens[i].start()
    for back in (1, 2):
        if i - back < 0:
            break
        previous = tokens[i - back]
        if previous.group() not in ("+", "(") or not _adjacent(text, previous.end(), start):
            break
        start = previous.start()
    return start


def classify_run(text: str, run: DigitRun) -> Candidate | None:
    """CARD, SSN or PHONE for a digit run, from its length, grouping, checksum and context."""
    n, digits = len(run.digits), run.digits
    before = text[max(0, run.start - 48) : run.start]
    if 13 <= n <= 19 and luhn_valid(digits):
        return make_candidate(text, "CARD", run.start, run.end, digits, PRIORITY_CARD)
    if n == 9 and (run.groups == (3, 2, 4) or _SSN_CONTEXT.search(before)) and _valid_ssn(digits):
        return make_candidate(text, "SSN", run.start, run.end, digits, PRIORITY_SSN)
    # A card number read out over the phone often fails Luhn by one misheard digit; it is
    # still a card number and must be masked.
    if 13 <= n <= 19 and _CARD_CONTEXT.search(before):
        return make_candidate(text, "CARD", run.start, run.end, digits, PRIORITY_CARD)
    if _looks_like_phone(run, bool(_PHONE_CONTEXT.search(before))):
        return make_candidate(text, "PHONE", run.start, run.end, digits, PRIORITY_PHONE)
    return None


def _looks_like_phone(run: DigitRun, phone_context: bool) -> bool:
    n = len(run.digits)
    if run.plus:
        return 8 <= n <= 15
    if n == 10 or (n == 11 and run.digits[0] in "01"):
        return True
    if n == 7 and run.groups == (3, 4):
        return True
    return phone_context and 7 <= n <= 15


def _valid_ssn(digits: str) -> bool:
    """SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def find_digit_entities(text: str) -> list[Candidate]:
    """Phone numbers, card numbers and SSNs, written or read out digit by digit."""
    found = (classify_run(text, run) for run in digit_runs(text))
    return [candidate for candidate in found if candidate is not None]


# ---------------------------------------------------------------- order / account / reference

_ID_KEYWORDS = {
    "order": "ORDER_ID",
    "account": "ACCOUNT_ID",
    "acct": "ACCOUNT_ID",
    "member": "ACCOUNT_ID",
    "membership": "ACCOUNT_ID",
    "customer": "ACCOUNT_ID",
    "reference": "REFERENCE",
    "ref": "REFERENCE",
    "confirmation": "REFERENCE",
    "booking": "REFERENCE",
    "reservation": "REFERENCE",
    "ticket": "REFERENCE",
    "case": "REFERENCE",
    "tracking": "REFERENCE",
    "invoice": "REFERENCE",
    "policy": "REFERENCE",
    "claim": "REFERENCE",
    "transaction": "REFERENCE",
}
_NEEDS_NOUN = {"customer", "member"}  # "customer 12345" is rarely an id; "customer number" is
_KEYWORD_ID = re.compile(
    r"\b(?P<keyword>" + "|".join(sorted(_ID_KEYWORDS, key=len, reverse=True)) + r")\b"
    r"(?P<noun>(?:\s*(?:numbers?|num|nr|no|id|code|reference|ref)\b\.?|\s*[:#])*)"
    r"(?:\s+(?:is|was|it's|its|it\s+is|of|reads|should\s+be|will\s+be))*\s*[:#]?\s*",
    re.IGNORECASE,
)
_CODE_PIECE = re.compile(r"[A-Za-z0-9]+")
_MIN_ID_DIGITS = 3
_MIN_ID_LENGTH = 4  # "our policy is 365 days" names no policy id


def find_keyword_ids(text: str) -> list[Candidate]:
    """Codes named by a keyword: "order number AB12345", "account 1234 5678", "ref x y 1 2 3"."""
    found = []
    for match in _KEYWORD_ID.finditer(text):
        keyword = match.group("keyword").lower()
        if keyword in _NEEDS_NOUN and not match.group("noun").strip():
            continue
        code = _code_after(text, match.end())
        if code is not None:
            start, end, value = code
            found.append(
                make_candidate(text, _ID_KEYWORDS[keyword], start, end, value, PRIORITY_KEYWORD_ID)
            )
    return found


def _code_after(text: str, position: int) -> tuple[int, int, str] | None:
    """The code that starts at ``position``: pieces with digits, digit words, single letters or
    short upper-case letter groups, joined by spaces or dashes."""
    pieces: list[tuple[int, int, str, bool]] = []  # start, end, normalised, keep at the end
    end = position
    for piece in _CODE_PIECE.finditer(text, position):
        gap = text[end : piece.start()]
        if pieces and (len(gap) > _MAX_GAP or gap.strip(" \t-") or "\n" in gap):
            break
        if not pieces and piece.start() != position:
            break
        normalised = _code_piece(piece.group(), first=not pieces)
        if normalised is None:
            break
        # "order 12345 I think": a spaced trailing letter is a word; "XJ-4471-B" keeps its B.
        glued = bool(pieces) and gap.strip() == gap and gap != ""
        keep_last = glued or any(c.isdigit() for c in normalised)
        pieces.append((piece.start(), piece.end(), normalised, keep_last))
        end = piece.end()
    while pieces and not pieces[-1][3]:
        pieces.pop()
    value = "".join(p[2] for p in pieces)
    if sum(c.isdigit() for c in value) < _MIN_ID_DIGITS or not _MIN_ID_LENGTH <= len(value) <= 24:
        return None
    return pieces[0][0], pieces[-1][1], value


def _code_piece(piece: str, *, first: bool) -> str | None:
    lower = piece.lower()
    if any(c.isdigit() for c in piece):
        return piece.upper()
    if lower in DIGIT_WORDS and not (first and lower == "oh"):
        return DIGIT_WORDS[lower]
    if len(piece) == 1 or (piece.isupper() and len(piece) <= 4):
        return piece.upper()
    return None


_BARE_CODE = re.compile(r"(?<![\w@.+-])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w@-]|\.\w)")
_NOT_A_CODE = re.compile(
    r"^\d+(?:st|nd|rd|th|am|pm|s|k|m|h|hrs?|mins?|secs?|kg|km|mb|gb|tb|kb|mm|cm|ml|hz|khz|mhz|ghz"
    r"|mph|kph|px|x|p|g|lbs?|oz|ft|in|yrs?)$",
    re.IGNORECASE,
)


def find_bare_codes(text: str) -> list[Candidate]:
    """Reference-like tokens without a keyword ("it's atr9530", "AB-12345"): letters and at least
    two digits, digits making up at least 40% (so "covid19" and "10am" are not codes)."""
    found = []
    for match in _BARE_CODE.finditer(text):
        token = match.group()
        compact = token.replace("-", "")
        n_digits = sum(c.isdigit() for c in compact)
        if (
            len(compact) < 5
            or n_digits < 2
            or n_digits == len(compact)
            or n_digits < 0.4 * len(compact)
        ):
            continue
        if _NOT_A_CODE.match(compact):
            continue
        found.append(
            make_candidate(
                text, "REFERENCE", match.start(), match.end(), compact.upper(), PRIORITY_CODE
            )
        )
    return found


# --------------------------------------------------------------------------- numeric dates

_ISO_DATE = re.compile(r"(?<![\d./-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d./-]|-\d)")
_SLASH_DATE = re.compile(r"(?<![\d./-])(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?![\d/]|\.\d)")
_DOTTED_DATE = re.compile(r"(?<![\d./-])(\d{1,2})[.-](\d{1,2})[.-](\d{4})(?![\d.-]\d|\d)")


def find_numeric_dates(text: str) -> list[Candidate]:
    """2024-03-15, 03/15/2024, 15/03/24, 15.03.2024; month first unless that is impossible."""
    found: list[Candidate] = []
    for match in _ISO_DATE.finditer(text):
        year, month, day = (int(g) for g in match.groups())
        _add_date(found, text, match, year, month, day)
    for pattern in (_SLASH_DATE, _DOTTED_DATE):
        for match in pattern.finditer(text):
            first, second, year_text = match.groups()
            month, day = int(first), int(second)
            if month > 12 >= day:
                month, day = day, month
            year = int(year_text)
            if len(year_text) == 2:
                year += 2000 if year < 70 else 1900
            _add_date(found, text, match, year, month, day)
    return found


def _add_date(
    found: list[Candidate], text: str, match: re.Match[str], year: int, month: int, day: int
) -> None:
    value = iso_date(year, month, day)
    if value is not None:
        found.append(
            make_candidate(text, "DATE", match.start(), match.end(), value, PRIORITY_NUMERIC_DATE)
        )


def iso_date(year: int | None, month: int, day: int) -> str | None:
    """``2024-03-15``, or ``--03-15`` without a year; None for an impossible date."""
    try:
        date(year if year is not None else 2000, month, day)  # 2000 is a leap year: Feb 29 ok
    except ValueError:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}" if year is not None else f"--{month:02d}-{day:02d}"


def find_structured(text: str) -> list[Candidate]:
    """All text-level candidates (overlaps are resolved by the extractor)."""
    return [
        *find_emails(text),
        *find_digit_entities(text),
        *find_keyword_ids(text),
        *find_bare_codes(text),
        *find_numeric_dates(text),
    ]
