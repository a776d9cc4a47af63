"""One leg of a shared SpokenWOZ 8 kHz call and its reference words (CC BY-NC: evaluation only)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np


def spokenwoz_leg(shared_data: Path, call: str, seconds: float) -> tuple[np.ndarray, str]:
    """Speaker B's leg (right channel, 8 kHz int16) of the first ``seconds``, and its reference."""
    folder = shared_data / "diarization" / "spokenwoz_calls_8k"
    with wave.open(str(folder / f"{call}.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    words = json.loads((folder / f"{call}.json").read_text())
    ref = " ".join(w["word"] for w in words if w["speaker"] == "B" and w["end"] <= seconds)
    return np.ascontiguousarray(pcm[: int(seconds * 8000), 1]), ref
