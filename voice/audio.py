"""Audio in: decode any common file, keep channels as call legs, resample to 16 kHz with soxr.

Leaf module (imports nothing of ours but ``voice.errors``). Decoding goes through libsndfile
(``soundfile``: WAV incl. 32-bit float, FLAC, Ogg Vorbis/Opus, MP3) and falls back to FFmpeg
through PyAV for other containers (M4A, WebM, ...). Headerless PCM needs an explicit rate.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from voice.errors import AudioDecodeError

TARGET_RATE = 16000
RAW_SUFFIXES = {".raw", ".pcm", ".s16", ".sln"}
_SIZE_MISMATCH = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
"""libsndfile's report of an audio chunk whose header size differs from what the file holds."""
_STREAMED_SIZES = {0, 0x7FFFFFFF, 0xFFFFFFFF}
"""Placeholder sizes of WAVs written as a stream (header never finalised): not truncation."""


@dataclass(frozen=True)
class RawFormat:
    """How to read headerless PCM (signed 16-bit little-endian)."""

    sample_rate: int
    channels: int = 1


@dataclass(frozen=True)
class AudioInfo:
    """What the file was before resampling; recorded in every transcript."""

    path: str
    format: str
    sample_rate: int
    channels: int
    duration: float


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is float32 in [-1, 1], shape (channels, frames), 16 kHz."""

    samples: np.ndarray
    sample_rate: int
    info: AudioInfo

    @property
    def num_channels(self) -> int:
        """Number of channels (legs) kept from the file."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[1] / self.sample_rate

    def mono(self) -> np.ndarray:
        """All channels mixed down to one (float32, 16 kHz)."""
        if self.num_channels == 1:
            return self.samples[0]
        return self.samples.mean(axis=0).astype(np.float32)

    def channel(self, index: int) -> np.ndarray:
        """One leg, as float32 at 16 kHz."""
        if not 0 <= index < self.num_channels:
            raise AudioDecodeError(
                f"{self.info.path}: no channel {index} (the file has {self.num_channels})",
                hint="pick a channel between 0 and channels-1",
            )
        return self.samples[index]


def load_audio(path: str | Path, *, raw: RawFormat | None = None, target_rate: int = TARGET_RATE,
               allow_truncated: bool = False) -> Audio:
    """Decode a file into float32 channels at ``target_rate``.

    ``raw`` describes headerless PCM; it is used for ``.raw``/``.pcm``/``.s16``/``.sln`` files
    only, so one batch can mix them with ordinary containers. ``allow_truncated`` returns the
    audio a WAV/AIFF cut short still holds instead of failing (salvage, not archiving).

    Raises:
        AudioDecodeError: the file is missing, empty, truncated, not audio, or headerless PCM
            without ``raw``.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty")
    if path.suffix.lower() in RAW_SUFFIXES:
        if raw is None:
            raise AudioDecodeError(
                f"{path}: headerless PCM has no sample rate",
                hint="pass --raw-rate (and --raw-channels) for .raw/.pcm files",
            )
        data, rate, fmt = _read_raw(path, raw), raw.sample_rate, "raw-s16le"
    else:
        data, rate, fmt = _decode(path, allow_truncated)
    if data.shape[1] == 0:
        raise AudioDecodeError(f"{path}: the file decodes to no samples")
    info = AudioInfo(str(path), fmt, rate, data.shape[0], data.shape[1] / rate)
    return Audio(resample(_finite(data), rate, target_rate), target_rate, info)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample (channels, frames) or (frames,) float32 audio with soxr's high quality filter."""
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return soxr.resample(samples.astype(np.float32), from_rate, to_rate).astype(np.float32)
    out = soxr.resample(np.ascontiguousarray(samples.T, dtype=np.float32), from_rate, to_rate)
    return np.ascontiguousarray(np.atleast_2d(out.T), dtype=np.float32)


def int16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1)."""
    return pcm.astype(np.float32) / 32768.0


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16 PCM (clipped)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def _finite(samples: np.ndarray) -> np.ndarray:
    """Corrupt (NaN or infinite) samples of a float file as silence.

    measured: one NaN in a 20 s 8 kHz float WAV became 1,660 NaNs after resampling, and the VAD
    and Whisper then returned nothing for the whole channel.
    """
    bad = ~np.isfinite(samples)
    return np.where(bad, np.float32(0.0), samples) if bad.any() else samples


def _read_raw(path: Path, raw: RawFormat) -> np.ndarray:
    data = np.fromfile(path, dtype="<i2")
    usable = len(data) - len(data) % raw.channels
    return int16_to_float(data[:usable].reshape(-1, raw.channels).T)


def _decode(path: Path, allow_truncated: bool) -> tuple[np.ndarray, int, str]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            if not allow_truncated:
                _check_complete(path, f.extra_info, f.frames / f.samplerate if f.samplerate else 0.0)
            data = f.read(dtype="float32", always_2d=True)
            return np.ascontiguousarray(data.T), f.samplerate, f"{f.format}/{f.subtype}".lower()
    except (sf.LibsndfileError, RuntimeError):
        pass  # not a libsndfile format; FFmpeg may know it
    return _decode_with_ffmpeg(path)


def _check_complete(path: Path, extra_info: str, seconds: float) -> None:
    """Fail a file whose header promises more audio than it holds (a half-copied call).

    libsndfile reads what is there, so without this check a 30 s call cut at 0.6 s would be
    transcribed as a finished 0.6 s call and never retried.
    """
    match = _SIZE_MISMATCH.search(extra_info)
    if match is None:
        return
    declared, actual = int(match.group(1)), int(match.group(2))
    if declared in _STREAMED_SIZES or declared <= actual:
        return
    promised = f"{seconds * declared / actual:.1f} s" if actual else f"{declared} bytes of audio"
    raise AudioDecodeError(
        f"{path}: truncated: the header says {promised}, the file holds {seconds:.2f} s",
        hint="the copy or upload is incomplete; copy the file again, then re-run",
    )


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int, str]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path}: no audio stream", hint="is this an audio file?")
            stream = container.streams.audio[0]
            channels = stream.codec_context.channels or 1
            rate = stream.codec_context.sample_rate
            chunks = []
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    chunks.append(arr.astype(np.float32))
                else:
                    chunks.append(arr.reshape(-1, channels).T.astype(np.float32))
                scale = _int_scale(arr.dtype)
                if scale:
                    chunks[-1] /= scale
            fmt = f"{container.format.name}/{stream.codec_context.name}"
    except AudioDecodeError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt input
        raise AudioDecodeError(
            f"{path}: not a readable audio file ({type(exc).__name__}: {exc})",
            hint="check the file is complete; convert it with ffmpeg if the codec is exotic",
        ) from exc
    if not chunks:
        raise AudioDecodeError(f"{path}: the file decodes to no samples", hint="is it truncated?")
    return np.concatenate(chunks, axis=1), rate, fmt


def _int_scale(dtype: np.dtype) -> float | None:
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max) + 1.0
    return None


def safe_file_stem(name: str) -> str:
    """A call id or leg name as part of a file name (live recordings and their spool files)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:200]


def part_file_name(call_id: str, leg: str, rate: int) -> str:
    """The spool file of one leg of a live call: ``<call>.<leg>.<rate>hz.part.pcm``. The leg has no
    dots in it, so the name parses back unambiguously (:func:`spool_files`)."""
    return f"{safe_file_stem(call_id)}.{safe_file_stem(leg).replace('.', '_')}.{rate}hz.part.pcm"


def spool_manifest_path(audio_dir: Path, call_id: str) -> Path:
    """The manifest of a live call's spool: which part files it has, for recovery after a crash."""
    return audio_dir / f"{safe_file_stem(call_id)}.spool.json"


def spool_files(audio_dir: Path, call_id: str) -> list[Path]:
    """The files a live call's recorder writes until the call's WAV is assembled (part files and
    manifest); a process that died leaves them as the interrupted call's partial recording."""
    stem = safe_file_stem(call_id)
    # Why the pattern: a glob on "<stem>.*" would also take the files of a call whose id is this
    # one plus a dot and more (SIP Call-IDs are full of dots).
    part = re.compile(re.escape(stem) + r"\.[^.]+\.\d+hz\.part\.pcm")
    parts = sorted(p for p in audio_dir.glob(f"{glob.escape(stem)}.*.part.pcm") if part.fullmatch(p.name))
    manifest = spool_manifest_path(audio_dir, call_id)
    return parts + ([manifest] if manifest.exists() else [])
