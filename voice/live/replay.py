"""Replay recorded call legs through a call pipeline, and measure what came out.

Three pacing modes (whisper_streaming's replay modes):

- ``realtime``: 20 ms frames paced by the wall clock, every leg at once, as a telephony
  transport delivers them; latencies are wall-clock seconds.
- ``unaware`` (computation-unaware): frames are fed as fast as possible, but whenever the
  pipeline has decodes in flight, feeding waits for them; the clock is the *audio* clock, so
  latencies are the policy's own (step, agreement, hang time), free of CPU speed and load.
- ``fast``: frames as fast as possible, nothing waits (final transcripts only; quick checks).

A :class:`FrameRecorder` at the end of the pipeline stamps every frame with the same clock;
the functions at the bottom turn a :class:`ReplayLog` into word-commit latencies, turn-end to
final latencies, partial lag and the texts for WER.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from enum import StrEnum

import numpy as np

from asr.policy import word_key
from asr.streaming import SAMPLE_RATE, StreamingTranscriber, TurnTranscript
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    EndOfInputFrame,
    Frame,
    Role,
    SpeechStoppedFrame,
    TimedWord,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
    join_words,
)
from voice.processor import FrameProcessor
from voice.vad import VadEventType, VadStream

__all__ = [
    "Emitted",
    "FinalLatency",
    "FrameRecorder",
    "ReplayLog",
    "ReplayMode",
    "WordCommit",
    "commit_latencies",
    "final_latencies",
    "final_text",
    "partial_lags",
    "partial_text",
    "replay_call",
]


class ReplayMode(StrEnum):
    """How frames are paced (module docstring)."""

    REALTIME = "realtime"
    UNAWARE = "unaware"
    FAST = "fast"


@dataclass(frozen=True)
class Emitted:
    """A frame that left the pipeline, and when (replay clock seconds)."""

    at: float
    frame: Frame


class ReplayClock:
    """Wall seconds since the replay started, or the audio fed so far (``unaware``)."""

    def __init__(self, mode: ReplayMode) -> None:
        self.mode = mode
        self.audio_time = 0.0
        self._t0 = time.perf_counter()

    def __call__(self) -> float:
        if self.mode is ReplayMode.UNAWARE:
            return self.audio_time
        return time.perf_counter() - self._t0


class FrameRecorder(FrameProcessor):
    """Last processor of a replayed pipeline: stamps and keeps every frame."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__("FrameRecorder")
        self.clock = clock
        self.emitted: list[Emitted] = []

    async def process_frame(self, frame: Frame) -> None:
        """Record ``frame`` with the current clock; push nothing."""
        if not isinstance(frame, AudioFrame):
            self.emitted.append(Emitted(self.clock(), frame))


@dataclass
class ReplayLog:
    """What one replayed call fed and what came out, on one clock."""

    call_id: str
    frame_seconds: float
    fed_at: list[float] = field(default_factory=list)
    """Clock time at which frame ``k`` (audio ``[k*f, (k+1)*f)``) was pushed."""
    emitted: list[Emitted] = field(default_factory=list)
    max_slip: float = 0.0
    """Realtime: most seconds a frame was pushed after its due time (event loop saturation)."""

    def fed_time(self, audio_time: float) -> float:
        """Clock time at which the audio at ``audio_time`` had been pushed."""
        if not self.fed_at:
            return 0.0
        k = int(np.clip(np.ceil(audio_time / self.frame_seconds) - 1, 0, len(self.fed_at) - 1))
        return self.fed_at[k]

    def frames(self, leg: str) -> list[Emitted]:
        """The leg's speech and transcript frames, in emission order."""
        kinds = (TranscriptPartialFrame, TranscriptFinalFrame, SpeechStoppedFrame)
        return [e for e in self.emitted if isinstance(e.frame, kinds) and e.frame.leg == leg]


async def replay_call(
    pipeline: FrameProcessor,
    legs: dict[str, np.ndarray],
    sample_rate: int,
    *,
    call_id: str,
    roles: dict[str, Role],
    mode: ReplayMode,
    clock: ReplayClock,
    frame_seconds: float = 0.02,
    busy: Callable[[], bool] | None = None,
    drained: Callable[[], Awaitable[None]] | None = None,
) -> ReplayLog:
    """Feed int16 legs (equal lengths) as 20 ms AudioFrames, then end the call.

    ``busy``/``drained`` (the ASR processor's) are needed for ``unaware`` pacing.
    """
    size = round(frame_seconds * sample_rate)
    count = min(len(pcm) for pcm in legs.values()) // size
    log = ReplayLog(call_id, frame_seconds)
    await pipeline.process_frame(CallStartedFrame(call_id=call_id, legs=roles, source="file"))
    start = clock()
    for k in range(count):
        due = start + (k + 1) * frame_seconds  # a frame is complete once its last sample is in
        if mode is ReplayMode.REALTIME:
            await asyncio.sleep(max(0.0, due - clock()))
            log.max_slip = max(log.max_slip, clock() - due)
        for leg, pcm in legs.items():
            chunk = pcm[k * size : (k + 1) * size]
            await pipeline.process_frame(
                AudioFrame(pcm=chunk, sample_rate=sample_rate, leg=leg, pts=k * frame_seconds)
            )
        clock.audio_time = (k + 1) * frame_seconds
        log.fed_at.append(clock())
        if mode is ReplayMode.UNAWARE and busy is not None and drained is not None and busy():
            await drained()
        elif mode is ReplayMode.FAST and k % 50 == 0:
            await asyncio.sleep(0)  # let results through
    if mode is ReplayMode.FAST and drained is not None:
        await drained()  # every final decoded before the end (a flush waits only so long)
    end = count * frame_seconds
    for leg in legs:
        await pipeline.process_frame(EndOfInputFrame(leg=leg, audio_time=end))
    await pipeline.process_frame(CallEndedFrame(call_id=call_id, audio_time=end))
    return log


# --- measurements -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordCommit:
    """A word as first shown committed, and how long after its audio was fed."""

    word: TimedWord
    latency: float
    by_final: bool
    """True when no partial committed it and the turn's final showed it first."""


def commit_latencies(log: ReplayLog, leg: str) -> list[WordCommit]:
    """Per word: first committed display time minus the time its audio end was fed.

    A partial's newly committed words count at its emission; a final's words count only if
    they end after the last word the turn's partials committed and are not one of those words
    again (same word, in order, ending within ``_SAME_WORD_SECONDS``: the final's timestamps of
    a word differ a little from the partial's, and it was shown already).
    """
    out: list[WordCommit] = []
    shown: list[TimedWord] = []  # committed words of the current turn already counted
    for emitted in log.frames(leg):
        frame = emitted.frame
        if isinstance(frame, TranscriptPartialFrame):
            for word in frame.committed[len(shown) :]:
                out.append(WordCommit(word, emitted.at - log.fed_time(word.end), False))
            if len(frame.committed) > len(shown):
                shown = list(frame.committed)
        elif isinstance(frame, TranscriptFinalFrame):
            last_end = shown[-1].end if shown else float("-inf")
            again = _shown_again(shown, frame.words)
            for index, word in enumerate(frame.words):
                if word.end > last_end + 0.05 and index not in again:
                    out.append(WordCommit(word, emitted.at - log.fed_time(word.end), True))
            shown = []
    return out


_SAME_WORD_SECONDS = 0.5


def _shown_again(shown: Sequence[TimedWord], final: Sequence[TimedWord]) -> set[int]:
    """Indices of ``final`` words that repeat a shown word (aligned in order by text)."""
    matcher = SequenceMatcher(None, [word_key(w.text) for w in shown], [word_key(w.text) for w in final], False)
    return {
        b + k
        for a, b, size in matcher.get_matching_blocks()
        for k in range(size)
        if abs(shown[a + k].end - final[b + k].end) <= _SAME_WORD_SECONDS
    }


@dataclass(frozen=True)
class FinalLatency:
    """How long after the end of its turn a final transcript was shown."""

    end: float
    """Call-audio time at which the turn's speech ended."""
    from_close: float
    """Seconds after the VAD closed the turn (the turn's ``SpeechStoppedFrame``)."""
    from_last_word: float | None
    """Seconds after the final's last word's audio was fed (includes the VAD hang time);
    ``None`` for a final without words."""


def final_latencies(log: ReplayLog, leg: str) -> list[FinalLatency]:
    """Per final with a VAD close (turns split at the maximum length have none): its latency."""
    stopped: dict[float, float] = {}
    out: list[FinalLatency] = []
    for emitted in log.frames(leg):
        frame = emitted.frame
        if isinstance(frame, SpeechStoppedFrame):
            stopped[round(frame.audio_time, 3)] = emitted.at
        elif isinstance(frame, TranscriptFinalFrame):
            closed = stopped.get(round(frame.end, 3))
            if closed is None:
                continue
            last = emitted.at - log.fed_time(frame.words[-1].end) if frame.words else None
            out.append(FinalLatency(frame.end, emitted.at - closed, last))
    return out


def partial_lags(log: ReplayLog, leg: str) -> list[tuple[float, float]]:
    """Per partial: (audio time it decoded up to, seconds between that audio and the display)."""
    return [
        (e.frame.audio_time, e.at - log.fed_time(e.frame.audio_time))
        for e in log.frames(leg)
        if isinstance(e.frame, TranscriptPartialFrame)
    ]


def final_text(log: ReplayLog, leg: str) -> str:
    """The leg's final transcripts, in turn order."""
    return " ".join(
        e.frame.text for e in log.frames(leg) if isinstance(e.frame, TranscriptFinalFrame)
    ).strip()


def partial_text(log: ReplayLog, leg: str, *, committed_only: bool = False) -> str:
    """What partials alone showed: per turn, the last partial's committed (+ tentative) words."""
    texts: list[str] = []
    last: TranscriptPartialFrame | None = None
    for emitted in [*log.frames(leg), None]:
        frame = emitted.frame if emitted is not None else None
        if isinstance(frame, TranscriptPartialFrame):
            last = frame
        elif last is not None:  # the turn's final (or the end): close the turn's partials
            words: Sequence[TimedWord] = last.committed
            if not committed_only:
                words = [*last.committed, *last.tentative]
            texts.append(join_words(words))
            last = None
    return " ".join(t for t in texts if t).strip()


def vad_turn_finals(transcriber: StreamingTranscriber, audio: np.ndarray,
                    close_after: float = 0.7) -> list[TurnTranscript]:
    """Every VAD turn's final of one leg's ``audio`` (16 kHz), opened and closed as the live path
    does it: a turn closes once the transcriber has heard ``close_after`` s past the VAD's close
    (the VAD's own 0.6 s of silence, and more). The final pass alone, without partials or pacing."""
    vad, finals, fed = VadStream(), [], 0
    for event in vad.process(audio) + vad.finish():
        closing = event.type is not VadEventType.SPEECH_STARTED
        upto = round(min(len(audio) / SAMPLE_RATE, event.time + (close_after if closing else 0.0)) * SAMPLE_RATE)
        transcriber.insert_audio(audio[fed:upto])
        fed = max(fed, upto)
        if not closing:
            transcriber.begin_turn(event.time)
        elif (turn := transcriber.finish(event.time)) is not None:
            finals.append(turn)
    return finals


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, NaN when there are no values (a run with no turns)."""
    return float(np.percentile(values, q)) if len(values) else float("nan")


def growth(points: Sequence[tuple[float, float]]) -> float:
    """How much a latency grew over a run: median of its last third minus median of its first
    third (by call-audio time); 0 with fewer than 6 points. A sustained load does not grow."""
    if len(points) < 6:
        return 0.0
    times = np.array([t for t, _ in points])
    values = np.array([v for _, v in points])
    lo, hi = np.percentile(times, [33.3, 66.7])
    first, last = values[times <= lo], values[times >= hi]
    return float(np.median(last) - np.median(first)) if len(first) and len(last) else 0.0
