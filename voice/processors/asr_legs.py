"""Per-leg state of the streaming ASR processor (:mod:`voice.processors.asr`): the leg's VAD,
transcriber, resampler and the bookkeeping that keeps its partials and finals in order, and the
decode results on their way from worker threads to the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from asr.streaming import SAMPLE_RATE, DecodeRequest, StreamingTranscriber, TranscriptUpdate, TurnTranscript
from asr.types import Word
from voice.frames import AudioFrame, Role, TimedWord, TranscriptFinalFrame
from voice.live.scheduler import DecodeKind
from voice.processors.pcm import FrameResampler
from voice.vad import VadStream

log = logging.getLogger("voice.processors.asr")

SPLIT_LOOKBACK = 4.0
"""A turn split inside speech is cut at the end of its last committed word if that word ended
at most this many seconds ago (commit latency is 1-3 s on CPU), else at the quietest piece of
the last second. Why: cut at the split's own sample, the first final ended mid-word with a
garbled word and the next turn's final dropped the word (LibriVox: "amiable" lost)."""
QUIET_PIECES = 10
"""Fed pieces (0.1 s each) whose level is kept to find the quietest in the last second."""
MIN_SPLIT_TURN = 1.0
"""Seconds of a turn before a split point (a split never leaves a sliver of a turn)."""


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
    updates: dict[int, TranscriptUpdate] = field(default_factory=dict)
    """The newest partial update of each turn whose final is not out: its committed words
    place a split, its committed and tentative words stand in for a final not decoded."""
    split_ends: dict[int, float] = field(default_factory=dict)
    """Where each turn split inside speech ends (its final's audio stops there, without the
    ``end_pad`` a turn ending in silence gets)."""
    levels: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=QUIET_PIECES))
    """(start, end, RMS) of the newest fed pieces."""

    def __post_init__(self) -> None:
        self.pcm.leg = self.name  # its rate-change warning names the leg

    @property
    def finals_outstanding(self) -> int:
        return self.finals_submitted - self.next_final

    def to_16k(self, frame: AudioFrame) -> np.ndarray:
        """The frame as float32 16 kHz mono, through the leg's own resampler."""
        return self.pcm(frame)

    def note_level(self, samples: np.ndarray) -> None:
        """Keep the level of a piece just fed to the transcriber (it ends at its clock)."""
        if len(samples):
            end = self.transcriber.time
            rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
            self.levels.append((end - len(samples) / SAMPLE_RATE, end, rms))

    def split_point(self, now: float, turn_start: float) -> float:
        """Where to split the open turn inside speech (see :data:`SPLIT_LOOKBACK`); ``now``
        when neither a recent committed word nor a fed piece lies far enough into the turn."""
        earliest = turn_start + MIN_SPLIT_TURN
        update = self.updates.get(self.transcriber.turn_index)
        if update is not None and update.committed:
            end = update.committed[-1].end
            if max(earliest, now - SPLIT_LOOKBACK) <= end < now:
                return end
        pieces = [(rms, (start + end) / 2) for start, end, rms in self.levels if start >= earliest]
        return min(pieces)[1] if pieces else now

    def stand_in(self, turn: int, end: float, streamed: list[Word]) -> list[Word]:
        """The words that stand in for a turn's final that was not decoded: its newest partial
        (committed and tentative words) up to ``end``, else its committed words."""
        update = self.updates.get(turn)
        heard = [] if update is None else [*update.committed, *update.tentative]
        heard = [w for w in heard if w.text.strip() and (w.start + w.end) / 2 <= end]
        return heard if len(heard) >= len(streamed) else streamed

def same_request(early: DecodeRequest, closing: DecodeRequest) -> bool:
    """Whether an early final decoded exactly the audio the turn's final needs."""
    return (
        early.turn == closing.turn
        and early.offset == closing.offset
        and early.context == closing.context
        and np.array_equal(early.audio, closing.audio)
    )


def cheap_final(request: DecodeRequest) -> DecodeRequest:
    """The final decoded as a partial is (greedy, the partials' encoder window) and without the
    earlier turns' context: the scheduler's ``cheapen`` hook while finals pile up. measured
    (128 SpokenWOZ turns, docs/results/streaming.md): greedy finals 547 ms against 725 ms for
    beam-5, at 28.3 against 25.0 % WER; the shorter window and no context save more (not
    measured on their own)."""
    skip = round(request.context * SAMPLE_RATE)
    return replace(request, audio=request.audio[skip:], offset=request.offset + request.context,
                   context=0.0, final=False)  # fmt: skip


def timed(words: list[Word]) -> list[TimedWord]:
    """Decoded words as frame words (an attached piece stays attached: ``leading_space``)."""
    return [TimedWord(w.text, w.start, w.end, w.probability, leading_space=w.leading_space) for w in words]


@dataclass
class ShedLog:
    """A call's finals shed under overload (voice.live.scheduler.FinalShed): the first is logged at
    once, all of them in one line at the call's end (not one line per turn)."""

    shed: list[tuple[str, TurnTranscript]] = field(default_factory=list)
    """(leg, turn) of the finals shed since the last summary."""
    summarised: bool = False

    def note(self, leg: str, turn: TurnTranscript, who: str, call_id: str) -> None:
        """Remember a shed final; log the call's first one."""
        if not self.shed and not self.summarised:
            log.warning("%s: call %s: decoders overloaded, finals are being shed (streamed words stand in; "
                        "a count at the call's end)", who, call_id)  # fmt: skip
        self.shed.append((leg, turn))

    def summarise(self, who: str, call_id: str) -> None:
        """One line: how many finals were shed and which turns had no words."""
        if not self.shed:
            return
        self.summarised = True
        silent = [f"{leg} {t.turn + 1} ({t.start:.1f}-{t.end:.1f} s)" for leg, t in self.shed if not t.words]
        lost = f"; NOT transcribed (no streamed words): {', '.join(silent)}" if silent else ""
        log.warning("%s: call %s: %d finals shed under overload, %d stood in with streamed words%s",
                    who, call_id, len(self.shed), len(self.shed) - len(silent), lost)  # fmt: skip
        self.shed.clear()
