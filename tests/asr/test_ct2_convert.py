"""CTranslate2 -> torch conversion of tiny.en: same logits and words as faster-whisper, and the
int8 transfer file keeps the transcript (real weights, JFK clip)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.ct2_convert import (
    Ct2FormatError,
    WhisperWeights,
    hf_whisper_model,
    load_transfer,
    read_ct2_model,
    save_transfer,
)
from asr.models import ModelNotFoundError, resolve_whisper_model
from asr.torch_backend import TorchBackendConfig, TorchWhisperDecoder
from asr.torch_whisper import KVCache, WhisperTorch, log_mel_batch, mel_filters
from asr.types import AsrOptions
from voice.audio import load_audio

pytestmark = pytest.mark.model

GREEDY = AsrOptions(beam_size=1)


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        return resolve_whisper_model("tiny.en")
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def weights(model_dir: Path) -> WhisperWeights:
    return read_ct2_model(model_dir)


@pytest.fixture(scope="module")
def jfk(shared_data: Path) -> np.ndarray:
    return load_audio(shared_data / "asr" / "jfk" / "jfk.flac").mono()


@pytest.fixture(scope="module")
def torch_words(weights: WhisperWeights, jfk: np.ndarray) -> Iterator[list]:
    previous = torch.get_num_threads()  # process-wide: restored when the module is done
    torch.set_num_threads(2)
    try:
        decoder = TorchWhisperDecoder(weights, TorchBackendConfig(device="cpu"))
        yield decoder.transcribe_windows([jfk], [None], [GREEDY])[0].words
    finally:
        torch.set_num_threads(previous)


def test_dimensions_and_names_follow_hugging_face(weights: WhisperWeights) -> None:
    dims = weights.dims
    assert (dims.n_vocab, dims.n_audio_state, dims.n_audio_layer, dims.n_text_head) == (
        51864,
        384,
        4,
        6,
    )
    assert weights.state["model.decoder.layers.3.encoder_attn.k_proj.weight"].shape == (384, 384)
    assert "model.encoder.layers.0.self_attn.k_proj.bias" not in weights.state
    assert sum(v.size for v in weights.state.values()) == pytest.approx(37.76e6, rel=1e-3)


def test_hugging_face_model_and_torch_model_give_the_same_logits(
    weights: WhisperWeights, jfk: np.ndarray
) -> None:
    tokens = torch.tensor([[50257, 50362, 843, 523, 616, 5891, 7840]])
    mel, _ = log_mel_batch([jfk[:48000]], torch.from_numpy(mel_filters(80)), torch.device("cpu"))
    hf = hf_whisper_model(weights)
    model = WhisperTorch.from_weights(weights, "cpu", torch.float32)
    with torch.inference_mode():
        expected = hf(input_features=mel, decoder_input_ids=tokens).logits
        cross = model.decoder.cross_kv(model.encoder(mel))
        length = tokens.shape[1]
        mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None]
        cache = KVCache.empty(model.dims, 1, length, mel)
        hidden, _ = model.decoder(tokens, torch.arange(length)[None], cache, 0, mask, cross)
        got = model.decoder.logits(hidden)
    assert torch.allclose(got, expected, atol=1e-4)


def test_logits_agree_with_ctranslate2(
    weights: WhisperWeights, model_dir: Path, jfk: np.ndarray
) -> None:
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim

    reference = WhisperModel(str(model_dir), device="cpu", compute_type="float32", cpu_threads=2)
    features = pad_or_trim(reference.feature_extractor(jfk))[None].astype(np.float32)
    result = reference.model.generate(
        ctranslate2.StorageView.from_array(features),
        [[50257, 50362]],
        beam_size=1,
        return_logits_vocab=True,
    )[0]
    ct2_logits = np.array([np.array(step) for step in result.logits[0]])
    model = WhisperTorch.from_weights(weights, "cpu", torch.float32)
    tokens = torch.tensor([[50257, 50362, *result.sequences_ids[0]]])
    mel, _ = log_mel_batch([jfk], torch.from_numpy(mel_filters(80)), torch.device("cpu"))
    assert np.abs(mel[0].numpy() - features[0]).max() < 1e-4
    with torch.inference_mode():
        cross = model.decoder.cross_kv(model.encoder(mel))
        length = tokens.shape[1]
        mask = torch.ones(length, length, dtype=torch.bool).tril()[None, None]
        hidden, _ = model.decoder(
            tokens,
            torch.arange(length)[None],
            KVCache.empty(model.dims, 1, length, mel),
            0,
            mask,
            cross,
        )
        ours = model.decoder.logits(hidden)[0, 1 : 1 + len(ct2_logits)].numpy()
    kept = ct2_logits > -1e30  # CTranslate2 reports suppressed tokens as -FLT_MAX
    assert np.abs(ours - ct2_logits)[kept].max() < 1e-3
    assert (ours.argmax(-1)[: len(result.sequences_ids[0])] == result.sequences_ids[0]).all()


def test_converted_model_transcribes_jfk_like_faster_whisper(
    model_dir: Path, jfk: np.ndarray, torch_words: list
) -> None:
    from faster_whisper import WhisperModel

    reference = WhisperModel(str(model_dir), device="cpu", compute_type="float32", cpu_threads=2)
    segments, _ = reference.transcribe(
        jfk,
        beam_size=1,
        temperature=0.0,
        without_timestamps=True,
        word_timestamps=True,
        condition_on_previous_text=False,
    )
    expected = [w for s in segments for w in s.words]
    assert [w.text for w in torch_words] == [w.word.strip() for w in expected]
    for ours, theirs in zip(torch_words, expected, strict=True):
        assert ours.start == pytest.approx(theirs.start, abs=0.041)
        assert ours.end == pytest.approx(theirs.end, abs=0.041)
        assert ours.probability == pytest.approx(theirs.probability, abs=0.05)


def test_int8_transfer_round_trip_keeps_the_transcript(
    weights: WhisperWeights, jfk: np.ndarray, torch_words: list, tmp_path: Path
) -> None:
    path = tmp_path / "tiny.en.int8.safetensors"
    size = save_transfer(weights, path, bits=8)
    assert size < 40e6  # fits the device's 64 MiB carry with room for code and audio
    loaded = load_transfer(path)
    assert loaded.dims == weights.dims and loaded.config == weights.config
    for name, value in weights.state.items():  # int8 per row: error within half a step
        bound = np.abs(value).max(axis=tuple(range(1, value.ndim)), keepdims=True) / 254 + 1e-3
        assert (np.abs(loaded.state[name] - value) <= bound).all() if value.ndim > 1 else True
    decoder = TorchWhisperDecoder(loaded, TorchBackendConfig(device="cpu"))
    words = decoder.transcribe_windows([jfk], [None], [GREEDY])[0].words
    assert [w.text for w in words] == [w.text for w in torch_words]


def test_a_file_that_is_not_a_whisper_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99))
    with pytest.raises(Ct2FormatError, match="binary version 99"):
        read_ct2_model(tmp_path)
    (tmp_path / "other.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(Ct2FormatError, match="not a nextline-whisper-transfer"):
        load_transfer(tmp_path / "other.safetensors")
