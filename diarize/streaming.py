"""Online speaker attribution for one mixed channel: rolling CAM++ embeddings vs call centroids.

A live leg that carries both parties in one channel (a recorder port, a conference feed) has no
channel to tell the speakers apart. :class:`OnlineSpeakerAttributor` labels it as it arrives:

1. an adaptive energy gate marks 10 ms frames as speech (the floor follows the line noise);
2. every ``step`` seconds the speech of the last ``duration`` seconds is embedded with CAM++;
3. the embedding founds a new speaker when it is farther than ``new_speaker_distance`` from
   every per-call centroid (at most ``max_speakers``); otherwise the centroids are
   re-estimated from the call's recent windows by k-means with a decaying weight
   (:class:`diarize.centroids.SpeakerCentroids`: a plain decaying average could not separate
   the two parties of a mixed 8 kHz call, see there);
4. each window votes, with the current centroids, for its speaker on all of its frames; a
   frame's label is the similarity-weighted majority of the windows that covered it. It is
   provisional one ``step`` after the audio and final once no later window covers it
   (``latency`` = ``duration``).

The design follows diart's streaming contract (``duration``, ``step``, ``latency``,
``sample_rate``, ``reset()``, a stateful call per chunk) but, unlike diart, needs no
segmentation model: a phone call has two parties who rarely overlap for long, and the
segmentation model would cost more CPU than the embeddings. Time is an argument (the call-audio
time of each chunk), so replaying a file gives the same labels as a live call.

Threading: one thread at a time may call the attributor (``__call__``, ``reset``); readers
(:meth:`speaker_at`, :meth:`timeline`, :meth:`split_turn`) may run on another thread while a
call is computing an embedding: they see the labels as of the last finished window.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from diarize.centroids import SpeakerCentroids, unit_vector
from diarize.errors import InvalidAudioError, InvalidOptionsError
from diarize.speech_gate import BAND_HZ, FRAME_SECONDS, EnergyGate
from diarize.types import TELEPHONE_PARTIES, SpeakerTurn

ATTRIBUTION_SAMPLE_RATE = 16000
"""Rate of the audio the attributor takes (CAM++'s rate)."""
_FRAME_SAMPLES = int(ATTRIBUTION_SAMPLE_RATE * FRAME_SECONDS)
_MAX_SPEAKERS = 6


class EmbeddingModel(Protocol):
    """What the attributor needs of a speaker embedding model (``SpeakerEmbedder`` is one)."""

    sample_rate: int

    def embed(self, audio: np.ndarray, sample_rate: int = ...) -> np.ndarray:
        """Embedding of one mono float32 clip."""
        ...


@dataclass(frozen=True)
class OnlineAttributionConfig:
    """Tunables of the online attributor; defaults measured on the SpokenWOZ calls mixed to mono
    (docs/results/online_diarization.md)."""

    duration: float = 1.5
    """Seconds of audio one embedding looks at (the rolling window). measured (pooled
    SpokenWOZ DER of final labels, earlier defaults): 1.0 s 9.7 %, 1.5 s 10.8 %, 2.0 s 12.0 %;
    1.5 s won once ``min_window_speech`` was 0.75 s, which 1.0 s windows rarely reach."""
    step: float = 0.5
    """Seconds between two embeddings; also the delay of a provisional label. measured: 0.75 s
    and 1.0 s cut CAM++ cost by a third and a half for +0.8 and +1.4 DER points on SpokenWOZ,
    but the 30 s telephone sample (too few windows to cluster) went from 13 % to 35-50 %."""
    max_speakers: int = TELEPHONE_PARTIES
    """Most speakers the call can have (2 for a phone call)."""
    new_speaker_distance: float = 0.3
    """Cosine distance to every centroid above which a window founds a new speaker. measured:
    0.2-0.4 give the same DER (the k-means re-estimation corrects a founding on an outlier);
    0.6 never founded the second party (its windows are 0.5-0.7 similar to the first's)."""
    min_window_speech: float = 0.75
    """Least gated speech (s) in a window for it to be embedded. measured (SpokenWOZ): 0.5 /
    0.75 / 1.0 s gave 10.8 / 9.3 / 8.8 % DER final but 16.4 / 17.7 / 23.8 % provisional (a
    turn's first second goes unlabelled until enough speech has come)."""
    centroid_half_life: float = 120.0
    """Seconds (of windows) after which a window counts half in its centroid: voices and line
    conditions drift slowly over a call (the shared calls, 2 min each, are too short to tune it)."""
    history_windows: int = 400
    """Most recent windows the centroids are re-estimated from (about 200 s at a 0.5 s step),
    plus the newest 100 of each speaker (a party silent for minutes keeps its centroid: see
    :class:`diarize.centroids.SpeakerCentroids`)."""
    gate_margin_db: float = 9.0
    """A frame is speech when its energy is this far above the noise floor."""
    gate_floor_db: float = -55.0
    """Frames quieter than this (dBFS) are never speech, however low the floor."""
    gate_prior_db: float = -60.0
    """Noise floor (dBFS) assumed until the first second of the line has been heard."""
    gate_band_hz: float | None = BAND_HZ
    """Corner (Hz) of the gate's second band, a high-pass with a floor of its own, above mains
    hum and its harmonics; ``None``: the full band only (see ``diarize.speech_gate.BAND_HZ``)."""
    gate_fill: float = 0.5
    """Pauses up to this long (s) inside speech count as speech (the SpokenWOZ references
    bridge pauses up to 0.5 s too)."""
    gate_pad: float = 0.1
    """Seconds of speech added before and after each loud stretch (soft onsets and endings)."""
    floor_history: float = 10.0
    """Seconds of frame energies whose 10th percentile is the noise floor."""
    history: float = 600.0
    """Seconds of labels kept for :meth:`OnlineSpeakerAttributor.speaker_at` (older are dropped)."""
    min_run_words: int = 2
    """:meth:`OnlineSpeakerAttributor.split_turn` keeps a speaker change only when the new
    speaker says at least this many words (one-word flips are label noise)."""

    def __post_init__(self) -> None:
        if not 0 < self.step <= self.duration:
            raise InvalidOptionsError(
                f"step={self.step}, duration={self.duration}", hint="need 0 < step <= duration"
            )
        if self.max_speakers < 1:
            raise InvalidOptionsError(f"max_speakers={self.max_speakers}", hint="at least 1")
        if not 0 < self.min_window_speech <= self.duration:
            raise InvalidOptionsError(
                f"min_window_speech={self.min_window_speech}", hint="between 0 and duration"
            )
        if self.max_speakers > _MAX_SPEAKERS:
            raise InvalidOptionsError(
                f"max_speakers={self.max_speakers}",
                hint=f"at most {_MAX_SPEAKERS} (label matching tries every order)",
            )
        if self.centroid_half_life <= 0 or self.history_windows < 1:
            raise InvalidOptionsError("centroid_half_life and history_windows must be positive")


@dataclass(frozen=True)
class SpeakerRun:
    """Consecutive words of one speaker, as indices into the words given to ``split_turn``."""

    first: int
    """Index of the run's first word."""
    stop: int
    """Index after the run's last word."""
    speaker: str | None
    """Speaker label (``S0``, ``S1``, ...); ``None`` when no window has labelled the words yet."""


class _CallTimeline:
    """Speech flags of the call's 10 ms frames and its embedded windows (bounded history).

    Labels are not stored: a frame's label is worked out when asked, from the windows that
    cover it and the *current* centroids. measured: the first seconds of a call were labelled
    with immature centroids, and on SNG0072 the agent's "customer service, how can I help you"
    (1.8-3.0 s) kept the customer's label, which then decided the roles the wrong way round.
    """

    def __init__(self, history_frames: int) -> None:
        self._history = max(history_frames, 1)
        self.start = 0  # absolute index of row 0
        self.count = 0  # rows in use
        self.speech = np.zeros(1024, dtype=bool)
        self._firsts: list[int] = []  # windows, in time order (firsts and ends both increase)
        self._ends: list[int] = []
        self._embeddings: list[np.ndarray] = []

    @property
    def end(self) -> int:
        """Absolute index after the last frame."""
        return self.start + self.count

    def append(self, speech: np.ndarray) -> None:
        """Add frames, dropping the oldest (and their windows) beyond the history."""
        if self.count + len(speech) > len(self.speech):
            self._make_room(len(speech))
        self.speech[self.count : self.count + len(speech)] = speech
        self.count += len(speech)

    def mark_speech(self, first: int, stop: int) -> None:
        """Mark absolute frames ``[first, stop)`` as speech (those still kept)."""
        lo, hi = self._rows(first, stop)
        self.speech[lo:hi] = True

    def speech_between(self, first: int, stop: int) -> np.ndarray:
        """Speech flags of absolute frames ``[first, stop)`` (those still kept)."""
        lo, hi = self._rows(first, stop)
        return self.speech[lo:hi].copy()

    def add_window(self, first: int, stop: int, unit: np.ndarray) -> None:
        """Remember an embedded window covering frames ``[first, stop)``."""
        self._firsts.append(first)
        self._ends.append(stop)
        self._embeddings.append(unit)

    def labels(
        self, first: int, stop: int, centroids: np.ndarray
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """For the kept frames of ``[first, stop)``: the first one, each one's speaker index
        (-1: no window covers it) by similarity-weighted vote, and the speech flags."""
        lo, hi = self._rows(first, stop)
        first, stop = self.start + lo, self.start + hi
        votes = np.zeros((hi - lo, max(len(centroids), 1)), dtype=np.float32)
        if len(centroids):
            for index in range(bisect.bisect_right(self._ends, first), len(self._ends)):
                if self._firsts[index] >= stop:
                    break
                similarities = centroids @ self._embeddings[index]
                speaker = int(np.argmax(similarities))
                a, b = max(self._firsts[index], first) - first, min(self._ends[index], stop) - first
                votes[a:b, speaker] += max(float(similarities[speaker]), 0.01)
        voted = votes.max(axis=1) > 0
        return first, np.where(voted, np.argmax(votes, axis=1), -1), self.speech[lo:hi].copy()

    def _rows(self, first: int, stop: int) -> tuple[int, int]:
        lo = min(max(first - self.start, 0), self.count)
        hi = min(max(stop - self.start, lo), self.count)
        return lo, hi

    def _make_room(self, extra: int) -> None:
        drop = max(0, self.count + extra - self._history)
        if drop:  # shift once per half history, not per chunk
            drop = min(max(drop, self._history // 2), self.count)  # never more rows than kept
            self.speech[: self.count - drop] = self.speech[drop : self.count]
            self.start += drop
            self.count -= drop
            gone = bisect.bisect_right(self._ends, self.start)
            del self._firsts[:gone], self._ends[:gone], self._embeddings[:gone]
        needed = self.count + extra
        if needed > len(self.speech):
            speech = np.zeros(max(needed, 2 * len(self.speech)), dtype=bool)
            speech[: self.count] = self.speech[: self.count]
            self.speech = speech


class OnlineSpeakerAttributor:
    """Who is speaking on one mixed live channel: one per call, the embedding model shared.

    Latency contract (diart's): each call takes a chunk of any length; a frame's label is
    provisional ``step`` s after its audio arrived and final ``latency`` (= ``duration``) s after,
    plus the time of one embedding (see docs/results/online_diarization.md).
    """

    sample_rate: int = ATTRIBUTION_SAMPLE_RATE
    """Rate of the chunks (16 kHz float32 mono)."""

    def __init__(
        self, embedder: EmbeddingModel, config: OnlineAttributionConfig | None = None
    ) -> None:
        self.config = config = config or OnlineAttributionConfig()
        if embedder.sample_rate != self.sample_rate:
            raise InvalidOptionsError(
                f"the embedding model runs at {embedder.sample_rate} Hz", hint="use CAM++ (16 kHz)"
            )
        self._embedder = embedder
        self._step_frames = round(self.config.step / FRAME_SECONDS)
        self._window_frames = round(self.config.duration / FRAME_SECONDS)
        self._min_speech_frames = round(self.config.min_window_speech / FRAME_SECONDS)
        self._gate = EnergyGate(
            margin_db=config.gate_margin_db,
            floor_db=config.gate_floor_db,
            prior_db=config.gate_prior_db,
            fill=config.gate_fill,
            pad=config.gate_pad,
            band_hz=config.gate_band_hz,
            floor_history=config.floor_history,
        )
        self._centroids = SpeakerCentroids(
            max_speakers=config.max_speakers,
            new_speaker_distance=config.new_speaker_distance,
            half_life_windows=config.centroid_half_life / config.step,
            history_windows=config.history_windows,
        )
        self._lock = threading.Lock()
        self.reset()

    @property
    def duration(self) -> float:
        """Seconds of audio one embedding covers."""
        return self.config.duration

    @property
    def step(self) -> float:
        """Seconds between embeddings (and the delay of a provisional label)."""
        return self.config.step

    @property
    def latency(self) -> float:
        """Seconds after which a frame's label no longer changes (no later window covers it)."""
        return self.config.duration

    @property
    def speakers(self) -> tuple[str, ...]:
        """Labels of the speakers found so far, in order of first speech."""
        return tuple(_label(i) for i in range(self._centroids.num_speakers))

    @property
    def time(self) -> float:
        """Call-audio time up to which audio has been received."""
        return self._origin + self._received / self.sample_rate

    @property
    def decided_until(self) -> float:
        """Call-audio time before which labels are final."""
        return self._seconds(self._final_frame)

    def reset(self) -> None:
        """Forget the call: audio, speech floor, speakers and labels."""
        with self._lock:
            self._origin = 0.0
            self._started = False
            self._received = 0  # samples since the origin
            self._audio = np.zeros(0, dtype=np.float32)
            self._audio_start = 0  # sample index of self._audio[0]
            self._next_window_end = self._step_frames  # frame index
            self._final_frame = 0
            self._frames = _CallTimeline(round(self.config.history / FRAME_SECONDS))
            self._gate.reset()
            self._centroids.reset()

    def __call__(self, chunk: np.ndarray, start: float) -> list[SpeakerTurn]:
        """Feed 16 kHz float32 mono audio starting at call-audio time ``start``.

        A gap since the previous chunk is filled with silence; audio overlapping what was
        already received is dropped. Returns the speech whose labels became final.

        Raises:
            InvalidAudioError: the chunk is not 1-D.
        """
        samples = np.asarray(chunk, dtype=np.float32)
        if samples.ndim != 1:
            raise InvalidAudioError(f"expected a mono chunk, got shape {samples.shape}")
        if not self._started:
            self._origin, self._started = start, True
        turns: list[SpeakerTurn] = []
        block = round(_BLOCK_SECONDS * self.sample_rate)
        while round((start - self._origin) * self.sample_rate) - self._received > block:
            self._append(np.zeros(block, dtype=np.float32))  # a hold: see _BLOCK_SECONDS
            turns += self._embed_due()
        samples = self._align(samples, start)
        for first in range(0, max(len(samples), 1), block):  # a long chunk: see _BLOCK_SECONDS
            self._append(samples[first : first + block])
            turns += self._embed_due()
        return turns

    def _embed_due(self) -> list[SpeakerTurn]:
        """Embed every window the audio received completes; the speech whose labels became final."""
        while self._frames.end >= self._next_window_end:
            self._embed_window(self._next_window_end)
            self._next_window_end += self._step_frames
        return self._finalise(self._next_window_end - self._window_frames)

    def finish(self) -> list[SpeakerTurn]:
        """End of input: embed the audio after the last window; return the remaining labels."""
        if self._frames.end > self._next_window_end - self._step_frames:
            self._embed_window(self._frames.end)
        return self._finalise(self._frames.end + self._window_frames)

    def speaker_at(self, start: float, end: float) -> str | None:
        """The speaker of most labelled speech in ``[start, end]`` (a word, a turn).

        Falls back to labelled non-speech frames of the span (a word the gate missed), and to
        ``None`` when no window has covered the span yet.
        """
        first = self._frame(start)
        with self._lock:
            _, labels, speech = self._frames.labels(
                first, max(self._frame(end), first + 1), self._centroids.centroids
            )
        for chosen in (labels[speech], labels):
            chosen = chosen[chosen >= 0]
            if chosen.size:
                return _label(int(np.bincount(chosen).argmax()))
        return None

    def timeline(self, start: float | None = None, end: float | None = None) -> list[SpeakerTurn]:
        """Labelled speech in ``[start, end]`` (default: all kept), provisional labels included."""
        with self._lock:
            first = self._frames.start if start is None else self._frame(start)
            stop = self._frames.end if end is None else self._frame(end)
            first, labels, speech = self._frames.labels(first, stop, self._centroids.centroids)
        return self._turns(first, np.where(speech, labels, -1))

    def split_turn(self, words: Sequence[tuple[float, float]]) -> list[SpeakerRun]:
        """Split a finished turn's words (``(start, end)`` each) into runs of one speaker.

        A change is kept only when the new speaker has ``min_run_words`` words; shorter runs
        join the run before them (or after, at the start of the turn).
        """
        owners = [self.speaker_at(word_start, word_end) for word_start, word_end in words]
        for index in range(1, len(owners)):  # an unlabelled word belongs to its neighbour
            owners[index] = owners[index] or owners[index - 1]
        for index in range(len(owners) - 2, -1, -1):
            owners[index] = owners[index] or owners[index + 1]
        return _merge_short_runs(_runs(owners), self.config.min_run_words)

    def _align(self, samples: np.ndarray, start: float) -> np.ndarray:
        """Pad a gap before the chunk with silence, or drop audio already received."""
        offset = round((start - self._origin) * self.sample_rate) - self._received
        if abs(offset) <= _ALIGN_TOLERANCE:
            return samples
        if offset > 0:
            return np.concatenate([np.zeros(offset, dtype=np.float32), samples])
        return samples[-offset:]

    def _append(self, samples: np.ndarray) -> None:
        """Keep the samples and gate every whole frame they complete."""
        self._audio = np.concatenate([self._audio, samples])
        self._received += len(samples)
        known = self._frames.end
        complete = self._received // _FRAME_SAMPLES
        if complete <= known:
            return
        lo = known * _FRAME_SAMPLES - self._audio_start
        frames = self._audio[lo : lo + (complete - known) * _FRAME_SAMPLES].reshape(
            -1, _FRAME_SAMPLES
        )
        speech, filled_before = self._gate(frames)
        with self._lock:
            self._frames.append(speech)
            if filled_before:
                self._frames.mark_speech(known - filled_before, known)

    def _embed_window(self, end: int) -> None:
        """Embed the speech of the window ending at frame ``end`` and vote for its speaker."""
        first = max(end - self._window_frames, self._audio_start // _FRAME_SAMPLES, 0)
        with self._lock:
            speech = self._frames.speech_between(first, end)
        if int(speech.sum()) >= self._min_speech_frames:
            lo = first * _FRAME_SAMPLES - self._audio_start
            frames = self._audio[lo : lo + len(speech) * _FRAME_SAMPLES].reshape(-1, _FRAME_SAMPLES)
            unit = unit_vector(self._embedder.embed(frames[speech].ravel(), self.sample_rate))
            with self._lock:  # readers see the window and the centroids it moved together
                self._centroids.assign(unit)
                self._frames.add_window(first, end, unit)
        keep_from = max(end + self._step_frames - self._window_frames, 0) * _FRAME_SAMPLES
        if keep_from > self._audio_start:
            self._audio = self._audio[keep_from - self._audio_start :]
            self._audio_start = keep_from

    def _finalise(self, limit: int) -> list[SpeakerTurn]:
        """Labelled speech of the frames before ``limit`` that no later window will cover."""
        limit = min(limit, self._frames.end)
        if limit <= self._final_frame:
            return []
        first, self._final_frame = self._final_frame, limit
        with self._lock:
            first, labels, speech = self._frames.labels(first, limit, self._centroids.centroids)
        return self._turns(first, np.where(speech, labels, -1))

    def _turns(self, first: int, labels: np.ndarray) -> list[SpeakerTurn]:
        """Runs of one label (>= 0) in per-frame ``labels`` starting at frame ``first``."""
        if labels.size == 0:
            return []
        edges = np.flatnonzero(np.diff(labels)) + 1
        starts = np.concatenate([[0], edges])
        stops = np.concatenate([edges, [labels.size]])
        return [
            SpeakerTurn(self._seconds(first + a), self._seconds(first + b), _label(int(labels[a])))
            for a, b in zip(starts.tolist(), stops.tolist(), strict=True)
            if labels[a] >= 0
        ]

    def _frame(self, time: float) -> int:
        return int(round((time - self._origin) / FRAME_SECONDS))

    def _seconds(self, frame: int) -> float:
        return round(self._origin + frame * FRAME_SECONDS, 3)


_BLOCK_SECONDS = 10.0
"""Seconds of audio appended at a time: of the silence filling a long gap (a call on hold), and
of a long chunk (a recording fed in one piece). Why in blocks: the whole gap or chunk at once
held it all in memory, and one longer than the frame history (10 min) did not fit the timeline
and failed the leg's attribution (a negative row count in ``_CallTimeline._make_room``)."""
_ALIGN_TOLERANCE = 16
"""Samples (1 ms) of disagreement between a chunk's time and the audio received that still
count as contiguous (timestamps of 20 ms packets are rounded)."""


def _label(index: int) -> str:
    """``S0``, ``S1``, ... in order of first speech, as in the transcript schema."""
    return f"S{index}"


def _runs(owners: Sequence[str | None]) -> list[SpeakerRun]:
    runs: list[SpeakerRun] = []
    for index, owner in enumerate(owners):
        if runs and runs[-1].speaker == owner:
            runs[-1] = SpeakerRun(runs[-1].first, index + 1, owner)
        else:
            runs.append(SpeakerRun(index, index + 1, owner))
    return runs


def _merge_short_runs(runs: list[SpeakerRun], min_words: int) -> list[SpeakerRun]:
    """Fold runs of fewer than ``min_words`` words into the run before them (a short first run
    into the run after it)."""
    merged: list[SpeakerRun] = []
    for run in runs:
        if merged and (run.stop - run.first < min_words or merged[-1].speaker == run.speaker):
            merged[-1] = SpeakerRun(merged[-1].first, run.stop, merged[-1].speaker)
        else:
            merged.append(run)
    if len(merged) > 1 and merged[0].stop - merged[0].first < min_words:
        merged[:2] = [SpeakerRun(0, merged[1].stop, merged[1].speaker)]
    return merged
