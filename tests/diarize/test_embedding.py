"""CAM++ speaker embeddings on real voices: the same speaker is closer than another speaker."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diarize.embedding import SpeakerEmbedder, cosine_similarity, resample
from diarize.errors import InvalidAudioError
from diarize.rttm import read_rttm
from voice.audio import load_audio

pytestmark = pytest.mark.model

SENTENCES = [
    "Thank you for calling, my name is Alex, how can I help you today?",
    "I can see the payment of forty dollars went through on the third of March.",
    "Let me transfer you to the billing department, please stay on the line.",
]


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    return SpeakerEmbedder.load()


def _espeak(voice: str, text: str) -> tuple[np.ndarray, int]:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True
    ).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return samples, rate


def _same_and_cross(embeddings: dict[str, list[np.ndarray]]) -> tuple[list[float], list[float]]:
    (first, a), (second, b) = embeddings.items()
    same = [cosine_similarity(x[i], x[j]) for x in (a, b)
            for i in range(len(x)) for j in range(i + 1, len(x))]
    cross = [cosine_similarity(x, y) for x in a for y in b]
    return same, cross


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_two_espeak_voices_are_told_apart(embedder: SpeakerEmbedder) -> None:
    embeddings: dict[str, list[np.ndarray]] = {}
    for voice in ("en-us", "en-us+f3"):
        clips = [_espeak(voice, text) for text in SENTENCES]
        # espeak-ng speaks at 22.05 kHz: embed() resamples to the model's 16 kHz
        embeddings[voice] = [embedder.embed(samples, rate) for samples, rate in clips]
    same, cross = _same_and_cross(embeddings)
    assert min(same) > max(cross), (same, cross)


def test_the_two_parties_of_a_phone_call_are_told_apart(
    embedder: SpeakerEmbedder, shared_data: Path
) -> None:
    calls = shared_data / "diarization" / "spokenwoz_calls_8k"
    audio = load_audio(calls / "SNG0072.wav")  # 8 kHz stereo: A on the left, B on the right
    turns = read_rttm(calls / "SNG0072.derived.rttm")["SNG0072"]
    embeddings: dict[str, list[np.ndarray]] = {}
    for channel, party in enumerate(("A", "B")):
        longest = sorted(turns.label_timeline(party), key=lambda s: -s.duration)[:3]
        assert len(longest) == 3 and longest[-1].duration > 2.0
        leg = audio.channel(channel)
        embeddings[party] = [
            embedder.embed(leg[int(s.start * audio.sample_rate):int(s.end * audio.sample_rate)])
            for s in longest
        ]
    same, cross = _same_and_cross(embeddings)
    assert min(same) > max(cross), (same, cross)


def test_pyannote_interface_masks_frames_and_marks_empty_masks(embedder: SpeakerEmbedder) -> None:
    samples, rate = _espeak("en-us", SENTENCES[0])
    clip = embedder.embed(samples, rate)
    waveform = torch.from_numpy(resample(samples, rate, embedder.sample_rate))
    batch = waveform[None, None].repeat(3, 1, 1)
    masks = torch.zeros(3, 589)
    masks[0] = 1.0  # all frames: the same as embedding the clip
    masks[1, :200] = 1.0  # the first third only
    out = embedder(batch, masks=masks)
    assert out.shape == (3, embedder.dimension)
    assert cosine_similarity(out[0], clip) == pytest.approx(1.0, abs=1e-4)
    assert 0.3 < cosine_similarity(out[1], clip) < 0.9999
    assert np.isnan(out[2]).all()  # a speaker who never speaks gets no embedding


def test_batches_of_equal_length_match_single_clips(embedder: SpeakerEmbedder) -> None:
    rng = np.random.default_rng(0)
    samples, rate = _espeak("en-us+f3", SENTENCES[1])
    clip = samples[: 2 * rate]
    clips = [clip, clip * 0.5 + rng.normal(0, 1e-3, clip.shape).astype(np.float32)]
    batch = embedder.embed_batch(clips, rate)
    assert batch.shape == (2, embedder.dimension)
    assert np.allclose(batch[0], embedder.embed(clip, rate), atol=1e-4)
    uneven = embedder.embed_batch([clip, clip[: rate]], rate)
    assert np.allclose(uneven[1], embedder.embed(clip[:rate], rate), atol=1e-4)


def test_unusable_input_raises_with_a_hint(embedder: SpeakerEmbedder) -> None:
    with pytest.raises(InvalidAudioError, match="mono"):
        embedder.embed(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(InvalidAudioError, match="shorter"):
        embedder.embed(np.zeros(100, dtype=np.float32))
