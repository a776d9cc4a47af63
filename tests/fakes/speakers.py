"""Tone "voices" and an embedding model that tells them apart, for online speaker attribution.

:class:`BandEnergyEmbedder` implements ``diarize.streaming.EmbeddingModel``: its embedding is
the clip's energy in 32 frequency bands, so two voices on tones in different bands are
orthogonal and a clip mixing them lies in between, as a real speaker embedding would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 16000
VOICES = {"agent": 300.0, "customer": 1300.0, "third": 2900.0}
"""Tone of each scripted voice (Hz), each in its own 250 Hz band."""


class BandEnergyEmbedder:
    """Energy per 250 Hz band of the clip (32 bands up to 8 kHz)."""

    sample_rate = RATE

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, audio: np.ndarray, sample_rate: int = RATE) -> np.ndarray:
        self.calls += 1
        spectrum = np.abs(np.fft.rfft(audio, n=len(audio))) ** 2
        edges = np.linspace(0, sample_rate / 2, 33)
        freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate)
        bands = [
            spectrum[(freqs >= lo) & (freqs < hi)].sum()
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
        return np.asarray(bands, dtype=np.float32) + 1e-9


@dataclass(frozen=True)
class Said:
    """One stretch of a scripted call: ``voice`` (or ``None`` for a pause) for ``seconds``."""

    voice: str | None
    seconds: float


def speak(script: list[Said], rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Float32 audio of a scripted call: tremolo tones over a -70 dBFS noise floor."""
    rng = np.random.default_rng(seed)
    parts = []
    for said in script:
        n = round(said.seconds * rate)
        t = np.arange(n) / rate
        noise = rng.normal(0.0, 10 ** (-70 / 20), n)
        if said.voice is None:
            parts.append(noise)
        else:
            tremolo = 0.75 + 0.25 * np.sin(2 * np.pi * 4.0 * t)
            parts.append(0.3 * tremolo * np.sin(2 * np.pi * VOICES[said.voice] * t) + noise)
    return np.concatenate(parts).astype(np.float32)


def spans(script: list[Said]) -> list[tuple[float, float, str]]:
    """``(start, end, voice)`` of each voiced stretch of ``script``."""
    out, clock = [], 0.0
    for said in script:
        if said.voice is not None:
            out.append((round(clock, 3), round(clock + said.seconds, 3), said.voice))
        clock += said.seconds
    return out
