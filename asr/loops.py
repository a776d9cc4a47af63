"""Repetition-loop tests for decoded text: pure functions, no model.

Whisper sometimes locks into repeating a phrase for the rest of a 30 s window ("I don't hear
that. I don't hear that. ..."). Two cheap signals catch it: text that compresses unusually well
(Whisper's own compression-ratio test) and one word n-gram recurring many times.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

from asr.types import AsrOptions

_WORD = re.compile(r"[\w']+")


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (Whisper's repetitiveness measure)."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def most_repeated_ngram(text: str, n: int) -> tuple[tuple[str, ...], int]:
    """The most frequent word n-gram of ``text`` (case and punctuation ignored) and its count."""
    words = _WORD.findall(text.lower())
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return (), 0
    gram, count = grams.most_common(1)[0]
    return gram, count


def is_repetition_loop(
    text: str, *, max_compression_ratio: float, ngram_size: int, max_ngram_repeats: int
) -> bool:
    """Whether ``text`` (one decoding window) looks like a repetition loop."""
    if compression_ratio(text) > max_compression_ratio:
        return True
    return most_repeated_ngram(text, ngram_size)[1] >= max_ngram_repeats


def loops_under(text: str, options: AsrOptions) -> bool:
    """:func:`is_repetition_loop` with the thresholds of ``options``."""
    return is_repetition_loop(
        text,
        max_compression_ratio=options.loop_compression_ratio,
        ngram_size=options.loop_ngram_size,
        max_ngram_repeats=options.loop_ngram_repeats,
    )


def drop_repeated_lines(texts: list[str]) -> list[bool]:
    """Which of ``texts`` to keep: the first occurrence of each (normalised) line only.

    The last resort when even the anti-loop decode repeats itself: keep one copy of each line.
    """
    seen: set[str] = set()
    keep = []
    for text in texts:
        key = " ".join(_WORD.findall(text.lower()))
        keep.append(key not in seen or not key)
        seen.add(key)
    return keep
