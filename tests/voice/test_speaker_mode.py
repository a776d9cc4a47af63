"""``speakers="auto"`` on stereo: two legs only when two channels carry different signals. A
silent second channel, or mono saved twice a sample apart, is one conversation to diarize.
Built from the real two-party phone call bundled with pyannote.audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.server.harness import bundled_sample
from voice.audio import Audio, AudioInfo
from voice.batch import pipeline
from voice.batch.options import TranscribeOptions
from voice.batch.pipeline import _correlation, _speaker_mode

pytestmark = pytest.mark.unit

RATE = 16000


def _phone_call() -> np.ndarray:
    samples, rate = sf.read(bundled_sample()[0], dtype="float32")
    assert rate == RATE
    return np.asarray(samples)


def _stereo(left: np.ndarray, right: np.ndarray) -> Audio:
    samples = np.stack([left, right]).astype(np.float32)
    return Audio(samples, RATE, AudioInfo("call.wav", "wav", RATE, 2, samples.shape[1] / RATE))


def _mode(audio: Audio) -> str:
    return _speaker_mode(audio, TranscribeOptions())


@pytest.mark.parametrize("silent", [0, 1])
def test_one_silent_channel_is_diarized_from_the_other(silent: int) -> None:
    call = _phone_call()
    legs = [call, call]
    legs[silent] = np.zeros_like(call)
    audio = _stereo(*legs)
    assert _mode(audio) == "diarize"
    np.testing.assert_array_equal(pipeline._one_signal(audio), call)  # the live channel, not a halved mix


def test_a_channel_of_dither_only_counts_as_silent() -> None:
    call = _phone_call()
    dither = np.random.default_rng(0).integers(-1, 2, len(call)) / 32768  # +-1 LSB of 16 bit
    assert _mode(_stereo(call, dither)) == "diarize"


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_mono_saved_twice_a_few_samples_apart_is_one_recording(offset: int) -> None:
    call = _phone_call()
    audio = _stereo(call[offset:], call[: len(call) - offset])
    assert _mode(audio) == "diarize"
    if offset:  # unshifted, the copies fall below the threshold (0.957 at one sample)
        assert _correlation(audio.samples[0], audio.samples[1]) < 0.98


def test_two_different_legs_are_channels_even_when_one_speaks_briefly() -> None:
    call = _phone_call()
    half = len(call) // 2
    assert _mode(_stereo(call[:half], call[half:2 * half])) == "channels"
    # one word-length burst in a long quiet leg: far below the floor as an average over the call
    quiet = np.zeros(half, dtype=np.float32)
    quiet[RATE:RATE + RATE // 2] = call[half + 4 * RATE:half + 4 * RATE + RATE // 2]
    assert _mode(_stereo(call[:half], quiet)) == "channels"


def test_lagged_correlation_finds_the_shift_either_way() -> None:
    call = _phone_call()[: 4 * RATE]
    shifted = np.roll(call, 5)
    assert _correlation(call, shifted, block=1000) < 0.9
    assert _correlation(call, shifted, block=1000, max_lag=8) > 0.999
    assert _correlation(shifted, call, block=1000, max_lag=8) > 0.999
    assert _correlation(call, np.roll(call, 80), block=1000, max_lag=8) < 0.5  # 5 ms: an echo, not a copy
