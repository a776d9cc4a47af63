"""The trimmed encoder window: partials may encode a shorter window than finals, per decode."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager

import numpy as np
import pytest

from asr.live import FINAL_TRIM, PARTIAL_TRIM, EncoderTrim, _trim, _trim_padding, trimmed_to
from asr.turn_decoding import DecodeRequest, WhisperTurnDecoder
from asr.types import AsrOptions
from voice.errors import ConfigError
from voice.live.asr_runtime import partial_window

pytestmark = pytest.mark.unit


def features(voiced_frames: int, total: int = 3000) -> np.ndarray:
    """Log-mel features as faster-whisper pads them: real frames, then exact zeros."""
    out = np.zeros((80, total), dtype=np.float32)
    out[:, :voiced_frames] = np.random.default_rng(0).normal(size=(80, voiced_frames)) + 0.1
    return out


@pytest.mark.parametrize(("voiced", "trim", "kept"), [
    (300, FINAL_TRIM, 2000),      # 3 s of audio: the 20 s minimum
    (300, PARTIAL_TRIM, 1200),    # the partial's 12 s minimum
    (700, PARTIAL_TRIM, 1500),    # 7 s of audio + 8 s of padding
    (1500, FINAL_TRIM, 2500),     # 15 s + 10 s
    (2600, FINAL_TRIM, 3000),     # never more than the window
    (451, EncoderTrim(5.0, 1.0), 552),  # even: the encoder's stride-2 convolution
])
def test_window_keeps_padding_after_the_audio(voiced: int, trim: EncoderTrim, kept: int) -> None:
    assert _trim_padding(features(voiced), trim).shape[-1] == kept


class RecordingEngine:
    """Stands in for WhisperEngine: records which trim each decode ran under."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, EncoderTrim]] = []

    def transcribe_turn(self, audio: np.ndarray, options: AsrOptions = AsrOptions(), *,  # noqa: B008
                        prompt: str | None = None) -> object:
        self.seen.append((options.beam_size, _trim.get()))
        return type("Result", (), {"words": ()})()


def test_decoder_enters_the_partial_window_only_for_partials() -> None:
    engine = RecordingEngine()
    around = partial_window("12,8")
    decoder = WhisperTurnDecoder(engine, final=AsrOptions(beam_size=5), around=around)
    audio = np.zeros(16000, dtype=np.float32)
    decoder.decode_batch([DecodeRequest(audio, 0.0, None, False, 0), DecodeRequest(audio, 0.0, None, True, 0)])
    assert engine.seen == [(1, EncoderTrim(12.0, 8.0)), (5, FINAL_TRIM)]
    assert _trim.get() == FINAL_TRIM  # restored after the decode


def test_the_window_is_per_thread() -> None:
    seen: list[EncoderTrim] = []
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        inside.wait(5)
        seen.append(_trim.get())
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with trimmed_to(PARTIAL_TRIM):
        inside.set()
        release.wait(5)
        seen.append(_trim.get())
    thread.join(5)
    assert seen == [FINAL_TRIM, PARTIAL_TRIM]


@pytest.mark.parametrize("setting", ["12", "a,b", "0,8", "12,8,4"])
def test_bad_setting_is_a_config_error(setting: str) -> None:
    with pytest.raises(ConfigError):
        partial_window(setting)


def test_finals_like_partials_when_asked() -> None:
    around = partial_window("20,10")
    context: AbstractContextManager[None] = around(False)
    with context:
        assert _trim.get() == FINAL_TRIM
