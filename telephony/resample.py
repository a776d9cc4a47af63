"""Low-latency streaming resampling for live legs (polyphase FIR as ``scipy.signal.resample_poly``).

Why not soxr's ``ResampleStream``: it works in large internal blocks, so 20 ms chunks come out in
bursts. # tested: 8 -> 16 kHz, 20 ms chunks: HQ emitted nothing for the first 100 ms, then 104 ms
bursts; MQ/LQ alike; only QQ (cubic) streams smoothly. This resampler returns every output
sample as soon as its inputs are known. Its filter is ``resample_poly``'s (Kaiser window, beta 5,
10 zero crossings per side; identical output, tested), whose 1.25 ms delay at 8 -> 16 kHz we
remove so timestamps stay exact. Plain numpy: importing ``scipy.signal`` costs about 2 s.
Offline whole-file resampling stays with soxr in ``voice.audio``.
"""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

HALF_LEN = 10
"""Zero crossings of the sinc on each side, as scipy's ``resample_poly``."""
KAISER_BETA = 5.0


@lru_cache(maxsize=16)
def polyphase_filter(up: int, down: int) -> np.ndarray:
    """Low-pass FIR for ``up``/``down``, gain ``up``, as ``firwin(.., window=('kaiser', 5))``."""
    rate = max(up, down)
    numtaps = 2 * HALF_LEN * rate + 1
    cutoff = 1.0 / rate  # fraction of the upsampled Nyquist frequency
    m = np.arange(numtaps) - (numtaps - 1) / 2
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, KAISER_BETA)
    return taps / taps.sum() * up


class StreamResampler:
    """Resamples int16 chunks from ``in_rate`` to ``out_rate``, keeping state between calls."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        common = gcd(in_rate, out_rate)
        self.up, self.down = out_rate // common, in_rate // common
        taps = polyphase_filter(self.up, self.down)
        self._span = -(-len(taps) // self.up)  # input samples under the filter
        padded = np.zeros(self._span * self.up)
        padded[: len(taps)] = taps
        self._phases = padded.reshape(self._span, self.up).T  # [phase, tap]
        self._skip = round((len(taps) - 1) // 2 / self.down)  # outputs of filter delay
        self._history = np.zeros(self._span - 1)
        self._history_start = -(self._span - 1)  # global input index of _history[0]
        self._received = 0
        self._next_out = 0  # global index of the next (delayed) output

    def process(self, pcm: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Resample the next chunk; with ``last`` also flush the filter's tail."""
        chunk = np.asarray(pcm, dtype=np.float64)
        self._received += len(chunk)
        if last:
            chunk = np.concatenate([chunk, np.zeros(self._span)])
        self._history = np.concatenate([self._history, chunk])
        known = self._history_start + len(self._history)  # inputs known, incl. tail padding
        end_out = (known * self.up - 1) // self.down + 1  # y[n] needs x[n*down // up]
        if last:
            end_out = min(end_out, -(-self._received * self.up // self.down) + self._skip)
        if end_out <= self._next_out:
            return np.zeros(0, dtype=np.int16)
        y = self._filter(self._next_out, end_out)
        if self._next_out < self._skip:
            y = y[self._skip - self._next_out :]
        self._next_out = end_out
        self._trim_history()
        return np.clip(np.round(y), -32768, 32767).astype(np.int16)

    def _filter(self, first: int, end: int) -> np.ndarray:
        """Outputs first..end-1: y[n] = sum_j phase[n*down % up][j] * x[n*down // up - j]."""
        if self.down == 1:  # upsampling by an integer: one 'valid' convolution per phase
            start = first // self.up - self._history_start - (self._span - 1)
            stop = (end - 1) // self.up - self._history_start + 1
            segment = self._history[start:stop]
            phases = np.stack(
                [np.convolve(segment, self._phases[p], mode="valid") for p in range(self.up)],
                axis=1,
            ).reshape(-1)
            offset = first - (first // self.up) * self.up
            return phases[offset : offset + end - first]
        if self.up == 1:  # decimating by an integer: one convolution, every down-th value
            start = first * self.down - self._history_start - (self._span - 1)
            stop = (end - 1) * self.down - self._history_start + 1
            return np.convolve(self._history[start:stop], self._phases[0], mode="valid")[
                :: self.down
            ]
        n = np.arange(first, end)
        newest = (n * self.down) // self.up - self._history_start
        window = self._history[newest[:, None] - np.arange(self._span)[None, :]]
        return np.einsum("ij,ij->i", self._phases[(n * self.down) % self.up], window)

    def _trim_history(self) -> None:
        oldest_needed = (self._next_out * self.down) // self.up - (self._span - 1)
        drop = oldest_needed - self._history_start
        if drop > 0:
            self._history = self._history[drop:]
            self._history_start = oldest_needed
