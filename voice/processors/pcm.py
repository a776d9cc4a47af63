"""One leg's audio frames as float32 mono at one rate, for the processors that analyse it (the
streaming ASR and the speaker attribution, both at 16 kHz)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import soxr

from voice.frames import AudioFrame

log = logging.getLogger(__name__)


class FrameResampler:
    """int16 (or float) PCM frames at any rate -> float32 at ``rate``, through one soxr stream
    that follows the leg's input rate (a new stream when it changes)."""

    def __init__(self, rate: int, leg: str = "") -> None:
        self.rate, self.leg = rate, leg
        self.input_rate: int | None = None
        self._stream: Any = None  # soxr.ResampleStream; None when the input is at ``rate``

    def __call__(self, frame: AudioFrame) -> np.ndarray:
        """The frame's samples at ``rate``.

        Raises:
            ValueError: the frame's sample rate is not positive.
        """
        if frame.sample_rate <= 0:
            raise ValueError(f"sample rate {frame.sample_rate}")
        pcm = np.asarray(frame.pcm).reshape(-1)
        if np.issubdtype(pcm.dtype, np.floating):
            # Why nan_to_num: one NaN reached the speech gate's noise floor and blinded it.
            samples = np.clip(np.nan_to_num(pcm.astype(np.float32)), -1.0, 1.0)
        else:
            samples = pcm.astype(np.float32) / 32768.0
        if self.input_rate != frame.sample_rate:
            if self.input_rate is not None:
                log.warning("leg %s: rate %s -> %s", self.leg, self.input_rate, frame.sample_rate)
            self.input_rate = frame.sample_rate
            self._stream = (None if frame.sample_rate == self.rate
                            else soxr.ResampleStream(frame.sample_rate, self.rate, 1, dtype="float32"))
        if self._stream is None:
            return samples
        return np.asarray(self._stream.resample_chunk(samples), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The samples the resampler still holds, at the end of the leg."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)
