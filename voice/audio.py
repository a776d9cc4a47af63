"""Audio in: decode any common file, keep channels as call legs, resample to 16 kHz with soxr.

Leaf module (imports nothing of ours but ``voice.errors``). Decoding goes through libsndfile
(``soundfile``: WAV incl. 32-bit float, FLAC, Ogg Vorbis/Opus, MP3) and falls back to FFmpeg
through PyAV for other containers (M4A, WebM, ...). Headerless PCM needs an explicit rate.

Every path decodes :data:`DECODE_BLOCK_SECONDS` at a time (MP3 is read whole, then cut: see
:func:`_sndfile_blocks`) into one soxr stream that writes into the 16 kHz result, allocated once:
decoding needs the result plus one block, not the whole file at its own rate and its copies.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from voice.errors import AudioDecodeError

TARGET_RATE = 16000
RAW_SUFFIXES = {".raw", ".pcm", ".s16", ".sln"}
_SIZE_MISMATCH = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
"""libsndfile's report of an audio chunk whose header size differs from what the file holds."""
_STREAMED_SIZES = {0, 0x7FFFFFFF, 0xFFFFFFFF}
"""Placeholder sizes of WAVs written as a stream (header never finalised): not truncation."""
DECODE_BLOCK_SECONDS = 20.0
"""Audio decoded and resampled at a time. measured (1 h of 8 kHz stereo PCM_16, peak RSS of
``load_audio`` over the interpreter's): 1,100 MiB read whole, 449 MiB in blocks (the 439 MiB
result plus one block)."""
_MAX_EXPECTED_SECONDS = 7 * 24 * 3600
"""A decoder's frame count beyond this is a placeholder for "unknown" (libsndfile reports
``SF_COUNT_MAX``), not a length to allocate."""


RAW_RATES = (8000, 192000)
"""Sample rates accepted for headerless PCM, Hz (CLI and upload API). Below 8 kHz is no phone
audio, and a typo such as 8 for 8000 would resample an hour of audio into 115 GB of samples."""
RAW_CHANNELS = (1, 8)
"""Interleaved channels accepted for headerless PCM (one per call leg)."""


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
        return self.samples.mean(axis=0, dtype=np.float32)  # float32 already: no copy to convert

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
        sink, rate, fmt = _read_raw(path, raw, target_rate), raw.sample_rate, "raw-s16le"
    else:
        sink, rate, fmt = _decode(path, allow_truncated, target_rate)
    if sink.frames_in == 0:
        raise AudioDecodeError(f"{path}: the file decodes to no samples")
    info = AudioInfo(str(path), fmt, rate, sink.channels, sink.frames_in / rate)
    return Audio(sink.finish(), target_rate, info)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample (channels, frames) or (frames,) float32 audio with soxr's high quality filter."""
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return soxr.resample(samples.astype(np.float32), from_rate, to_rate).astype(np.float32)
    out = soxr.resample(np.ascontiguousarray(samples.T, dtype=np.float32), from_rate, to_rate)
    return np.ascontiguousarray(np.atleast_2d(out.T), dtype=np.float32)


class _Resampled:
    """Blocks of (frames, channels) float32 at ``from_rate`` in, one (channels, n) float32 array at
    ``to_rate`` out.

    One soxr stream carries all channels, so the result is bit for bit a one-shot
    ``soxr.resample`` of the whole file (checked from 8 to 96 kHz, block joins included). The
    result is allocated once from ``expected_frames`` and grows only where that was an estimate.
    """

    def __init__(self, channels: int, from_rate: int, to_rate: int, expected_frames: int) -> None:
        self.channels = channels
        self.frames_in = 0
        self._stream = (
            None if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32")
        )
        expected = expected_frames if 0 <= expected_frames <= _MAX_EXPECTED_SECONDS * from_rate else 0
        self._out = np.empty((channels, _resampled_length(expected, from_rate, to_rate)), dtype=np.float32)
        self._filled = 0
        self._min_growth = _block_frames(to_rate)

    def push(self, block: np.ndarray) -> None:
        """Add (frames, channels) float32 samples; NaN and infinity become silence first."""
        self.frames_in += len(block)
        block = _finite(block)
        self._append(block if self._stream is None else self._stream.resample_chunk(block))

    def finish(self) -> np.ndarray:
        """Flush the resampler; the whole result, (channels, frames), C-contiguous."""
        if self._stream is not None:
            self._append(self._stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True))
            self._stream = None
        return _first_frames(self._out, self._filled)

    def _append(self, block: np.ndarray) -> None:
        end = self._filled + len(block)
        if end > self._out.shape[1]:
            grown = np.empty((self.channels, max(end, self._out.shape[1] * 3 // 2, self._min_growth)),
                             dtype=np.float32)
            grown[:, :self._filled] = self._out[:, :self._filled]
            self._out = grown
        self._out[:, self._filled:end] = block.T
        self._filled = end


def _resampled_length(frames: int, from_rate: int, to_rate: int) -> int:
    """soxr's output length for ``frames`` input frames: ``frames * to / from`` rounded half up."""
    return (2 * frames * to_rate + from_rate) // (2 * from_rate)


def _block_frames(rate: int) -> int:
    return max(1, round(DECODE_BLOCK_SECONDS * rate))


def _first_frames(out: np.ndarray, frames: int) -> np.ndarray:
    """The first ``frames`` of each row of ``out`` as a C-contiguous array: moved together inside
    ``out``'s buffer when the slack is small, so trimming an estimate never holds two results."""
    channels, capacity = out.shape
    if frames == capacity:
        return out
    if frames < capacity * 0.9:
        return np.ascontiguousarray(out[:, :frames])  # the estimate was far off: free the slack
    flat = out.reshape(-1)
    for row in range(1, channels):
        flat[row * frames:(row + 1) * frames] = flat[row * capacity:row * capacity + frames]
    return flat[:channels * frames].reshape(channels, frames)


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


def _read_raw(path: Path, raw: RawFormat, target_rate: int) -> _Resampled:
    frame_bytes = 2 * raw.channels
    frames = path.stat().st_size // frame_bytes
    sink = _Resampled(raw.channels, raw.sample_rate, target_rate, frames)
    block = _block_frames(raw.sample_rate)
    with path.open("rb") as f:
        for start in range(0, frames, block):
            pcm = np.fromfile(f, dtype="<i2", count=min(block, frames - start) * raw.channels)
            sink.push(int16_to_float(pcm.reshape(-1, raw.channels)))
    return sink


def _decode(path: Path, allow_truncated: bool, target_rate: int) -> tuple[_Resampled, int, str]:
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            if not allow_truncated:
                _check_complete(path, f.extra_info, f.frames / f.samplerate if f.samplerate else 0.0)
            sink = _Resampled(f.channels, f.samplerate, target_rate, f.frames)
            for block in _sndfile_blocks(f):
                sink.push(block)
            if not allow_truncated and f.format == "MP3" and _mp3_declares_length(path):
                _check_frames_read(path, f.frames, sink.frames_in, f.samplerate)
            return sink, f.samplerate, f"{f.format}/{f.subtype}".lower()
    except (sf.LibsndfileError, RuntimeError):
        pass  # not a libsndfile format; FFmpeg may know it
    return _decode_with_ffmpeg(path, target_rate)


def _sndfile_blocks(f: Any) -> Iterator[np.ndarray]:
    """An open ``soundfile.SoundFile`` as (frames, channels) float32 blocks (one reused buffer).

    MP3 is read in one piece and only then cut up: libsndfile 1.2.2 decodes MP3 differently when it
    is read in pieces (measured on 44.1/48 kHz stereo: up to 0.02 off after a 20 s read boundary,
    0.35 with 1,000-frame reads; one whole read matches FFmpeg within 2e-6). 8 and 16 kHz MP3,
    WAV, FLAC, Ogg Vorbis and Opus read in pieces equal one whole read.
    """
    block = _block_frames(f.samplerate)
    if f.format == "MP3":
        whole = f.read(dtype="float32", always_2d=True)
        yield from (whole[start:start + block] for start in range(0, len(whole), block))
        return
    buffer = np.empty((block, f.channels), dtype=np.float32)
    while len(read := f.read(block, dtype="float32", always_2d=True, out=buffer)):
        yield read


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


_MIN_FRAMES_READ = 0.9
"""A file that decodes to less than this share of the frames its header declares is cut short."""


def _mp3_declares_length(path: Path) -> bool:
    """Whether the MP3's first frame carries a Xing/Info/VBRI header, the only exact length an MP3
    has. Without one libsndfile's length is a guess from the file size (off for VBR, and it counts
    an ID3v2 tag's cover art as audio), so a complete file would look truncated."""
    with path.open("rb") as handle:
        head = handle.read(10)
        skip = 0
        if head[:3] == b"ID3" and len(head) == 10:  # ID3v2: a syncsafe size after the 10-byte header
            skip = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F)
        handle.seek(skip)
        first = handle.read(4096)  # the first frame: its side info, then the tag
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _check_frames_read(path: Path, declared: int, read: int, rate: int) -> None:
    """Fail a file that decodes to well under the frames its header declares: an MP3 cut short
    (its Xing header says 22 s, libsndfile reads the 6.5 s that are there) would otherwise be
    transcribed as a finished short call and never retried."""
    if not 0 < declared <= _MAX_EXPECTED_SECONDS * rate or read >= declared * _MIN_FRAMES_READ:
        return
    raise AudioDecodeError(
        f"{path}: truncated: the header says {declared / rate:.1f} s, the file holds {read / rate:.2f} s",
        hint="the copy or upload is incomplete; copy the file again, then re-run",
    )


def _decode_with_ffmpeg(path: Path, target_rate: int) -> tuple[_Resampled, int, str]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path}: no audio stream", hint="is this an audio file?")
            stream = container.streams.audio[0]
            channels = stream.codec_context.channels or 1
            rate = stream.codec_context.sample_rate
            sink = _Resampled(channels, rate, target_rate, _estimated_frames(container, stream, rate))
            pending: list[np.ndarray] = []
            held, block = 0, _block_frames(rate)
            for frame in container.decode(stream):
                pending.append(_frame_samples(frame, channels))
                held += len(pending[-1])
                if held >= block:
                    sink.push(np.concatenate(pending))
                    pending, held = [], 0
            if pending:
                sink.push(np.concatenate(pending))
            fmt = f"{container.format.name}/{stream.codec_context.name}"
    except AudioDecodeError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt input
        raise AudioDecodeError(
            f"{path}: not a readable audio file ({type(exc).__name__}: {exc})",
            hint="check the file is complete; convert it with ffmpeg if the codec is exotic",
        ) from exc
    if sink.frames_in == 0:
        raise AudioDecodeError(f"{path}: the file decodes to no samples", hint="is it truncated?")
    return sink, rate, fmt


def _frame_samples(frame: Any, channels: int) -> np.ndarray:
    """One decoded PyAV frame as (frames, channels) float32 in [-1, 1]."""
    arr = frame.to_ndarray()
    samples = (arr.T if frame.format.is_planar else arr.reshape(-1, channels)).astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        half = float(2 ** (arr.dtype.itemsize * 8 - 1))
        if np.issubdtype(arr.dtype, np.unsignedinteger):
            samples -= half  # unsigned PCM (pcm_u8) is offset binary: silence is 128, not 0
        samples /= half
    return samples


def _estimated_frames(container: Any, stream: Any, rate: int) -> int:
    """The container's idea of the stream's length in frames (0 when it has none), a little over
    so that the result rarely has to grow; the slack is trimmed in place."""
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000  # av.time_base
    else:
        return 0
    return round(seconds * rate * 1.01) + rate


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
    claimed = manifest.with_name(manifest.name + ".recovering")  # a server assembling it right now
    return parts + [path for path in (manifest, claimed) if path.exists()]
