"""Log-mel features of long audio computed in blocks (asr.engine.BlockwiseLogMel) on a real call:
faster-whisper's features and words, in bounded memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from asr import AsrOptions, WhisperEngine
from asr import engine as engine_module
from asr.engine import BlockwiseLogMel
from voice.audio import Audio, load_audio
from voice.vad import detect_speech

pytestmark = pytest.mark.model

HOP = 160


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return WhisperEngine.load("tiny.en")


@pytest.fixture(scope="module")
def call(shared_data: Path) -> Audio:
    """A real 8 kHz stereo call (102 s, many turns per leg), at 16 kHz."""
    return load_audio(shared_data / "diarization" / "spokenwoz_calls_8k" / "SNG0072.wav")


@pytest.fixture(scope="module")
def call_leg(call: Audio) -> np.ndarray:
    return call.channel(0)


def test_features_in_blocks_are_faster_whispers(
    call_leg: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = 1237
    monkeypatch.setattr(engine_module, "_MEL_BLOCK_FRAMES", block)
    stock = FeatureExtractor()
    blockwise = BlockwiseLogMel(stock)
    shortest = 2 * block * HOP  # the shortest input computed in blocks
    for length in (len(call_leg), len(call_leg) - 37, shortest, shortest + 1, shortest + HOP + 1):
        expected = stock(call_leg[:length])
        got = blockwise(call_leg[:length])
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected, err_msg=str(length))  # bit for bit


@pytest.mark.parametrize("channel", [0, 1])
def test_a_long_call_gives_the_same_words_as_from_whole_features(
    engine: WhisperEngine, call: Audio, channel: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    extractor = engine.whisper_model.feature_extractor
    assert isinstance(extractor, BlockwiseLogMel)
    monkeypatch.setattr(engine_module, "_MEL_BLOCK_FRAMES", 500)  # 5 s blocks over ~35 s of speech
    call_leg = call.channel(channel)
    speech = [(r.start, r.end) for r in detect_speech(call_leg)]
    assert len(speech) >= 10
    # Beam 5, the batch default: greedy tiny.en collapses this call's second leg's first window
    # into two words on AVX-512 VNNI CPUs (19 words in all; 80 with beam 5), so the comparison
    # would rest on little text there.
    options = AsrOptions(language="en", beam_size=5, word_timestamps=True)
    in_blocks = engine.transcribe(call_leg, options, speech=speech)
    monkeypatch.setattr(engine.whisper_model, "feature_extractor", extractor._extractor)
    whole = engine.transcribe(call_leg, options, speech=speech)
    assert len(whole.words) >= 50
    assert in_blocks.segments == whole.segments  # words, times, probabilities


def test_features_of_long_audio_take_bounded_memory(
    engine: WhisperEngine, call_leg: np.ndarray
) -> None:
    five_minutes = np.tile(call_leg, 3)
    tracemalloc.start()
    try:
        features = engine.whisper_model.feature_extractor(five_minutes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert features.shape == (80, len(five_minutes) // HOP + 1)
    # measured: 57 MiB (the 23 MiB power spectrum, the 9 MiB result, one 30 s block);
    # faster-whisper's whole-input path: 299 MiB.
    assert peak < 4 * five_minutes.nbytes
