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
from voice.redaction import Span, mask_number_runs, merge_masks, redact_segment

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


def is_mask(word: TimedWord) -> bool:
    """Whether the word is a redaction mask such as ``[CARD]``."""
    text = word.text.strip()
    return len(text) > 2 and text.startswith("[") and text.endswith("]")


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

    def remember(self, leg: str, words: Sequence[TimedWord]) -> None:
        """Keep the leg's last words after a final (event loop)."""
        self._recent[leg] = [*self._recent.get(leg, []), *words][-HISTORY_WORDS:]


def redact_final(frame: TranscriptFinalFrame, history: Sequence[TimedWord], extractor: Any,
                 labels: frozenset[str]) -> RedactedFinal:
    """Redact one final turn (blocking: the extractor runs here; call it on a worker thread).

    ``history`` is the leg's recent words (:meth:`LiveRedactor.history`), for numbers read out
    across turns.
    """
    if frame.words:
        masked, _ = mask_number_runs([*history, *frame.words])
        words = merge_masks(masked[len(history):])
        text = " ".join(w.text for w in words)
    else:  # text without word times: the extractor's spans only
        masked, words, text = list(history), [], frame.text
    spans = [Span(e.label, e.text, e.start, e.end, e.value) for e in extractor.extract(text)]
    text, words, spans = redact_segment(text, words, spans, labels)
    spans = _with_mask_spans(text, words, spans, labels)
    earlier = [m for m, h in zip(masked[: len(history)], history, strict=True) if is_mask(m) and not is_mask(h)]
    silenced = earlier + [w for w in words if is_mask(w)]
    redacted = dataclasses.replace(
        frame, text=text, words=words,
        masked_audio=[(max(0.0, w.start - AUDIO_PAD), w.end + AUDIO_PAD) for w in silenced])
    entities = [{"label": s.label, "text": s.text, "value": s.value, "start": s.start, "end": s.end}
                for s in spans]
    return RedactedFinal(redacted, entities)


def _with_mask_spans(text: str, words: Sequence[TimedWord], spans: Sequence[Span],
                     labels: frozenset[str]) -> list[Span]:
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
