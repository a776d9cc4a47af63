"""Word error rate with one documented text normaliser, and readers for reference files.

Normalisation (:func:`normalize`), applied to reference and hypothesis alike:

1. Unicode NFKC, lower case, curly quotes made straight.
2. Symbols become words: ``$40`` -> ``40 dollars`` (also £ pounds, € euros; ``$40.50`` and
   ``$40.5`` -> ``40 dollars and 50 cents``, ``$0.99`` -> ``99 cents``, ``$40.00`` -> ``40
   dollars``, ``$5 million`` -> ``5000000 dollars``, ``$1.5 million`` -> ``1500000 dollars``,
   as "five million dollars" and "one million five hundred thousand dollars" become),
   ``10%`` -> ``10 percent``,
   ``&`` -> ``and``, ``*`` -> ``star``, ``#`` -> ``pound`` (the telephone key), ``+`` ->
   ``plus``, ``@`` -> ``at``.
3. Digit grouping commas go (``1,000`` -> ``1000``); a decimal point between digits stays;
   ``3:30`` -> ``3 30`` (then ``330``, see 4); dotted abbreviations lose their dots (``p.m.``
   -> ``pm``, ``O.K.`` -> ``ok``, then ``okay``); every other punctuation mark becomes a space
   (``re-entered`` -> ``re entered``, ``www.asterisk.org`` -> ``www asterisk org``).
   Apostrophes inside words stay (``party's``).
4. Number words become numerals, so ``ten`` equals ``10`` and ``forty dollars`` equals ``$40``:
   ``twenty five`` -> ``25``, ``one hundred and five`` -> ``105``, ``a thousand`` -> ``1000``,
   ``5 million`` -> ``5000000``, ``twenty first`` -> ``21st``. Then adjacent whole numbers are
   joined, so a number read digit by digit or in groups equals the written one: ``one two
   three four``, ``1-2-3-4``, ``twelve thirty four`` and ``1234`` all become ``1234``, as do
   ``nineteen ninety nine`` and ``1999`` (the price: two numbers spoken back to back, "2 3
   times", also become one). Not handled: ``oh`` for zero, ``double``/``triple``, spoken
   decimals (``point five``).
5. Contractions are expanded: ``won't`` -> ``will not``, ``can't``/``cannot`` -> ``can not``,
   ``n't`` -> `` not``, ``'re`` -> `` are``, ``'m`` -> `` am``, ``'ll`` -> `` will``,
   ``'ve`` -> `` have``, ``'d`` -> `` would``. ``'s`` stays (possessive or "is" cannot be told
   apart), so ``that's`` and ``that is`` still differ.
6. ``dollar``/``cent`` become ``dollars``/``cents``; a few spellings are unified (``ok`` ->
   ``okay``, ``mr`` -> ``mister``, ``mrs`` -> ``missus``, ``dr`` -> ``doctor``); hesitation
   fillers (``um``, ``uh``, ``hmm``, ``mm``, ``mhm``, ``er``, ``erm``) are removed.

WER is computed with jiwer; pooled WER over files is total errors over total reference words.
Reference files are read by :mod:`asr.references`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_ORDINALS = {
    "first": "one", "second": "two", "third": "three", "fourth": "four", "fifth": "five",
    "sixth": "six", "seventh": "seven", "eighth": "eight", "ninth": "nine", "tenth": "ten",
    "eleventh": "eleven", "twelfth": "twelve", "thirteenth": "thirteen",
    "fourteenth": "fourteen", "fifteenth": "fifteen", "sixteenth": "sixteen",
    "seventeenth": "seventeen", "eighteenth": "eighteen", "nineteenth": "nineteen",
    "twentieth": "twenty", "thirtieth": "thirty", "fortieth": "forty", "fiftieth": "fifty",
    "sixtieth": "sixty", "seventieth": "seventy", "eightieth": "eighty", "ninetieth": "ninety",
    "hundredth": "hundred", "thousandth": "thousand", "millionth": "million",
}  # fmt: skip
_SPELLINGS = {
    "ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor", "dollar": "dollars",
    "cent": "cents",
}  # fmt: skip
_FILLERS = {"um", "umm", "uh", "uhm", "hmm", "mm", "mhm", "er", "erm"}
_CURRENCIES = {"$": "dollars", "£": "pounds", "€": "euros"}
_SYMBOLS = {
    "%": " percent ",
    "&": " and ",
    "*": " star ",
    "#": " pound ",
    "+": " plus ",
    "@": " at ",
}


def normalize(text: str) -> str:
    """The normalised form of ``text`` used for WER (rules in the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = _expand_contractions(text)
    text = _spell_out_currency(text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<=\d):(?=\d)", " ", text)  # 3:30 -> 3 30
    text = _ABBREVIATION.sub(lambda m: m.group(0).replace(".", ""), text)  # p.m. -> pm
    text = re.sub(r"(?<=\d)\.(?=\d)", "\0", text)  # protect decimal points
    text = re.sub(r"[^\w\s'\0]|_", " ", text).replace("\0", ".")
    words = [w.strip("'") for w in text.split()]
    words = [_SPELLINGS.get(w, w) for w in words if w and w not in _FILLERS]
    return " ".join(_join_adjacent_numbers(_numbers_to_numerals(words)))


_ABBREVIATION = re.compile(r"\b[a-z](?:\.[a-z])+\b\.?")
"""Single letters joined by dots (``a.m.``, ``u.s.``); Whisper writes ``p.m.`` for "pm"."""

_CONTRACTIONS = [
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\bcannot\b", "can not"),
    (r"\bshan't\b", "shall not"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'m\b", " am"),
    (r"'ll\b", " will"),
    (r"'ve\b", " have"),
    (r"'d\b", " would"),
]


def _expand_contractions(text: str) -> str:
    for pattern, replacement in _CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    return text


_AMOUNT = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d+))?((?:\s+(?:hundred|thousand|million|billion)\b)*)")
"""A currency amount and the scale words after it: ``$40``, ``$40.5``, ``$1.5 million``."""


def _spell_out_currency(text: str) -> str:
    return _AMOUNT.sub(_spoken_amount, text)


def _spoken_amount(match: re.Match[str]) -> str:
    """The amount as it is read: ``$5 million`` -> ``5000000 dollars`` (as "five million
    dollars" becomes), ``$40.5`` -> ``40 dollars and 50 cents``, ``$0.99`` -> ``99 cents``."""
    unit = _CURRENCIES[match.group(1)]
    whole, cents, scales = match.group(2).replace(",", ""), match.group(3) or "", match.group(4).split()
    if scales:  # "$1.5 million" is read "one and a half million", not with cents
        value = Decimal(f"{whole}.{cents or 0}")
        for scale in scales:
            value *= 100 if scale == "hundred" else _SCALES[scale]
        amount = str(int(value)) if value == value.to_integral_value() else format(value.normalize(), "f")
        return f" {amount} {unit} "
    if cents and not int(cents):  # $40.00 is read "forty dollars"
        cents = ""
    if unit != "dollars" or len(cents) > 2 or not cents:
        return f" {whole}{'.' + cents if cents else ''} {unit} "
    spoken_cents = f"{int(cents.ljust(2, '0'))} cents"  # $40.5 is fifty cents, not five
    return f" {spoken_cents} " if not int(whole) else f" {whole} dollars and {spoken_cents} "


def _numbers_to_numerals(words: list[str]) -> list[str]:
    """Rewrite runs of number words (and numerals followed by scale words) as numerals."""
    out: list[str] = []
    number = _NumberBuilder()
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ""
        if word == "a" and following in ("hundred", *_SCALES) and number.is_empty:
            number.add("one")
            continue
        if word == "and" and number.accepts_and and _is_number_word(following):
            continue
        ordinal = _ORDINALS.get(word)
        if ordinal is not None:  # "twenty first" -> 21st; an ordinal always ends a number
            if not number.can_take(ordinal):
                out.append(number.flush())
            number.add(ordinal)
            out.append(number.flush(ordinal=True))
            continue
        if _is_number_word(word) or (word.isdigit() and following in ("hundred", *_SCALES)):
            if not number.can_take(word):
                out.append(number.flush())
            number.add(word)
            continue
        if not number.is_empty:
            out.append(number.flush())
        out.append(word)
    if not number.is_empty:
        out.append(number.flush())
    return out


def _join_adjacent_numbers(words: list[str]) -> list[str]:
    """``1 2 3 4`` -> ``1234``: account, phone and extension numbers are read in pieces."""
    out: list[str] = []
    for word in words:
        if word.isdigit() and out and out[-1].isdigit():
            out[-1] += word
        else:
            out.append(word)
    return out


def _is_number_word(word: str) -> bool:
    return word in _UNITS or word in _TEENS or word in _TENS or word == "hundred" or word in _SCALES


class _NumberBuilder:
    """Accumulates one spoken number ("three hundred and twenty one thousand five")."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.total = 0  # completed thousands/millions part
        self.current = 0  # the part below the last scale word
        self.last = ""  # kind of the last word: unit, teen, tens, hundred, scale, numeral
        self.is_empty = True

    @property
    def accepts_and(self) -> bool:
        """'and' may continue a number after hundred/thousand ("one hundred and five")."""
        return self.last in ("hundred", "scale")

    def can_take(self, word: str) -> bool:
        """Whether ``word`` continues the number rather than starting a new one."""
        if self.is_empty:
            return True
        kind = _kind(word)
        if kind in ("unit", "teen", "tens"):
            small = self.current % 100
            if self.last == "tens":
                return kind == "unit" and small % 10 == 0
            return self.last in ("hundred", "scale") and (kind != "unit" or small == 0)
        if kind == "hundred":
            return self.last in ("unit", "teen", "numeral") and 0 < self.current < 100
        if kind == "scale":
            return self.last != "scale" and 0 < self.current < 1000
        return False

    def add(self, word: str) -> None:
        kind = _kind(word)
        if kind == "numeral":
            self.current = int(word)
        elif kind == "hundred":
            self.current = (self.current or 1) * 100
        elif kind == "scale":
            self.total += (self.current or 1) * _SCALES[word]
            self.current = 0
        else:
            self.current += _UNITS.get(word, 0) + _TEENS.get(word, 0) + _TENS.get(word, 0)
        self.last, self.is_empty = kind, False

    def flush(self, *, ordinal: bool = False) -> str:
        value = self.total + self.current
        self._reset()
        if not ordinal:
            return str(value)
        suffix = (
            "th"
            if value % 100 in (11, 12, 13)
            else {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")
        )
        return f"{value}{suffix}"


def _kind(word: str) -> str:
    if word in _UNITS:
        return "unit"
    if word in _TEENS:
        return "teen"
    if word in _TENS:
        return "tens"
    if word == "hundred":
        return "hundred"
    if word in _SCALES:
        return "scale"
    return "numeral"


@dataclass(frozen=True)
class WerCounts:
    """Edit counts of one hypothesis against one reference (after normalisation)."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """errors / reference words (inf when the reference is empty and errors > 0)."""
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_words

    def __add__(self, other: WerCounts) -> WerCounts:
        return WerCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def word_errors(reference: str, hypothesis: str) -> WerCounts:
    """Normalise both texts and count word edits (jiwer's Levenshtein alignment)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return WerCounts(0, 0, len(hyp.split()), 0)
    if not hyp:
        n = len(ref.split())
        return WerCounts(0, n, 0, n)
    import jiwer

    out = jiwer.process_words(ref, hyp)
    return WerCounts(out.substitutions, out.deletions, out.insertions, len(ref.split()))


def pooled(counts: list[WerCounts]) -> WerCounts:
    """Sum of per-file counts; its ``wer`` is total errors over total reference words."""
    total = WerCounts(0, 0, 0, 0)
    for c in counts:
        total = total + c
    return total
