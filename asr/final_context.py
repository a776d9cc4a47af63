"""Which words of a final decode are the turn's own, when earlier speech was decoded before it.

The final pass decodes a turn after up to ``StreamingConfig.final_context`` seconds of the
stream's earlier turns (their audio joined, then the turn's); the words of that context are
dropped. Times alone cannot tell them apart: the seam lies in about 0.8 s of silence (the earlier
turn's end pad and this turn's pre-roll) and Whisper stretches a word over it, either the
context's last word or the turn's first, or puts the turn's first word wholly before the seam.
measured (tiny.en, SpokenWOZ SNG0072 leg B): the context "... what kind of..." then the turn
"Of course." came out as "kind" 20.66-21.14, "of..." 21.14-21.68, "Of" 21.68-22.02, "course."
22.02-22.92 with the turn's audio starting at 22.22; cut by each word's middle, the final was
"course.", timed 0.2 s before the turn.

So the time cut (by each word's middle, as the batch timeline cuts regions) is moved by text, as
LocalAgreement drops committed words decoded again (whisper_online's ``HypothesisBuffer``): the
context ends where the decoded words end as the words already known for the earlier turns do.
Kept words start no earlier than the seam, as ``asr.timeline.SpeechTimeline`` keeps batch words
in their region. measured (the live final pass over the 126 VAD turns of the 4 SpokenWOZ calls,
linear PCM, scripts/bench_final_pass.py's loop): 3 words the middle rule dropped are kept ("Of
course.", "and what else?", "free parking lot."), none lost, WER 25.11 -> 24.89 %; finals whose
first word started before the turn's first sample 11 -> 0 (by 0.5 s or more: 4 -> 0). Through
mu-law the same seams came out alike (26.79 % both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from asr.policy import word_key
from asr.types import Word

__all__ = ["MAX_OVERLAP_WORDS", "own_words"]

MAX_OVERLAP_WORDS = 5
"""Longest run of known words matched against the decoded context's end (whisper_streaming: 5)."""

_SURE_CONTEXT = 0.5  # seconds: a word ending this long before the seam is the context's
_MIDDLE_SLACK = 0.05  # seconds: the time rule keeps a word whose middle is this close before the seam


def own_words(words: Sequence[Word], seam: float, known: Sequence[str]) -> list[Word]:
    """The words of the audio after ``seam`` (seconds into the request), starts clamped to it.

    ``words`` are the request's words in time order (times relative to its first sample);
    ``known`` the text of the last words known for the speech before the seam (the earlier
    turns' finals, or their streamed words while a final is pending), oldest first.
    """
    if seam <= 0:
        return list(words)
    cut = _context_count(words, seam, [word_key(k) for k in known[-MAX_OVERLAP_WORDS:]])
    return [_clamped(w, seam) for w in words[cut:]]


def _context_count(words: Sequence[Word], seam: float, known: list[str]) -> int:
    """How many leading words belong to the context.

    By time, the words whose middle lies before the seam (as the batch timeline cuts regions).
    The text moves that cut when the words it then drops end exactly as the known words do,
    and more of them than at the time cut: over words that span the seam one common word is
    enough (Whisper stretched either the context's last word or the turn's first over the
    seam's silence), unless no context word was decoded at all (then a turn that opens with the
    word the context ended on would lose it: two must agree); to keep words that end before the
    seam, two must agree ("so" said earlier in the context must not pull the cut back to it).
    """
    by_time = _prefix(words, lambda w: (w.start + w.end) / 2 < seam - _MIDDLE_SLACK)
    lowest = _prefix(words, lambda w: w.end <= seam - _SURE_CONTEXT)
    highest = _prefix(words, lambda w: w.start < seam)
    keys = [word_key(w.text) for w in words]
    best, best_match = by_time, _tail_match(keys[:by_time], known)
    for count in range(lowest, max(highest, by_time) + 1):
        moved = words[min(count, by_time) : max(count, by_time)]
        before = sum(w.end <= seam for w in moved)
        if before > 1:
            continue
        needed = min(2, len(known)) if before else 1
        if count > by_time and by_time == 0:
            needed = 2  # no context word was decoded: one repeated word ("okay") may be the turn's own
        match = _tail_match(keys[:count], known)
        if match >= max(needed, 1) and (match, -abs(count - by_time)) > (best_match, -abs(best - by_time)):
            best, best_match = count, match
    return best


def _tail_match(decoded: list[str], known: list[str]) -> int:
    """Length of the longest run that ends both ``decoded`` and ``known``."""
    size = 0
    while size < min(len(decoded), len(known)) and decoded[-1 - size] == known[-1 - size]:
        size += 1
    return size


def _prefix(words: Sequence[Word], test: Callable[[Word], bool]) -> int:
    """How many leading ``words`` pass ``test``."""
    count = 0
    while count < len(words) and test(words[count]):
        count += 1
    return count


def _clamped(word: Word, seam: float) -> Word:
    if word.start >= seam:
        return word
    return replace(word, start=seam, end=max(word.end, seam))
