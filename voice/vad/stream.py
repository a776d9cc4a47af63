"""Streaming VAD for one call leg: PCM in, speech-started / speech-stopped events out.

Synchronous and clock-free: stream time is the number of samples pushed so far (plus
``start_time``), so replaying a file gives the same events as a live call. Audio at any
supported rate is resampled to 16 kHz (soxr's streaming resampler) for both detectors; the
WebRTC gate runs on 30 ms frames, Silero on 32 ms steps with its state carried across pushes.
"""

from __future__ import annotations

import math

import numpy as np
import soxr
from scipy.signal import lfilter

from voice.audio import float_to_int16, int16_to_float
from voice.errors import ConfigError
from voice.vad.analyzer import Endpointer, VadEvent, VadParams
from voice.vad.silero import CHUNK_SAMPLES, SILERO_RATE, SileroState, load_silero
from voice.vad.webrtc import WebRtcGate

_BLOCK_SAMPLES = 1024 * CHUNK_SAMPLES
"""Samples scored per block (32.8 s). measured with tracemalloc on 5 min of a call: 7 MiB at the
peak; in one piece 56 MiB (its copy, Silero's framed input, the gate's int16 PCM twice: about
12 bytes per sample, 660 MiB for an hour's channel)."""


DC_CUTOFF_HZ = 20.0
"""Corner of the DC blocker in front of both detectors (speech on a phone line starts at 300 Hz).
Why: Silero reacts to a DC offset (a cheap ADC, a recorder port); measured on the telephone
sample: DC 0.0003 already lost the opening "Hello?" (speech from 7.28 s instead of 6.38 s),
0.2 half the call. With the blocker: DC 0.05 and 0.2 give the clean regions; the regions of the
sample, LibriSpeech, LibriVox, the 54 Asterisk prompts and the AMI excerpts are unchanged (JFK,
dev00: within one step); the SpokenWOZ legs, which carry -0.0002 to -0.0006 of their own, missed
4.8 % of their reference speech instead of 6.9 % (+0.6 s false alarm over 402 s; tiny.en WER
over their regions 25.6 -> 25.1 %)."""


class DcBlocker:
    """One-pole high-pass ``y[n] = x[n] - x[n-1] + r y[n-1]``, its state carried across calls.

    Stateful per stream, so a recording filtered in blocks or pushed live in 20 ms packets gives
    the same samples (and the same VAD events) as in one piece.
    """

    def __init__(self, cutoff_hz: float = DC_CUTOFF_HZ, sample_rate: int = SILERO_RATE) -> None:
        """A blocker with its corner at ``cutoff_hz`` for audio at ``sample_rate``."""
        pole = 1.0 - 2.0 * math.pi * cutoff_hz / sample_rate
        self._b = np.array([1.0, -1.0], dtype=np.float32)
        self._a = np.array([1.0, -pole], dtype=np.float32)
        self._state: np.ndarray | None = None

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """The next ``samples``, high-passed (float32)."""
        x = np.asarray(samples, dtype=np.float32)
        if len(x) == 0:
            return x
        if self._state is None:  # as if the first sample's level had always been there: no click
            self._state = -x[:1].copy()
        # float32 throughout: a float64 copy of a 33 s block took the scoring's peak memory
        # from 7 to 14 MiB (tests/voice/test_vad.py bounds it).
        y, self._state = lfilter(self._b, self._a, x, zi=self._state)
        return np.asarray(y, dtype=np.float32)


SILERO_MAX_RMS_DB = -8.0
"""Loudest 32 ms step (RMS, dBFS) Silero is given; a louder step is scaled down to it (the WebRTC
gate still hears it as it came). Why: a line driven into its rails (clipped, then gained back up
to full scale) made Silero miss most of the speech; the same clipped waveform 20 dB down was
heard. measured (the SpokenWOZ legs and the telephone sample, mu-law, 10 ms frames, no collar):
clipped at 0.1 of full scale and gained back, 43.6 -> 14.8 % of the reference speech missed;
clean and clean peak-normalised to 0 dBFS unchanged (4.4 % missed, 4.1 / 4.0 % false alarm).
A ceiling of -12 dB: 9.7 % clipped but clean 4.0 / 4.2 % (moved); -20 dB: 3.2 %, clean 2.3 / 4.4 %."""


def limit_loud_steps(samples: np.ndarray, max_rms_db: float = SILERO_MAX_RMS_DB) -> np.ndarray:
    """``samples`` (whole 32 ms steps) with each step louder than ``max_rms_db`` scaled down to it."""
    steps = samples.reshape(-1, CHUNK_SAMPLES)
    # einsum: no squared copy of a 33 s block (tests/voice/test_vad.py bounds the peak memory)
    power = np.einsum("ij,ij->i", steps, steps) / CHUNK_SAMPLES
    ceiling = 10.0 ** (max_rms_db / 10.0)
    if not np.any(power > ceiling):
        return samples
    gains = np.sqrt(ceiling / np.maximum(power, ceiling)).astype(np.float32)
    return (steps * gains[:, None]).ravel()


class VadStream:
    """Per-leg VAD state; the Silero model itself is shared by every stream of the process."""

    sample_rate = SILERO_RATE
    """Rate at which the detectors run (input at other rates is resampled to it)."""
    step = CHUNK_SAMPLES / SILERO_RATE
    """Seconds per decision step (32 ms)."""

    def __init__(self, params: VadParams = VadParams(), *, start_time: float = 0.0) -> None:  # noqa: B008
        self.params = params
        self.start_time = start_time
        """Stream time of the first sample (e.g. the leg's offset in the call)."""
        self._model = load_silero()
        self._silero = SileroState()
        self._gate = (
            WebRtcGate(params.webrtc_mode, SILERO_RATE) if params.webrtc_mode is not None else None
        )
        self._endpointer = Endpointer(params)
        self._dc_blocker = DcBlocker()
        self._pending = np.zeros(0, dtype=np.float32)  # 16 kHz samples not yet a whole step
        self._gate_pending = np.zeros(0, dtype=np.int16)  # 16 kHz PCM not yet a whole frame
        self._samples_done = 0  # 16 kHz samples already decided
        self._gate_frames_done = 0
        self._last_voiced_end: int | None = None  # sample just after the latest voiced frame
        self._voiced_ends = np.zeros(0, dtype=np.int64)  # voiced frame ends of the last block
        self._input_rate: int | None = None
        self._resampler: soxr.ResampleStream | None = None
        self.probability = 0.0
        """Silero's probability for the most recent step."""

    @property
    def frame_is_speech(self) -> bool:
        """Whether the most recent 32 ms step was speech (Silero above threshold and gate open)."""
        return self._endpointer.frame_is_speech

    @property
    def in_speech(self) -> bool:
        """Whether a turn is open: speech-started emitted and speech-stopped not yet."""
        return self._endpointer.in_speech

    @property
    def last_speech_end(self) -> float:
        """Stream time (s) at which the open turn's latest speech step ended: the start of a
        pause, and the ``time`` of the speech-stopped event if the turn closes there."""
        return self._endpointer.last_speech_end

    @property
    def time(self) -> float:
        """Stream time (s) up to which audio has been decided."""
        return self.start_time + self._samples_done / SILERO_RATE

    def push(self, pcm16: np.ndarray | bytes, sample_rate: int) -> list[VadEvent]:
        """Feed signed 16-bit mono PCM (array or little-endian bytes); return the events it caused.

        Raises:
            ConfigError: the sample rate changed within the stream.
        """
        pcm = np.frombuffer(pcm16, dtype="<i2") if isinstance(pcm16, bytes | bytearray) else pcm16
        samples = int16_to_float(np.asarray(pcm, dtype=np.int16))
        return self.process(self._to_16k(samples, sample_rate))

    def process(self, samples: np.ndarray) -> list[VadEvent]:
        """Feed float mono samples already at 16 kHz (the batch path uses this directly).

        Any length: a whole recording is scored in blocks of about 30 s, with the same
        events as in one piece (the state carries across blocks as across live pushes).
        """
        events = []
        for start in range(0, len(samples), _BLOCK_SAMPLES):
            events += self._process_block(self._dc_blocker(samples[start : start + _BLOCK_SAMPLES]))
        return events

    def _process_block(self, samples: np.ndarray) -> list[VadEvent]:
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        usable = len(self._pending) - len(self._pending) % CHUNK_SAMPLES
        if usable == 0:
            return []
        block, self._pending = self._pending[:usable], self._pending[usable:]
        probabilities = self._model.probabilities(limit_loud_steps(block), self._silero)
        self._update_gate(block)
        events = []
        for i, probability in enumerate(probabilities):
            end_sample = self._samples_done + (i + 1) * CHUNK_SAMPLES
            event = self._endpointer.step(
                float(probability),
                self._gate_open(end_sample),
                self._seconds(end_sample - CHUNK_SAMPLES),
                self._seconds(end_sample),
            )
            if event is not None:
                events.append(event)
        self._samples_done += usable
        self.probability = float(probabilities[-1])
        return events

    def finish(self) -> list[VadEvent]:
        """End of input: close an open turn. The stream may not be used afterwards."""
        event = self._endpointer.finish(self.time)
        return [event] if event is not None else []

    def _to_16k(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        if self._input_rate is None:
            self._input_rate = sample_rate
            if sample_rate != SILERO_RATE:
                self._resampler = soxr.ResampleStream(sample_rate, SILERO_RATE, 1, dtype="float32")
        elif sample_rate != self._input_rate:
            raise ConfigError(
                f"sample rate changed from {self._input_rate} to {sample_rate} Hz within a stream",
                hint="use one VadStream per leg and rate",
            )
        if self._resampler is None:
            return samples
        return np.asarray(self._resampler.resample_chunk(samples), dtype=np.float32)

    def _update_gate(self, block: np.ndarray) -> None:
        """Run WebRTC over every whole 30 ms frame now available; remember the last voiced one."""
        if self._gate is None:
            return
        pcm = np.concatenate([self._gate_pending, float_to_int16(block)])
        flags = self._gate.flags(pcm)
        size = self._gate.frame_samples
        self._gate_pending = pcm[len(flags) * size :]
        self._voiced_ends = (self._gate_frames_done + np.flatnonzero(flags) + 1) * size
        self._gate_frames_done += len(flags)

    def _gate_open(self, end_sample: int) -> bool:
        if self._gate is None:
            return True
        # Latest voiced frame that ended by end_sample (frames later in this block are the
        # future for this step, so batch and streaming decide identically).
        ends = self._voiced_ends
        k = int(np.searchsorted(ends, end_sample, side="right"))
        if k > 0:
            self._last_voiced_end = int(ends[k - 1])
        if self._last_voiced_end is None:
            return False
        return end_sample - self._last_voiced_end <= self.params.webrtc_hold * SILERO_RATE

    def _seconds(self, sample: int) -> float:
        return self.start_time + sample / SILERO_RATE
