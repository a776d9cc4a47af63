"""The offline diarization engine on real recordings: speaker counts, turns, DER bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diarize.errors import InvalidAudioError
from diarize.eval import der_components, whole_recording
from diarize.models import ModelNotFoundError
from diarize.pipeline import Diarizer, OfflineSpeakerDiarization
from diarize.rttm import read_rttm
from diarize.types import Diarization, DiarizationOptions
from voice.audio import load_audio

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def diarizer() -> Diarizer:
    return Diarizer.load()


@pytest.fixture(scope="module")
def sample(shared_data: Path) -> tuple[np.ndarray, int, Path]:
    folder = shared_data / "diarization" / "pyannote_sample_telephone"
    audio = load_audio(folder / "sample.wav")
    return audio.mono(), audio.sample_rate, folder / "sample.rttm"


@pytest.fixture(scope="module")
def sample_result(diarizer: Diarizer, sample: tuple[np.ndarray, int, Path]) -> Diarization:
    samples, rate, _ = sample
    return diarizer.diarize(samples, rate)


def test_the_default_pipeline_is_our_offline_subclass(diarizer: Diarizer) -> None:
    assert diarizer.name == "default"
    assert isinstance(diarizer._pipeline, OfflineSpeakerDiarization)
    assert diarizer.parameters["clustering"]["threshold"] > 0


def test_telephone_sample_has_two_speakers_and_low_der(
    sample: tuple[np.ndarray, int, Path], sample_result: Diarization
) -> None:
    _, _, rttm = sample
    assert sample_result.speakers == ("SPEAKER_00", "SPEAKER_01")
    assert sample_result.options == DiarizationOptions()
    starts = [turn.start for turn in sample_result.turns]
    assert starts == sorted(starts) and all(t.end > t.start for t in sample_result.turns)
    # the reference has no speech before 6.69 s; nor should we
    assert 6.0 < sample_result.turns[0].start < 7.5
    reference = read_rttm(rttm)["sample"]
    hypothesis = sample_result.to_annotation("sample")
    scores = der_components(reference, hypothesis, whole_recording("sample", 30.0))
    assert scores.der < 0.05, scores  # docs/results/diarization.md: plain pyannote 1.3 %
    assert set(sample_result.centroids) == set(sample_result.speakers)


def test_num_speakers_is_respected(
    diarizer: Diarizer, sample: tuple[np.ndarray, int, Path]
) -> None:
    samples, rate, _ = sample
    one = diarizer.diarize(samples, rate, DiarizationOptions(num_speakers=1))
    assert one.speakers == ("SPEAKER_00",)
    assert one.options.num_speakers == 1
    three = diarizer.diarize(samples, rate, DiarizationOptions(num_speakers=3))
    assert len(three.speakers) == 3


def test_an_8khz_phone_call_mixed_to_mono(diarizer: Diarizer, shared_data: Path) -> None:
    calls = shared_data / "diarization" / "spokenwoz_calls_8k"
    stereo, rate = sf.read(calls / "SNG0072.wav", dtype="float32")
    assert rate == 8000  # passed at its own rate: the engine resamples
    result = diarizer.diarize(stereo.mean(axis=1), rate, DiarizationOptions.telephone_call())
    assert len(result.speakers) == 2
    reference = read_rttm(calls / "SNG0072.derived.rttm")["SNG0072"]
    duration = len(stereo) / rate
    scores = der_components(
        reference, result.to_annotation("SNG0072"), whole_recording("SNG0072", duration)
    )
    assert scores.der < 0.25, scores
    assert result.turns[-1].end <= duration + 0.1


def test_a_pipeline_directory_names_its_class_and_parameters(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "pipeline:\n"
        "  name: diarize.pipeline.OfflineSpeakerDiarization\n"
        "  params:\n"
        "    constrained_assignment: true\n"
        "params:\n"
        "  segmentation: {min_duration_off: 0.25}\n"
        "  clustering: {method: average, threshold: 0.5, min_cluster_size: 3}\n"
    )
    loaded = Diarizer.load(str(tmp_path))
    assert loaded.name == str(tmp_path)
    assert loaded.parameters["clustering"] == {
        "method": "average", "threshold": 0.5, "min_cluster_size": 3
    }
    assert loaded.parameters["segmentation"]["min_duration_off"] == 0.25


def test_a_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.yaml"):
        Diarizer.load(str(tmp_path))


def test_silence_gives_no_turns(diarizer: Diarizer) -> None:
    result = diarizer.diarize(np.zeros(5 * 16000, dtype=np.float32))
    assert result.turns == () and result.speakers == ()


def test_stereo_input_is_refused_with_a_hint(diarizer: Diarizer) -> None:
    with pytest.raises(InvalidAudioError, match="mono"):
        diarizer.diarize(np.zeros((2, 16000), dtype=np.float32))
