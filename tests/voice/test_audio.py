"""Audio in: every container, rate and channel layout the archive may hold, and bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voice.audio import RawFormat, load_audio
from voice.errors import AudioDecodeError

pytestmark = pytest.mark.data


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_flac_44k_stereo_is_resampled_to_16k_and_keeps_channels(shared_data: Path) -> None:
    audio = load_audio(shared_data / "asr/jfk/jfk.flac")
    assert audio.info.sample_rate == 44100 and audio.info.channels == 2
    assert audio.sample_rate == 16000 and audio.num_channels == 2
    assert audio.duration == pytest.approx(11.0, abs=0.05)
    assert _rms(audio.mono()) > 0.01


def test_float32_wav_reads_where_the_stdlib_cannot(shared_data: Path) -> None:
    audio = load_audio(shared_data / "diarization/ami_debug_excerpts/dev00.wav")
    assert "float" in audio.info.format
    assert audio.duration == pytest.approx(30.0, abs=0.1)


def test_8k_telephone_wav_and_opus(shared_data: Path) -> None:
    calls = shared_data / "diarization/spokenwoz_calls_8k"
    wav = load_audio(calls / "SNG0072.wav")
    assert wav.info.sample_rate == 8000 and wav.num_channels == 2
    # the two legs are different people: their envelopes differ
    assert not np.allclose(wav.channel(0)[:16000], wav.channel(1)[:16000])
    opus = load_audio(calls / "MUL1011.opus")
    assert opus.duration == pytest.approx(182.8, abs=0.5)


def test_raw_pcm_needs_an_explicit_rate(shared_data: Path) -> None:
    path = shared_data / "asr/pocketsphinx_goforward/goforward.raw"
    with pytest.raises(AudioDecodeError, match="raw-rate"):
        load_audio(path)
    audio = load_audio(path, raw=RawFormat(16000))
    assert audio.duration == pytest.approx(2.79, abs=0.01)


def test_mp3_and_48k_ogg_written_from_real_speech(shared_data: Path, tmp_path: Path) -> None:
    clip = shared_data / "asr/librivox_sense_and_sensibility/sense_and_sensibility_01_austen_64kb-0870.wav"
    speech, rate = sf.read(clip)
    from voice.audio import resample

    up = resample(speech.astype(np.float32), rate, 48000)
    sf.write(tmp_path / "call.ogg", up, 48000, format="OGG", subtype="OPUS")
    sf.write(tmp_path / "call.mp3", speech, rate, format="MP3")
    for name in ("call.ogg", "call.mp3"):
        audio = load_audio(tmp_path / name)
        assert audio.sample_rate == 16000
        assert audio.duration == pytest.approx(len(speech) / rate, abs=0.1)
        assert _rms(audio.mono()) > 0.01


def test_unsigned_8_bit_pcm_through_ffmpeg_is_centred_and_full_scale(shared_data: Path, tmp_path: Path) -> None:
    import av

    clip = shared_data / "asr/librivox_sense_and_sensibility/sense_and_sensibility_01_austen_64kb-0870.wav"
    speech, rate = sf.read(clip, dtype="float32")
    assert rate == 16000  # no resampling: the decoded samples are the stored ones
    u8 = np.clip(np.round(np.stack([speech, -speech]) * 128) + 128, 0, 255).astype(np.uint8)
    path = tmp_path / "call.mov"  # pcm_u8 in MOV goes through FFmpeg, not libsndfile
    with av.open(str(path), "w", format="mov") as out:
        stream = out.add_stream("pcm_u8", rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(u8.T).reshape(1, -1), format="u8", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    audio = load_audio(path)
    assert audio.info.format.endswith("pcm_u8")
    np.testing.assert_array_equal(audio.samples, (u8.astype(np.float32) - 128) / 128)
    assert abs(float(audio.samples.mean())) < 1e-3 and _rms(audio.samples[0]) == pytest.approx(_rms(speech), rel=0.05)


def test_bad_files_raise_a_clear_error(shared_data: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio at all\n" * 20)
    table = tmp_path / "table.wav"
    shutil.copy(shared_data / "asr/asterisk_prompts_8k/transcription.tsv", table)
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes((shared_data / "diarization/pyannote_sample_telephone/sample.wav").read_bytes()[:44])
    for path, reason in ((empty, "empty"), (text, "not a readable audio"), (table, "not a readable audio"),
                         (header_only, "not a readable audio|no samples"), (tmp_path / "missing.wav", "no such file")):
        with pytest.raises(AudioDecodeError, match=reason):
            load_audio(path)


def test_a_wav_cut_short_yields_the_audio_that_is_there(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "diarization/pyannote_sample_telephone/sample.wav"
    cut = tmp_path / "cut.wav"
    data = source.read_bytes()
    cut.write_bytes(data[: len(data) // 3])  # the header still claims 30 s
    with pytest.raises(AudioDecodeError, match="truncated"):
        load_audio(cut)  # an archive must not take it for a finished 10 s call
    audio = load_audio(cut, allow_truncated=True)
    assert 9.0 < audio.duration < 11.0


def test_nan_and_inf_samples_of_a_float_wav_become_silence(shared_data: Path, tmp_path: Path) -> None:
    # One corrupt sample used to spread over ~1,600 samples in the resampler; the VAD and
    # Whisper then gave nothing for the whole channel.
    data, rate = sf.read(shared_data / "diarization/spokenwoz_calls_8k/SNG0072.wav",
                         dtype="float32", always_2d=True, frames=8000 * 5)
    sf.write(tmp_path / "clean.wav", data, rate, subtype="FLOAT")
    data[8000, 0], data[16000, 1] = np.nan, -np.inf
    sf.write(tmp_path / "corrupt.wav", data, rate, subtype="FLOAT")
    clean, corrupt = load_audio(tmp_path / "clean.wav"), load_audio(tmp_path / "corrupt.wav")
    assert np.isfinite(corrupt.samples).all()
    assert np.abs(corrupt.samples - clean.samples).max() < 0.5


def _one_shot(path: Path, rate: int = 16000) -> np.ndarray:
    """The whole file read at once and resampled in one soxr call: what decoding in blocks must equal."""
    import soxr

    data, source_rate = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(soxr.resample(data, source_rate, rate).T)


@pytest.mark.parametrize("name", ["8k_stereo.wav", "44k_stereo.flac", "48k_mono.wav", "44k_stereo.mp3"])
def test_decoding_in_blocks_equals_one_resample_of_the_whole_file(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    import soxr

    from voice import audio as audio_module

    call = shared_data / "diarization/spokenwoz_calls_8k/SNG0072.wav"  # 101.7 s, 8 kHz stereo
    sources = {"8k_stereo.wav": call, "44k_stereo.flac": shared_data / "asr/jfk/jfk.flac"}
    path = sources.get(name, tmp_path / name)
    if name not in sources:  # real speech at the rates and containers a recorder may write
        speech, _ = sf.read(call, dtype="float32", always_2d=True, frames=8000 * 12)
        rate = int(name[:2]) * 1000 + (100 if name.startswith("44") else 0)
        up = soxr.resample(speech, 8000, rate)
        sf.write(path, up[:, :1] if "mono" in name else up, rate)
    monkeypatch.setattr(audio_module, "DECODE_BLOCK_SECONDS", 1.37)  # many joins, a partial last block
    decoded = load_audio(path)
    expected = _one_shot(path)
    assert decoded.samples.shape == expected.shape
    assert decoded.samples.flags.c_contiguous
    # measured: identical (0.0) on every file here; soxr's stream carries its state across blocks
    assert np.abs(decoded.samples - expected).max() <= 1e-6


@pytest.mark.parametrize("frames", [1, 3999, 4000, 3 * 4000 + 123])
@pytest.mark.parametrize("container", ["wav", "raw"])
def test_the_block_reader_keeps_a_last_partial_block(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames: int, container: str
) -> None:
    from voice import audio as audio_module

    pcm, rate = sf.read(shared_data / "diarization/spokenwoz_calls_8k/SNG0072.wav", dtype="int16",
                        always_2d=True, start=8000 * 10, frames=frames)
    wav = tmp_path / "call.wav"
    sf.write(wav, pcm, rate, subtype="PCM_16")
    path = wav
    if container == "raw":
        path = tmp_path / "call.raw"
        path.write_bytes(pcm.astype("<i2").tobytes() + b"\x01")  # a stray byte: not a whole frame
    monkeypatch.setattr(audio_module, "DECODE_BLOCK_SECONDS", 0.5)  # 4,000 frames at 8 kHz
    decoded = load_audio(path, raw=RawFormat(rate, channels=2))
    expected = _one_shot(wav)
    assert decoded.info.channels == 2 and decoded.info.duration == frames / rate
    assert decoded.samples.shape == expected.shape
    assert np.abs(decoded.samples - expected).max() <= 1e-6


@pytest.mark.parametrize("expected_frames", [0, 1000, 123457, 126000, 400000, 10**15])
def test_the_result_grows_or_is_trimmed_when_the_decoder_only_estimated_the_length(expected_frames: int) -> None:
    import soxr

    from voice.audio import _Resampled

    samples = (np.random.default_rng(1).standard_normal((123457, 2)) * 0.1).astype(np.float32)
    sink = _Resampled(2, 44100, 16000, expected_frames)  # FFmpeg and MP3 lengths are estimates
    for start in range(0, len(samples), 5000):
        sink.push(samples[start:start + 5000])
    result = sink.finish()
    assert result.flags.c_contiguous
    assert np.array_equal(result, soxr.resample(samples, 44100, 16000).T)


def test_a_complete_mp3_is_not_taken_for_a_truncated_one(shared_data: Path, tmp_path: Path) -> None:
    # Without a Xing/Info header libsndfile guesses an MP3's length from the file size, and an
    # ID3v2 tag (cover art) in front counts as audio: a complete file looked truncated. With the
    # header the length is exact, and a file cut short is still refused.
    clip = shared_data / "asr/librivox_sense_and_sensibility/sense_and_sensibility_01_austen_64kb-0870.wav"
    speech, rate = sf.read(clip)
    sf.write(tmp_path / "vbr.mp3", speech, rate, format="MP3", bitrate_mode="VARIABLE")
    data = (tmp_path / "vbr.mp3").read_bytes()
    assert b"Xing" in data[:4096]
    second = data.index(data[:2], 4)  # the next frame's sync: the first frame is the Xing header
    size = 300_000
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    frame = b"APIC" + (size - 10).to_bytes(4, "big") + b"\x00\x00" + b"\x00image/jpeg\x00\x03\x00"
    tag = b"ID3\x03\x00\x00" + syncsafe + frame + b"\xab" * (size - len(frame))
    (tmp_path / "cover.mp3").write_bytes(tag + data[second:])
    for name in ("cover.mp3", "vbr.mp3"):
        assert load_audio(tmp_path / name).duration == pytest.approx(len(speech) / rate, abs=0.15)
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 3])
    with pytest.raises(AudioDecodeError, match="truncated"):
        load_audio(tmp_path / "cut.mp3")
