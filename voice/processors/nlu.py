"""Understanding of each final turn: entities (and the customer's intent, when a model is loaded).

The work runs on a thread pool; the final transcript is forwarded at once and the NluFrame
follows when ready, so understanding never delays the transcript on the agent's screen. With
redaction on (voice/processors/redact.py) a final waits for its entities instead, so that no
clear card number goes further down the pipeline; partials are masked on the way through, and
key presses (DTMF) lose their digit and list their tone's audio (:func:`dtmf_tone_span`) for the
recorder to silence, as a final lists the audio of its masked words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from voice.frames import (
    CallEndedFrame,
    DtmfFrame,
    ErrorFrame,
    Frame,
    NluFrame,
    TimedWord,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
)
from voice.processor import FrameProcessor
from voice.processors.redact import AUDIO_PAD, LiveRedactor, RedactedFinal, redact_final

log = logging.getLogger(__name__)

MASKED_DTMF = "[DTMF]"
"""The ``digit`` of a key press when redacting: that a key was pressed, never which (a mask, so
it cannot be read as the ``*`` or ``#`` key)."""
UNTIMED_DTMF_PAD = 1.0
"""Seconds silenced on either side of a key press timed by a message rather than by its tone
(Twilio ``dtmf``, SIP INFO; the RFC 4733 events of RTP give the tone's start and get AUDIO_PAD).
Twilio sends ``dtmf`` about when the tone ends and says nothing of its length; a SIP INFO is
timed by its arrival, on a path apart from the audio's, early or late by the jitter buffer and
the far end's detection. A key pressed by hand sounds 0.1-0.5 s, so a second before covers it
with room; a second after covers audio the message overtook. A key held longer keeps its start
audible, which the window trades for not losing speech around every press."""
IntentFn = Callable[[str], tuple[str, float] | None]
"""Text of a customer turn -> (intent name, confidence), or None when there is no intent model."""


class NluProcessor(FrameProcessor):
    """Emits an NluFrame (entities, intent) after each TranscriptFinalFrame."""

    def __init__(self, *, extractor: Any, executor: Executor, intent: IntentFn | None = None,
                 redact: frozenset[str] | None = None) -> None:
        """``redact``: entity labels to mask (``suggest.nlu.entities.REDACTED_LABELS``), or None."""
        super().__init__()
        self.extractor = extractor
        self.executor = executor
        self.intent = intent
        self.redactor = LiveRedactor(redact) if redact is not None else None
        self._pending: set[asyncio.Task[None]] = set()

    async def process_frame(self, frame: Frame) -> None:
        """Forward everything; start understanding a final turn in the background."""
        if isinstance(frame, CallEndedFrame):
            await self.close()  # the last turn's understanding belongs to the call: emit it first
        if self.redactor is not None:
            if isinstance(frame, DtmfFrame):  # a card number keyed in goes out key by key
                frame = dataclasses.replace(frame, digit=MASKED_DTMF, masked_audio=[dtmf_tone_span(frame)])
            elif isinstance(frame, TranscriptPartialFrame):
                frame = self.redactor.partial(frame)
            elif isinstance(frame, TranscriptFinalFrame) and (frame.words or frame.text.strip()):
                await self._redact_and_understand(frame)
                return
        await self.push_frame(frame)
        if isinstance(frame, TranscriptFinalFrame) and frame.text.strip():
            task = asyncio.get_running_loop().create_task(self._understand(frame))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _understand(self, frame: TranscriptFinalFrame) -> None:
        loop = asyncio.get_running_loop()
        try:
            entities, intent = await loop.run_in_executor(self.executor, self._analyse, frame.text, frame.role)
        except Exception as exc:  # reported; the turn still gets an (empty) NluFrame
            # Why the empty frame: SuggestProcessor suggests on a turn's NluFrame, so without it a
            # failed extraction also cost the turn its suggestion (and left it pending to the end).
            log.exception("understanding of turn %s failed", frame.turn_id)
            await self.push_frame(ErrorFrame(message=f"nlu failed on turn {frame.turn_id}: {exc}",
                                             fatal=False, source=self.name))
            entities, intent = [], None
        await self.push_frame(NluFrame(turn_id=frame.turn_id, role=frame.role, intent=intent[0] if intent else None,
                                       intent_score=round(intent[1], 3) if intent else None, entities=entities,
                                       audio_time=frame.audio_time))

    async def _redact_and_understand(self, frame: TranscriptFinalFrame) -> None:
        """Redact the final (it waits: nothing clear may pass), then push it and its NluFrame."""
        assert self.redactor is not None
        history = self.redactor.history(frame.leg)
        try:  # one hop to the pool for both: this is on every final's way to the screen
            done, intent = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._redact_then_classify, frame, history)
        except Exception as exc:  # noqa: BLE001 - a turn that cannot be redacted is not shown at all
            log.exception("redaction of turn %s failed: its text is withheld", frame.turn_id)
            await self.push_frame(ErrorFrame(message=f"redaction failed on turn {frame.turn_id}: {exc}",
                                             fatal=False, source=self.name))
            withheld = [TimedWord("[WITHHELD]", frame.start, frame.end, 0.0)]
            silence = (max(0.0, frame.start - AUDIO_PAD), frame.end + AUDIO_PAD)
            done = RedactedFinal(dataclasses.replace(frame, text="[WITHHELD]", words=withheld,
                                                     masked_audio=[silence]), [], history)
            intent = None
        self.redactor.remember(frame.leg, done.frame.words, done.history)
        await self.push_frame(done.frame)
        await self.push_frame(NluFrame(turn_id=frame.turn_id, role=frame.role, intent=intent[0] if intent else None,
                                       intent_score=round(intent[1], 3) if intent else None, entities=done.entities,
                                       audio_time=frame.audio_time))

    def _redact_then_classify(self, frame: TranscriptFinalFrame, history: list[TimedWord]
                              ) -> tuple[RedactedFinal, tuple[str, float] | None]:
        assert self.redactor is not None
        done = redact_final(frame, history, self.extractor, self.redactor.labels)
        if self.intent is None or frame.role != "customer":
            return done, None
        try:
            return done, self.intent(done.frame.text)
        except Exception:  # noqa: BLE001 - a failing intent model costs the intent, not the redacted turn
            log.exception("intent of turn %s failed", frame.turn_id)
            return done, None

    def _analyse(self, text: str, role: str) -> tuple[list[dict[str, Any]], tuple[str, float] | None]:
        entities = [{"label": e.label, "text": e.text, "value": e.value, "start": e.start, "end": e.end}
                    for e in self.extractor.extract(text)]
        intent = self.intent(text) if self.intent is not None and role == "customer" else None
        return entities, intent

    async def close(self) -> None:
        """Wait for understanding still in flight (the call's end waits for its last turn)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def dtmf_tone_span(frame: DtmfFrame) -> tuple[float, float]:
    """The span of ``frame.leg``'s audio that may carry the press's tone, padded (seconds).

    From the tone's start (RFC 4733): the tone, padded by AUDIO_PAD as a masked word is. From a
    message's time (Twilio, SIP INFO): :data:`UNTIMED_DTMF_PAD` around it, plus the duration a
    SIP INFO gives.
    """
    pad = AUDIO_PAD if frame.at_tone_start else UNTIMED_DTMF_PAD
    return max(0.0, frame.audio_time - pad), frame.audio_time + (frame.duration or 0.0) + pad
