"""Redaction of a live call (``voice serve --redact``): card numbers, SSNs, e-mails and phone
numbers of the final turns never reach the agent's screen, the database, the feedback records or
the recording; partials, shown while a turn is spoken and never stored, are masked for long digit
runs only (an e-mail address may show there until its turn's final replaces it).

The NLU processor runs it before anything downstream sees a turn (suggestions, and the recorder,
which publishes events and stores turns and audio), with the batch path's rules
(voice/redaction.py): the entity extractor's sensitive spans, and runs of seven or more digits
a speaker reads out in pieces, across turns (a leg's last words are kept for that). A final turn
waits for the extractor; a partial is masked at once, digit runs only (its words change until the
final anyway). Each masked word's audio, padded by :data:`AUDIO_PAD`, is listed on the final
(``masked_audio``) for the recorder to silence; a piece of a number that only a later turn shows
to be one gets its audio silenced then, though its text was already shown.

The leg's history keeps, for each mask of a number, how many digits it hid and their Luhn sums
(never the digits: :class:`voice.redaction.Hidden`). So a card read out in pieces ("4111 1111",
then "1111 1111") is named ``[CARD]`` by the turn that completes it, and a last piece of one or
two digits that completes a number ("555 123 45", then "six seven") is masked, while a quantity
after a whole number ("[PHONE]", then "and 2 rooms") is not. The first pieces keep the label
their own turn gave them: that text was shown before the rest was said.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voice.frames import TimedWord, TranscriptFinalFrame, TranscriptPartialFrame, join_words
from voice.redaction import (
    Hidden,
    NumberMask,
    Span,
    is_mask,
    mask_number_runs,
    merge_masks,
    redact_segment,
    with_hidden,
    with_mask_spans,
    word_labels,
)

HISTORY_WORDS = 12
"""Words of a leg kept to join a number read out across turns (pieces of 3-4 digits with fillers)."""
AUDIO_PAD = 0.25
"""Seconds of audio silenced on either side of a masked word: word timings are approximate, and
a recording must rather lose a syllable than keep a digit."""


@dataclass(frozen=True)
class RedactedFinal:
    """A final turn after redaction, and what the NLU processor emits with it."""

    frame: TranscriptFinalFrame
    entities: list[dict[str, Any]]
    history: list[TimedWord]
    """The leg's recent words as this turn left them, this turn's words at the end: a piece that
    only this turn showed to be a number is masked there too, so it cannot make a later short
    number a run; each mask of a number says what it hides (:class:`~voice.redaction.NumberMask`:
    how many digits and their Luhn sums, never the digits), so that pieces read out over several
    turns are told a card once they make one."""


class LiveRedactor:
    """One call's redaction state: each leg's last words (the per-call stream object)."""

    def __init__(self, labels: frozenset[str]) -> None:
        self.labels = labels
        self._recent: dict[str, list[TimedWord]] = {}

    def partial(self, frame: TranscriptPartialFrame) -> TranscriptPartialFrame:
        """The partial with long digit runs masked (cheap: runs on the event loop)."""
        words = [*frame.committed, *frame.tentative]
        if not words:
            return frame
        history = self.history(frame.leg)
        masked, runs = mask_number_runs([*history, *words])
        if not runs:
            return frame
        tail = masked[len(history):]
        return dataclasses.replace(frame, committed=tail[: len(frame.committed)],
                                   tentative=tail[len(frame.committed):])

    def history(self, leg: str) -> list[TimedWord]:
        """The leg's last words, which may begin a number its next words finish (event loop).

        All of them: the run rule itself (voice/redaction.py) joins pieces only across gaps of up
        to MAX_GAP each, so a number read out in three pieces may span more than MAX_GAP in all.
        """
        return list(self._recent.get(leg, []))

    def remember(self, leg: str, words: Sequence[TimedWord], history: Sequence[TimedWord] | None = None) -> None:
        """Keep the leg's last words after a final (event loop).

        ``history`` is the leg's history as the final left it (:attr:`RedactedFinal.history`):
        it replaces the one kept, so pieces the final showed to be a number are masked there too
        and cannot make a later short number a run ("[PHONE] and 2 rooms"). Without it the words
        are added to the history kept; ``words`` already at the end of ``history`` (the turn's
        own, which :attr:`RedactedFinal.history` holds with what its masks hide) are not added
        again.
        """
        kept = list(self._recent.get(leg, []) if history is None else history)
        if not _ends_with(kept, words):  # RedactedFinal.history ends with the turn's own words
            kept += words
        self._recent[leg] = kept[-HISTORY_WORDS:]


def redact_final(frame: TranscriptFinalFrame, history: Sequence[TimedWord], extractor: Any,
                 labels: frozenset[str]) -> RedactedFinal:
    """Redact one final turn (blocking: the extractor runs here; call it on a worker thread).

    ``history`` is the leg's recent words (:meth:`LiveRedactor.history`), for numbers read out
    across turns.
    """
    if frame.words:
        plain = _mask_runs(frame.words, history, extractor)
        masked = with_hidden([*history, *frame.words], plain)  # for the leg's history only
        words = merge_masks(plain[len(history):])
        text = join_words(words)
    else:  # text without word times: the extractor's spans only
        masked, words, text = list(history), [], frame.text
    spans = [Span(e.label, e.text, e.start, e.end, e.value) for e in extractor.extract(text)]
    text, words, spans = redact_segment(text, words, spans, labels)
    spans = with_mask_spans(text, words, spans, labels)
    earlier = [m for m, h in zip(masked[: len(history)], history, strict=True) if is_mask(m) and not is_mask(h)]
    silenced = earlier + [w for w in words if is_mask(w)]
    redacted = dataclasses.replace(
        frame, text=text, words=words,
        masked_audio=[(max(0.0, w.start - AUDIO_PAD), w.end + AUDIO_PAD) for w in silenced])
    entities = [{"label": s.label, "text": s.text, "value": s.value, "start": s.start, "end": s.end}
                for s in spans]
    kept = [*masked[: len(history)], *_held_masks(words, masked[len(history):])]
    return RedactedFinal(redacted, entities, kept)


def _held_masks(words: Sequence[TimedWord], held: Sequence[TimedWord]) -> list[TimedWord]:
    """The turn's redacted ``words`` for the leg's history: a mask that covers only masks of
    clear digits (``held``, before they were merged) says what they hid, in order."""
    kept: list[TimedWord] = []
    for word in words:
        inside = [h for h in held if word.start <= h.start and h.end <= word.end] if is_mask(word) else []
        if inside and all(isinstance(h, NumberMask) for h in inside):
            hidden = Hidden()
            for h in inside:
                assert isinstance(h, NumberMask)
                hidden = hidden.then(h.hidden)
            word = NumberMask(word.text, word.start, word.end, word.probability, hidden=hidden,
                              leading_space=word.leading_space)
        kept.append(word)
    return kept


def _ends_with(history: Sequence[TimedWord], words: Sequence[TimedWord]) -> bool:
    """Whether ``history`` ends with ``words`` (same text and times; a mask there may say what it hides)."""
    tail = history[len(history) - len(words):] if len(words) <= len(history) else None
    return tail is not None and [(w.text, w.start, w.end) for w in tail] == [(w.text, w.start, w.end) for w in words]


def _mask_runs(words: Sequence[TimedWord], history: Sequence[TimedWord], extractor: Any) -> list[TimedWord]:
    """History and turn with digit runs masked; a run the extractor calls an SSN or a card on the
    turn's clear text is masked under that label (by length alone "123-45-6789" is a phone)."""
    masked, _ = mask_number_runs([*history, *words])
    if not any(is_mask(m) and not is_mask(w) for m, w in zip(masked[len(history):], words, strict=True)):
        return masked  # the common case: no run in this turn, no second pass of the extractor
    clear = join_words(words)
    found = [Span(e.label, e.text, e.start, e.end, e.value) for e in extractor.extract(clear)]
    named = [None] * len(history) + word_labels(clear, words, found)
    return mask_number_runs([*history, *words], named)[0]
