"""VAD vocabulary and the pure endpointing state machine (no model, no I/O, time as argument).

Each 32 ms step gets Silero's speech probability and the WebRTC gate's verdict; the
:class:`Endpointer` turns them into speech-started / speech-stopped events with hysteresis, a
minimum speech length (clicks and beeps never start a turn) and a silence hang time (short
pauses never end one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from voice.errors import ConfigError


@dataclass(frozen=True)
class VadParams:
    """Thresholds of the combined WebRTC + Silero detector (batch and streaming alike)."""

    threshold: float = 0.5
    """Silero probability at or above which a step starts (or may start) speech."""

    neg_threshold: float = 0.35
    """Once in speech, steps stay speech while Silero's probability is at least this
    (hysteresis: trailing syllables dip below ``threshold`` without ending the turn)."""

    webrtc_mode: int | None = 2
    """WebRTC aggressiveness 0-3 for the frame gate; ``None`` turns the gate off."""

    webrtc_hold: float = 0.3
    """A step passes the gate when WebRTC flagged a 30 ms frame as voiced within this many
    seconds before the step's end (WebRTC drops out inside words; Silero decides the edges)."""

    min_speech_duration: float = 0.1
    """Seconds of continuous speech before speech-started is emitted. measured: a synthetic
    melody reached Silero 0.71 on single 32 ms steps (1 % of steps), never for 0.1 s; 0.25 s
    lost a short "Hello?" on the telephone sample and "press" in an Asterisk prompt."""

    min_silence_duration: float = 0.6
    """Hang time: seconds of non-speech after which speech-stopped is emitted."""

    speech_pad: float = 0.4
    """Batch only: seconds added before and after each region handed to ASR, so soft onsets
    and word endings are not clipped (faster-whisper's default too). measured: with 0.2 s,
    base lost the quiet "I am" / "press" opening 3 of 4 Asterisk prompts whose Silero
    probability stays under 0.5 for their first 0.3 s; with 0.4 s it lost none."""

    def __post_init__(self) -> None:
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            raise ConfigError(
                f"need 0 < neg_threshold <= threshold < 1, not {self.neg_threshold}, "
                f"{self.threshold}",
                hint="the defaults are 0.35 and 0.5",
            )
        if (
            min(
                self.min_speech_duration,
                self.min_silence_duration,
                self.speech_pad,
                self.webrtc_hold,
            )
            < 0
        ):
            raise ConfigError("VAD durations must be >= 0", hint="durations are in seconds")


@dataclass(frozen=True)
class SpeechRegion:
    """A stretch of speech, in seconds of the analysed audio."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


class VadEventType(StrEnum):
    """What a :class:`VadEvent` announces."""

    SPEECH_STARTED = "speech_started"
    SPEECH_STOPPED = "speech_stopped"


@dataclass(frozen=True)
class VadEvent:
    """Speech started or stopped on one stream."""

    type: VadEventType
    time: float
    """Stream time (s) at which speech began (started) or ended (stopped)."""
    detected_at: float
    """Stream time (s) at which the analyzer knew: ``time`` plus the decision latency
    (``min_speech_duration`` for a start, ``min_silence_duration`` for a stop)."""
    speech_start: float
    """Start of the speech this event belongs to (equals ``time`` for a start)."""


class Endpointer:
    """Hysteresis, minimum speech and hang time over per-step evidence; pure and synchronous."""

    def __init__(self, params: VadParams) -> None:
        self.params = params
        self.in_speech = False
        """Whether a turn is open (speech started and not yet stopped)."""
        self.frame_is_speech = False
        """The verdict on the most recent step alone."""
        self._onset: float | None = None  # start of the current run of speech steps
        self._speech_start = 0.0
        self._last_speech_end = 0.0

    @property
    def last_speech_end(self) -> float:
        """End of the latest speech step of the open turn (where a pause began)."""
        return self._last_speech_end

    def step(self, probability: float, voiced: bool, start: float, end: float) -> VadEvent | None:
        """Account for the step [start, end) and return an event if one is due."""
        # Hysteresis from the first step above threshold on, also while a start is pending:
        # a short "Hello?" peaks above 0.5 for only 2 steps but stays above 0.35 for 4.
        pending = self.in_speech or self._onset is not None
        cutoff = self.params.neg_threshold if pending else self.params.threshold
        self.frame_is_speech = voiced and probability >= cutoff
        if self.in_speech:
            return self._step_in_speech(end)
        if not self.frame_is_speech:
            self._onset = None
            return None
        if self._onset is None:
            self._onset = start
        if end - self._onset + 1e-9 < self.params.min_speech_duration:
            return None
        self.in_speech, self._speech_start, self._last_speech_end = True, self._onset, end
        self._onset = None
        return VadEvent(VadEventType.SPEECH_STARTED, self._speech_start, end, self._speech_start)

    def _step_in_speech(self, end: float) -> VadEvent | None:
        if self.frame_is_speech:
            self._last_speech_end = end
            return None
        if end - self._last_speech_end + 1e-9 < self.params.min_silence_duration:
            return None
        return self._stop(detected_at=end)

    def finish(self, now: float) -> VadEvent | None:
        """End of input: close an open turn (speech-stopped at its last speech step)."""
        self._onset = None
        self.frame_is_speech = False
        return self._stop(detected_at=now) if self.in_speech else None

    def _stop(self, detected_at: float) -> VadEvent:
        self.in_speech = False
        return VadEvent(
            VadEventType.SPEECH_STOPPED, self._last_speech_end, detected_at, self._speech_start
        )
