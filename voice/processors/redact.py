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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voice.frames import TimedWord, TranscriptFinalFrame, TranscriptPartialFrame
from voice.redaction import (
    Span,
    is_mask,
    mask_number_runs,
    merge_masks,
    redact_segment,
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
    """The leg's recent words as this turn left them: a piece that only this turn showed to be a
    number is masked there too, so it cannot make a later short number a run."""


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
        are added to the history kept.
        """
        kept = self._recent.get(leg, []) if history is None else history
        self._recent[leg] = [*kept, *words][-HISTORY_WORDS:]


def redact_final(frame: TranscriptFinalFrame, history: Sequence[TimedWord], extractor: Any,
                 labels: frozenset[str]) -> RedactedFinal:
    """Redact one final turn (blocking: the extractor runs here; call it on a worker thread).

    ``history`` is the leg's recent words (:meth:`LiveRedactor.history`), for numbers read out
    across turns.
    """
    if frame.words:
        masked = _mask_runs(frame.words, history, extractor)
        words = merge_masks(masked[len(history):])
        text = " ".join(w.text for w in words)
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
    return RedactedFinal(redacted, entities, masked[: len(history)])


def _mask_runs(words: Sequence[TimedWord], history: Sequence[TimedWord], extractor: Any) -> list[TimedWord]:
    """History and turn with digit runs masked; a run the extractor calls an SSN or a card on the
    turn's clear text is masked under that label (by length alone "123-45-6789" is a phone)."""
    masked, _ = mask_number_runs([*history, *words])
    if not any(is_mask(m) and not is_mask(w) for m, w in zip(masked[len(history):], words, strict=True)):
        return masked  # the common case: no run in this turn, no second pass of the extractor
    clear = " ".join(w.text for w in words)
    found = [Span(e.label, e.text, e.start, e.end, e.value) for e in extractor.extract(clear)]
    named = [None] * len(history) + word_labels(clear, words, found)
    return mask_number_runs([*history, *words], named)[0]
