"""A growable buffer of audio samples, for the streaming transcriber's turns, pre-roll and context."""

from __future__ import annotations

import numpy as np

from asr.turn_decoding import SAMPLE_RATE


class SampleBuffer:
    """A growable float32 buffer of 16 kHz samples (amortised appends, copied views)."""

    def __init__(self) -> None:
        self._data = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def seconds(self) -> float:
        return self._size / SAMPLE_RATE

    def append(self, samples: np.ndarray) -> None:
        needed = self._size + len(samples)
        if needed > len(self._data):
            grown = np.zeros(max(needed, 2 * len(self._data)), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : needed] = samples
        self._size = needed

    def view(self, start: int = 0) -> np.ndarray:
        """A copy of the samples from ``start`` on (copies: decodes run on other threads)."""
        return self._data[max(0, start) : self._size].copy()

    def keep_last(self, count: int) -> None:
        if self._size > count:
            self._data[:count] = self._data[self._size - count : self._size]
            self._size = count
