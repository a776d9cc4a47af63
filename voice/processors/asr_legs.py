"""Per-leg state of the streaming ASR processor (:mod:`voice.processors.asr`): the leg's VAD,
transcriber, resampler and the bookkeeping that keeps its partials and finals in order, and the
decode results on their way from worker threads to the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asr.streaming import SAMPLE_RATE, DecodeRequest, StreamingTranscriber, TranscriptUpdate
from asr.types import Word
from voice.frames import AudioFrame, Role, TimedWord, TranscriptFinalFrame
from voice.live.scheduler import DecodeKind
from voice.processors.pcm import FrameResampler
from voice.vad import VadStream

log = logging.getLogger("voice.processors.asr")


@dataclass(frozen=True)
class DecodeResult:
    """A finished (or cancelled) decode on its way from a worker to the event loop."""

    leg: AsrLeg
    kind: DecodeKind
    future: Future[Any]
    request: DecodeRequest | None = None
    """The final's request (kept here so a failed final can still close its turn)."""
    early: EarlyFinal | None = None
    """Set for an early final (see :class:`EarlyFinal`)."""


@dataclass
class EarlyFinal:
    """A turn's final decode started ``end_pad`` into a pause, before the VAD closed the turn.

    If the VAD closes the turn at that pause, the close *adopts* it (no second decode) and its
    result is handled as the final; if speech resumes first, its words are the pause commit.
    """

    request: DecodeRequest
    future: Future[Any]
    adopted: DecodeRequest | None = None
    delivered: bool = False


@dataclass
class AsrLeg:
    """Per-leg state; touched only on the event loop (the transcriber also from workers)."""

    name: str
    role: Role
    key: Hashable
    vad: VadStream
    transcriber: StreamingTranscriber
    pcm: FrameResampler = field(default_factory=lambda: FrameResampler(SAMPLE_RATE))
    started: bool = False
    ended: bool = False
    next_pts: float = 0.0  # call-audio time the next frame should start at (samples counted)
    last_speech: float = 0.0
    resume_after: float | None = None  # a turn split in this pause: the next opens when speech resumes
    partial_pending: bool = False
    shown_turns: set[int] = field(default_factory=set)  # turns with a partial on screen
    finals_submitted: int = 0
    next_final: int = 0  # index of the next final to emit (they leave in turn order)
    ready_finals: dict[int, TranscriptFinalFrame | None] = field(default_factory=dict)
    held_partial: TranscriptUpdate | None = None
    finals_done: asyncio.Event = field(default_factory=asyncio.Event)
    finals: dict[int, tuple[DecodeRequest, Future[Any]]] = field(default_factory=dict)
    """Submitted finals whose result is not handled yet, by turn (what a flush gives up)."""
    early: EarlyFinal | None = None  # the open turn's early final, while its pause lasts

    def __post_init__(self) -> None:
        self.pcm.leg = self.name  # its rate-change warning names the leg

    @property
    def finals_outstanding(self) -> int:
        return self.finals_submitted - self.next_final

    def to_16k(self, frame: AudioFrame) -> np.ndarray:
        """The frame as float32 16 kHz mono, through the leg's own resampler."""
        return self.pcm(frame)

def same_request(early: DecodeRequest, closing: DecodeRequest) -> bool:
    """Whether an early final decoded exactly the audio the turn's final needs."""
    return (
        early.turn == closing.turn
        and early.offset == closing.offset
        and early.context == closing.context
        and np.array_equal(early.audio, closing.audio)
    )


def timed(words: list[Word]) -> list[TimedWord]:
    """Decoded words as frame words."""
    return [TimedWord(w.text, w.start, w.end, w.probability) for w in words]
