"""Real stereo phone calls (SpokenWOZ: each party on its own channel, with crosstalk) keep the
per-channel speaker mode under ``speakers="auto"``."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice.audio import load_audio
from voice.batch.options import TranscribeOptions
from voice.batch.pipeline import _speaker_mode

pytestmark = pytest.mark.data


@pytest.mark.parametrize("call", ["MUL1423", "SNG0072", "SNG0480", "SNG0696"])
def test_spokenwoz_calls_are_transcribed_per_channel(shared_data: Path, call: str) -> None:
    audio = load_audio(shared_data / "diarization/spokenwoz_calls_8k" / f"{call}.wav")
    assert audio.num_channels == 2
    assert _speaker_mode(audio, TranscribeOptions()) == "channels"
