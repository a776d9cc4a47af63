"""WebRTC's GMM voice detector (``webrtcvad`` from webrtcvad-wheels) as a 30 ms frame gate.

It costs microseconds per frame and rejects near-silence and low-level noise that a neural VAD
can score as speech; it also fires on tones and music, which Silero rejects. A frame counts as
speech only when both agree (see :mod:`voice.vad.analyzer`).
"""

from __future__ import annotations

import numpy as np

from voice.errors import ConfigError

FRAME_SECONDS = 0.03
"""Frame length used for gating (webrtcvad accepts 10, 20 or 30 ms)."""
_RATES = (8000, 16000, 32000, 48000)


class WebRtcGate:
    """Per-frame speech flags from webrtcvad at one aggressiveness ``mode`` (0-3)."""

    def __init__(self, mode: int, sample_rate: int) -> None:
        import webrtcvad

        if mode not in (0, 1, 2, 3):
            raise ConfigError(f"webrtc_mode must be 0-3, not {mode}", hint="3 is the strictest")
        if sample_rate not in _RATES:
            raise ConfigError(
                f"webrtcvad cannot run at {sample_rate} Hz", hint=f"resample to one of {_RATES}"
            )
        self._vad = webrtcvad.Vad(mode)
        self.sample_rate = sample_rate
        self.frame_samples = int(sample_rate * FRAME_SECONDS)

    def flags(self, pcm16: np.ndarray) -> np.ndarray:
        """Speech flag per whole 30 ms frame of int16 ``pcm16`` (a trailing part is ignored)."""
        n = len(pcm16) // self.frame_samples
        data = np.ascontiguousarray(pcm16[: n * self.frame_samples], dtype="<i2").tobytes()
        step = self.frame_samples * 2
        return np.fromiter(
            (
                self._vad.is_speech(data[i * step : (i + 1) * step], self.sample_rate)
                for i in range(n)
            ),
            dtype=bool,
            count=n,
        )
