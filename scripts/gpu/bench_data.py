"""The carried calls of the device benchmark: mu-law legs and their replayed VAD decisions.

Reads what ``scripts/gpu/prepare.py`` wrote (``calls.npz``, ``vad.json``) with numpy alone (and
SciPy when present): the device image has none of the CPU path's audio packages.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BEGIN, PAUSE, CLOSE = 0, 1, 2  # vad.json action codes (scripts/gpu/prepare.py)
RATE = 16000


# --- data -------------------------------------------------------------------------------------


@dataclass
class LegData:
    """One recorded leg: 16 kHz audio and its VAD decisions."""

    key: str
    audio: np.ndarray
    actions: list[list[float]]

    @property
    def duration(self) -> float:
        return len(self.audio) / RATE


def ulaw_to_float(codes: np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes -> float32 in [-1, 1] (the ITU expansion)."""
    u = ~codes.astype(np.int32) & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    pcm = np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84)
    return (pcm / 32768.0).astype(np.float32)


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample to 16 kHz (polyphase; linear interpolation if SciPy is missing)."""
    if rate == RATE:
        return samples
    try:
        from scipy.signal import resample_poly

        g = math.gcd(rate, RATE)
        return resample_poly(samples, RATE // g, rate // g).astype(np.float32)
    except ImportError:
        t = np.arange(round(len(samples) * RATE / rate)) * rate / RATE
        return np.interp(t, np.arange(len(samples)), samples).astype(np.float32)


def load_calls(folder: Path) -> list[tuple[LegData, LegData]]:
    """The carried calls: pairs of legs (A, B)."""
    timelines = json.loads((folder / "vad.json").read_text())["legs"]
    coded = np.load(folder / "calls.npz")
    calls = []
    for stem in sorted({k.rsplit("_", 1)[0] for k in timelines}):
        pair = []
        for side in ("A", "B"):
            key = f"{stem}_{side}"
            audio = to_16k(ulaw_to_float(coded[key]), int(timelines[key]["rate"]))
            pair.append(LegData(key, audio, timelines[key]["actions"]))
        calls.append((pair[0], pair[1]))
    return calls


def state_at(actions: list[list[float]], offset: float) -> tuple[int, bool]:
    """Index of the first VAD decision at or after ``offset``, and whether a turn is open then."""
    index, open_turn = 0, False
    while index < len(actions) and actions[index][0] < offset:
        kind = int(actions[index][1])
        if kind == BEGIN:
            open_turn = True
        elif kind == CLOSE:
            open_turn = False
        index += 1
    return index, open_turn
