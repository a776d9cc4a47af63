"""Mask sensitive entities in a segment's text, its words and its entity list, consistently.

The extractor finds the spans; this module rewrites the three views of a segment so that no
output (JSON, SRT/VTT built from words, the database) keeps the clear text, and entity offsets
stay valid in the redacted text.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from voice.frames import TimedWord


@dataclass(frozen=True)
class Span:
    """An entity in a text (offsets into that text)."""

    label: str
    text: str
    start: int
    end: int
    value: str | None


def redact_segment(text: str, words: Sequence[TimedWord], spans: Sequence[Span],
                   labels: Collection[str]) -> tuple[str, list[TimedWord], list[Span]]:
    """(redacted text, words with masked words merged, spans re-offset into the redacted text).

    ``text`` must be ``join_words(words)`` (:func:`voice.frames.join_words`) when words are
    given, so word positions can be matched to entity spans. A masked word keeps its
    ``leading_space``; masks merged into one take the first word's.
    """
    ordered = sorted(spans, key=lambda s: s.start)
    sensitive = [s for s in ordered if s.label in labels]
    if not sensitive:
        return text, list(words), list(ordered)
    pieces: list[str] = []
    out: list[Span] = []
    position = 0
    for span in ordered:
        if span.start < position:  # overlaps an earlier mask: already covered
            continue
        pieces.append(text[position:span.start])
        start = sum(map(len, pieces))
        shown = f"[{span.label}]" if span.label in labels else span.text
        pieces.append(shown)
        out.append(Span(span.label, shown, start, start + len(shown),
                        None if span.label in labels else span.value))
        position = span.end
    pieces.append(text[position:])
    return "".join(pieces), _mask_words(words, sensitive), out


def _mask_words(words: Sequence[TimedWord], sensitive: Sequence[Span]) -> list[TimedWord]:
    cursor = 0
    masked: list[TimedWord] = []
    for word in words:
        piece = word.text.strip()
        if piece and cursor and word.leading_space:  # as join_words writes it
            cursor += 1
        start = cursor
        end = cursor = start + len(piece)
        hit = next((s for s in sensitive if start < s.end and end > s.start), None) if piece else None
        masked.append(word if hit is None else _masked(word, f"[{hit.label}]"))  # spaced as in ``text``
    return merge_masks(masked)


def _masked(word: TimedWord, text: str, previous: TimedWord | None = None) -> TimedWord:
    """``word`` as a mask reading ``text`` (a plain word), spaced as the word was, but never
    attached to a mask ``previous`` before it: the pieces of "555-123-4567" (" 555" "-123"
    "-4567") read "[PHONE] [PHONE] [PHONE]" where they are not merged (a partial), not
    "[PHONE][PHONE][PHONE]"; :func:`merge_masks` makes them one mask spaced as the first piece was."""
    spaced = word.leading_space or (previous is not None and is_mask(previous))
    return TimedWord(text, word.start, word.end, word.probability, leading_space=spaced)


def merge_masks(words: Sequence[TimedWord]) -> list[TimedWord]:
    """One mask word for a number spoken as several words (``[PHONE] [PHONE]`` -> ``[PHONE]``),
    spaced as its first word was."""
    merged: list[TimedWord] = []
    for word in words:
        previous = merged[-1] if merged else None
        masked = word.text.startswith("[") and word.text.endswith("]")
        if previous is not None and word.text == previous.text and masked:
            merged[-1] = TimedWord(word.text, previous.start, word.end, min(previous.probability, word.probability),
                                   leading_space=previous.leading_space)
        else:
            merged.append(word)
    return merged


@dataclass(frozen=True)
class Hidden:
    """What the mask of a number hides, without its digits: how many there were and their Luhn
    sums, so that pieces of a number read out over several turns can be told a card once they
    make one, while the leg's history keeps no digit in clear.

    ``sums`` are the Luhn sums (mod 10) of the digits as if an even, or an odd, number of digits
    followed them: pieces join with :meth:`then`, and the whole number is Luhn valid when the
    first sum is 0.
    """

    digits: int = 0
    sums: tuple[int, int] = (0, 0)

    @classmethod
    def of(cls, digits: str) -> Hidden:
        """The digest of ``digits`` (a string of 0-9)."""
        sums = [0, 0]
        for offset, char in enumerate(reversed(digits)):
            value = int(char)
            doubled = value * 2 - 9 if value > 4 else value * 2
            sums[0] += doubled if offset % 2 else value
            sums[1] += value if offset % 2 else doubled
        return cls(len(digits), (sums[0] % 10, sums[1] % 10))

    def then(self, other: Hidden) -> Hidden:
        """The digest of this number's digits followed by ``other``'s."""
        parity = other.digits % 2
        return Hidden(self.digits + other.digits, ((self.sums[parity] + other.sums[0]) % 10,
                                                   (self.sums[1 - parity] + other.sums[1]) % 10))

    @property
    def is_card(self) -> bool:
        """13-19 digits with a valid Luhn checksum, as every payment card number has."""
        return 13 <= self.digits <= 19 and self.sums[0] == 0

    @property
    def is_complete(self) -> bool:
        """A whole phone number (10 or 11 digits) or card number (15 for Amex or 16, Luhn valid)."""
        return self.digits in (10, 11) or (self.digits in (15, 16) and self.is_card)


@dataclass(frozen=True)
class NumberMask(TimedWord):
    """A mask in a leg's history (``[PHONE]``) with what it hid: the live redactor keeps these
    between turns (voice/processors/redact.py); they never go into a frame."""

    hidden: Hidden = Hidden()


def hidden_digits(words: Sequence[TimedWord]) -> Hidden | None:
    """The digest of the digits ``words`` read out (masks that say what they hide included), or
    None when a mask among them does not say."""
    total = Hidden()
    for word, digits in zip(words, _word_digits(words), strict=True):
        if isinstance(word, NumberMask):
            total = total.then(word.hidden)
        elif is_mask(word):
            return None
        else:
            total = total.then(Hidden.of(digits))
    return total


def with_hidden(before: Sequence[TimedWord], after: Sequence[TimedWord]) -> list[TimedWord]:
    """``after`` (the words of ``before`` with numbers masked) with each mask of clear digits
    made a :class:`NumberMask` that says what it hid, for the leg's history."""
    return [NumberMask(word.text, word.start, word.end, word.probability, hidden=Hidden.of(digits),
                       leading_space=word.leading_space)
            if is_mask(word) and not is_mask(clear) else word
            for clear, word, digits in zip(before, after, _word_digits(before), strict=True)]


def _word_digits(words: Sequence[TimedWord]) -> list[str]:
    """The digits each clear word reads out ("" for a filler or a mask); "double four" is
    "" and "44"."""
    found: list[str] = []
    repeat = 1
    for word in words:
        token = _number_token(word.text)
        if is_mask(word) or not (_digit_count(word.text) or token in ("double", "triple")):
            found.append("")
            repeat = 1
            continue
        if token in ("double", "triple"):
            found.append("")
            repeat = 2 if token == "double" else 3
            continue
        digits = _SPOKEN_VALUES[token] if token in _SPOKEN_VALUES else "".join(c for c in token if c.isdigit())
        found.append(digits * repeat if len(digits) == 1 else digits)
        repeat = 1
    return found


_SPOKEN_VALUES = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                  "six": "6", "seven": "7", "eight": "8", "nine": "9"}
SPOKEN_DIGITS = {*_SPOKEN_VALUES, "double", "triple"}
FILLERS = {"and", "a", "uh", "um", "dash", "-", "then", "is"}
MIN_RUN_DIGITS = 7
"""A run of at least this many digits is a phone, card or account number; shorter runs (times,
prices, quantities) are kept."""
NUMBER_MASKS = {"[PHONE]", "[CARD]", "[NUMBER]", "[SSN]", "[ACCOUNT_ID]"}
"""Masks of numbers: digits read out right after one (only fillers between) are more of it, so
"[PHONE] and 0 4 8 2" masks the last piece too (SpokenWOZ SNG0696, the customer's third piece)."""
MIN_PIECE_DIGITS = 3
"""Digits next to a masked number that make a piece of it ("318", "0 4 8 2", an expiry "04 26"):
fewer ("2 rooms", "3 pm", "two nights") are a quantity or a time said after the number, unless
the number before them is known to be incomplete and they complete it (:func:`_completes`: "555
123 45", then "six seven"). The same holds after a filler within one turn ("555-123-4567 and 2
rooms")."""
MAX_GAP = 8.0
"""Seconds between two pieces of a number read out in chunks, while the other party repeats each
piece back (SpokenWOZ SNG0696: 4.5 s between "370" and "318"). Only fillers may stand between
pieces, so a long gap does not join unrelated numbers."""
RUN_LABELS = frozenset({"SSN", "CARD"})
"""Labels the extractor gives a number on the clear text that a run keeps (``labels`` of
:func:`mask_number_runs`): a run's length alone would call an SSN a phone number."""
MAX_YEARS = 3
"""A run of at most this many years ("in 2019 and 2020") is kept: four 4-digit groups are a card."""
_DIGIT_GROUP = re.compile(r"\+?\(?\d+\)?(?:[-.,]\(?\d+\)?)*")
"""A number as it is read out or written in groups: "4111", "555-123-4567", "(555)", "+44",
"555.123.4567". Words with letters ("BA2490", "10am"), times ("10:30"), prices ("$45.50"),
dates ("12/03/2024") and thousands ("1,500,000") are not: they are no piece of a number."""
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_PRICE = re.compile(r"\d+\.\d{1,2}|\d{1,3}(?:,\d{3})+\.\d+")
"""A decimal with one or two places ("4.99", "40.5"), or with thousands separators: a price or
a measure. A dotted group of three or more ("555.1234") is a piece of a number."""
_LABEL = re.compile(r"^[^\W\d_]+[:#]")
QUANTITY_DIGITS = 10
"""A run written only with thousands separators ("1,500,000") is a quantity below this many
digits; "5,551,234,567" is a phone number written as Whisper sometimes writes one."""
_DATE = re.compile(r"(?:\d{4}-(?P<m1>\d\d?)-(?P<d1>\d\d?))|(?:(?P<a>\d\d?)[-.](?P<b>\d\d?)[-.](?:\d{4}|\d\d))")
_YEAR = re.compile(r"(?:19|20)\d\d")


def mask_number_runs(words: Sequence[TimedWord], labels: Sequence[str | None] | None = None
                     ) -> tuple[list[TimedWord], int]:
    """Mask digit runs of one speaker that the entity patterns missed: numbers read out in chunks
    across segments, with fillers between ("370, 318 and 04 82"). Returns (words, runs masked).

    ``words`` are one speaker's words in time order, across the whole call. ``labels``, one per
    word when given, are the extractor's labels of the clear words (:func:`word_labels`): a run
    with a word labelled ``SSN`` or ``CARD`` is masked under that label; otherwise its length
    names it (13-19 digits a card, up to 12 a phone number). A mask of the leg's history that
    says what it hides (:class:`NumberMask`) lets a run be told a card once its pieces make one,
    and a short piece join a number it completes.
    """
    out = list(words)
    runs = 0
    for start, end in _digit_runs(out):
        end = _without_quantity_after(out, start, end)
        digits = sum(_digit_count(w.text) for w in out[start:end])
        if digits < MIN_RUN_DIGITS or _only_years(out[start:end]) or _quantity_only(out[start:end], digits):
            continue
        masked = [w.text.strip(".,") for w in out[start:end] if w.text.strip(".,") in NUMBER_MASKS]
        clear = {i for i in range(start, end) if out[i].text.strip(".,") not in NUMBER_MASKS}
        whole = hidden_digits(out[start:end])
        if masked and sum(_digit_count(out[i].text) for i in clear) < MIN_PIECE_DIGITS and not _completes(
                hidden_digits([w for w in out[start:end] if is_mask(w)]), whole, masked[0]):
            continue  # "[PHONE]. 2 rooms": a quantity after the number, not a piece of it
        named = [labels[i] for i in clear if labels is not None and labels[i] in RUN_LABELS]
        label = _run_label(masked, named, digits, whole)
        for i in range(start, end):
            if i in clear:
                out[i] = _masked(out[i], f"[{label}]", out[i - 1] if i else None)
            elif label == "CARD" and isinstance(out[i], NumberMask):  # its pieces made a card
                out[i] = dataclasses.replace(out[i], text="[CARD]")
        runs += bool(clear)
    return out, runs


def _run_label(masked: Sequence[str], named: Sequence[str | None], digits: int, whole: Hidden | None) -> str:
    """The label of a run: a masked number's own (it continues), unless its pieces now make a
    card (13-19 digits, Luhn valid: "4111 1111", then "1111 1111"); the extractor's name of its
    clear words; else its length."""
    kept = masked[0][1:-1] if masked else None
    if kept == "PHONE" and whole is not None and whole.is_card:
        return "CARD"
    if kept is not None:
        return kept
    if named and named[0] is not None:
        return named[0]
    return "CARD" if 13 <= digits <= 19 else "PHONE" if digits <= 12 else "NUMBER"


def _completes(before: Hidden | None, whole: Hidden | None, mask: str) -> bool:
    """Whether a piece of one or two digits ("four one", "11") completes the number read out
    before it under ``mask``: the digits before it were no complete number, with it they are (see
    :attr:`Hidden.is_complete`). Unknown digits (a mask that does not say what it hides) never
    complete, so "[PHONE] and 2 rooms" keeps its quantity; nor does an SSN, whole at 9 digits
    ("[SSN]", then "2 tickets please")."""
    return (mask != "[SSN]" and before is not None and whole is not None and whole.is_complete
            and not before.is_complete)


def _without_quantity_after(words: Sequence[TimedWord], start: int, end: int) -> int:
    """The end of a run without a quantity said after a number in the same breath: a last piece
    of one or two digits after a filler ("555-123-4567 and 2 rooms"), only where the digits
    before it are known to make a whole number (10 or 11 digits, or a Luhn-valid card). Short of
    that the piece may be the number's end ("123 45 67 and 89", an SSN; "555 123 456 and 7"), so
    it stays in the run and is masked: a quantity masked costs less than a digit shown."""
    last_filler = max((i for i in range(start, end) if _digit_count(words[i].text) == 0
                       and words[i].text.strip(".,").lower() not in ("double", "triple")), default=None)
    if last_filler is None:
        return end
    piece = sum(_digit_count(w.text) for w in words[last_filler + 1:end])
    before = sum(_digit_count(w.text) for w in words[start:last_filler])
    if piece >= MIN_PIECE_DIGITS or before < MIN_RUN_DIGITS:
        return end
    number = hidden_digits(words[start:last_filler])
    if number is None or not (number.digits in (10, 11) or number.is_card):
        return end
    return last_filler  # a run has one filler at most between two digit words: a digit ends before it


def word_labels(text: str, words: Sequence[TimedWord], spans: Sequence[Span]) -> list[str | None]:
    """The label of the span each word of ``text`` lies in (None outside any), for
    :func:`mask_number_runs`; ``text`` holds the words in order, as in :func:`with_mask_spans`."""
    labels: list[str | None] = []
    cursor = 0
    for word in words:
        start = text.find(word.text, cursor)
        if start < 0:
            labels.append(None)
            continue
        end = cursor = start + len(word.text)
        labels.append(next((s.label for s in spans if s.start < end and start < s.end), None))
    return labels


def is_mask(word: TimedWord) -> bool:
    """Whether the word is a redaction mask such as ``[CARD]``."""
    text = word.text.strip()
    return len(text) > 2 and text.startswith("[") and text.endswith("]")


def with_mask_spans(text: str, words: Sequence[TimedWord], spans: Sequence[Span],
                    labels: Collection[str]) -> list[Span]:
    """``spans`` plus an entity for each mask the digit runs made (the extractor never saw those
    numbers), so the turn still says a card or phone number was given (the console's chips, the
    policy's state); what the extractor read into a mask (spaCy calls ``[CARD]`` an ORG) goes."""
    masks, cursor = [], 0
    for word in words:
        start = text.find(word.text, cursor)
        cursor = max(cursor, start + len(word.text))
        if start >= 0 and is_mask(word):
            masks.append(Span(word.text.strip()[1:-1], word.text, start, start + len(word.text), None))
    kept = [s for s in spans if s.label in labels or not any(m.start < s.end and s.start < m.end for m in masks)]
    added = [m for m in masks if not any(s.start < m.end and m.start < s.end for s in kept)]
    return sorted([*kept, *added], key=lambda span: span.start)


def _only_years(words: Sequence[TimedWord]) -> bool:
    """Whether the digits of a run are a few years ("2019 and 2020"), which no number masked is."""
    numbers = [w.text.strip(".,;:!?") for w in words if _digit_count(w.text)]
    return len(numbers) <= MAX_YEARS and all(_YEAR.fullmatch(n) for n in numbers)


def _digit_count(text: str) -> int:
    """Digits the word adds to a run of a number read out (0: no piece of one)."""
    if text.strip(".,") in NUMBER_MASKS:  # a number masked already: what follows continues it
        return MIN_RUN_DIGITS
    token = _number_token(text)
    if token in SPOKEN_DIGITS:
        return {"double": 0, "triple": 0}.get(token, 1)
    if not _DIGIT_GROUP.fullmatch(token) or _PRICE.fullmatch(token) or _is_date(token):
        return 0
    return sum(c.isdigit() for c in token)


def _number_token(text: str) -> str:
    """The word as a number may be written in it: without quotes or end punctuation, a label
    ("number:5551234567"), a possessive, any kind of dash; "(555)123" as "(555)-123"."""
    token = text.strip(".,;:!?\"'“”‘’").lower()
    token = _LABEL.sub("", token).removesuffix("'s").removesuffix("’s")
    token = token.replace("–", "-").replace("—", "-").strip("-#")  # Whisper's "370 -318" (SNG0696)
    return re.sub(r"\)(?=\d)", ")-", token)


def _quantity_only(words: Sequence[TimedWord], digits: int) -> bool:
    """Whether a run is only numbers written with thousands separators ("1,500,000 units"),
    fewer digits than a phone number has: a quantity, not a number read out."""
    pieces = [_number_token(w.text) for w in words if _digit_count(w.text) and w.text.strip(".,") not in NUMBER_MASKS]
    return digits < QUANTITY_DIGITS and bool(pieces) and all(_THOUSANDS.fullmatch(p) for p in pieces)


def _is_date(token: str) -> bool:
    """ "2024-03-15", "03-15-2024", "15.03.24": day and month in range (an SSN's groups are 3-2-4)."""
    match = _DATE.fullmatch(token)
    if match is None:
        return False
    if match.group("m1") is not None:
        return 1 <= int(match.group("m1")) <= 12 and 1 <= int(match.group("d1")) <= 31
    a, b = int(match.group("a")), int(match.group("b"))
    return 1 <= min(a, b) <= 12 and max(a, b) <= 31


def _digit_runs(words: Sequence[TimedWord]) -> list[tuple[int, int]]:
    """Index ranges [start, end) of digit words joined by at most one filler and short gaps."""
    runs: list[tuple[int, int]] = []
    start = last_digit = None
    for i, word in enumerate(words):
        is_digit = _digit_count(word.text) > 0 or word.text.strip(".,").lower() in ("double", "triple")
        if is_digit:
            close = last_digit is not None and i - last_digit <= 2 and word.start - words[last_digit].end <= MAX_GAP
            fillers_ok = last_digit is None or all(
                words[j].text.strip(".,").lower() in FILLERS for j in range(last_digit + 1, i))
            if start is None or not (close and fillers_ok):
                if start is not None and last_digit is not None:
                    runs.append((start, last_digit + 1))
                start = i
            last_digit = i
    if start is not None and last_digit is not None:
        runs.append((start, last_digit + 1))
    return runs


IDENTIFIER_KEYS = frozenset({
    "sip_call_id", "stream_sid", "call_sid", "account_sid", "session_id", "conversation_id",
    "organization_id", "codecs", "rtp_ports", "media", "metadata_namespace", "language",
    "codec_preference", "relayed", "id",
})
"""Keys of a call's metadata that hold the ingress's own ids and media facts, kept as they are by
:func:`mask_metadata` (a numeric SIP Call-ID must still match the PBX's logs; ``id``: a SIPREC or
AudioHook participant's id)."""

# Dots are separators too (RFC 3966 visual separators: tel:+1.415.555.0123); a run glued to a
# letter or hyphen (a UUID's groups, CASE-2024...) is no phone number, nor is a dotted quad.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.\-])\+?\d[\d\-.\s()]*\d(?![\w\-])")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def mask_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A call's metadata with every number of seven or more digits ``[PHONE]``: the caller's and
    the dialled number in SIP ``From``/``To`` and the request URI, AudioHook's ``ani``/``dnis``,
    a phone number a Twilio flow put in ``customParameters``. The live path's rule for spoken
    numbers, applied to what the ingress reports; values under :data:`IDENTIFIER_KEYS` stay."""
    return {key: _masked_value(value, key) for key, value in metadata.items()}


def _masked_value(value: object, key: str) -> object:
    if key in IDENTIFIER_KEYS:
        return value
    if isinstance(value, str):
        return _NUMBER_IN_TEXT.sub(_mask_long_number, value)
    if isinstance(value, dict):
        return {k: _masked_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked_value(v, key) for v in value]
    return value


def _mask_long_number(match: re.Match[str]) -> str:
    if _IPV4.fullmatch(match.group()):
        return match.group()
    digits = sum(c.isdigit() for c in match.group())
    return "[PHONE]" if digits >= MIN_RUN_DIGITS else match.group()
