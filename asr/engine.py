"""Whisper through faster-whisper (CTranslate2): load once per process, decode reproducibly.

Three decisions shape this module (measurements in docs/results/asr_loops.md):

- Temperature 0 only. faster-whisper's default fallback re-samples a window at rising
  temperatures when its text repeats or scores low; on the 30 s telephone sample that made three
  identical runs of ``base`` disagree and loop. Here the same audio always gives the same text.
- Loops are caught instead of sampled away: after decoding, every 30 s window's text is tested
  (:mod:`asr.loops`); from the first looping window on, the audio is decoded again with the
  anti-loop settings (no prompt, word-timestamp seeking with silence skipping, a repetition
  penalty), and any line that still repeats is dropped.
- Speech regions (from the pipeline's VAD) are joined and decoded as one array, the way
  faster-whisper's own ``vad_filter`` does, and times are mapped back (:mod:`asr.timeline`).
  Its spectrogram is computed in blocks (:class:`BlockwiseLogMel`, the same features): an hour
  of speech costs about 11 bytes per sample (audio, power spectrum, features), not 68.

The lazy segment generator of faster-whisper is always consumed here, never by callers.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asr.loops import drop_repeated_lines, loops_under
from asr.models import resolve_whisper_model
from asr.timeline import SpeechTimeline
from asr.types import AsrError, AsrInputError, AsrOptions, Segment, Transcription
from asr.words import from_pieces

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

SAMPLE_RATE = 16000
"""Whisper's input rate; callers resample (voice.audio does it with soxr)."""

WINDOW_SECONDS = 30.0
"""Whisper decodes at most 30 s of audio per encoder window."""
_FRAMES_PER_SECOND = 100  # Whisper's mel frames (hop 160 at 16 kHz); segment.seek counts them

# Used only when re-decoding from a looping window, together with word-timestamp seeking: skip
# silences longer than this when a window looks hallucinated. measured: on the telephone sample
# (6.7 s of line noise before speech) base at temperature 0 without word timestamps decodes the
# call twice (75.9 % WER); the re-decode with these settings gives 16.1 %
# (docs/results/asr_loops.md).
_LOOP_SILENCE_SKIP_SECONDS = 1.0
UNSURE_WINDOW_BEAM = 5
"""Beam of the second decode of a greedy window that scored below ``log_prob_threshold``."""


class WhisperEngine:
    """A loaded Whisper model. Thread-safe for decoding; load it once per process."""

    def __init__(self, model: WhisperModel, *, name: str, device: str, compute_type: str) -> None:
        self._model = model
        self.name = name
        """The model name or path it was loaded from."""
        self.device = device
        """``cpu`` or ``cuda``."""
        self.compute_type = compute_type
        """CTranslate2 compute type (``int8`` on CPU, ``float16`` on CUDA by default)."""

    @classmethod
    def load(
        cls,
        model: str = "tiny.en",
        *,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
    ) -> WhisperEngine:
        """Load (or reuse, within this process) a Whisper model by name or local path.

        Args:
            model: ``tiny.en``, ``base`` or a CTranslate2 model directory (see asr.models).
            device: ``cpu``, ``cuda`` or ``auto`` (CUDA when a GPU is visible).
            compute_type: CTranslate2 type; ``auto`` means int8 on CPU and float16 on CUDA.
            cpu_threads: CPU threads per decode; 0 lets CTranslate2 choose.

        Raises:
            asr.models.ModelNotFoundError: the model is not installed.
            AsrError: the device or compute type is not available.
        """
        path = resolve_whisper_model(model)
        resolved_device, resolved_type = resolve_device(device, compute_type)
        whisper = _load_model(str(path), resolved_device, resolved_type, cpu_threads)
        return cls(whisper, name=model, device=resolved_device, compute_type=resolved_type)

    @property
    def whisper_model(self) -> WhisperModel:
        """The loaded faster-whisper model, for components that schedule decoding themselves
        (e.g. batching several live turns); they consume its generators themselves too."""
        return self._model

    def transcribe(
        self,
        audio: np.ndarray,
        options: AsrOptions = AsrOptions(),  # noqa: B008 - frozen, so sharing it is safe
        *,
        speech: Sequence[tuple[float, float]] | None = None,
    ) -> Transcription:
        """Transcribe mono 16 kHz float32 audio, optionally only its speech regions.

        Args:
            audio: float32 samples in [-1, 1], one channel, 16 kHz.
            options: decoding options, recorded in the result.
            speech: (start, end) seconds to decode; the rest is never shown to the model.
                Timestamps in the result are in ``audio``'s own timeline either way.

        Raises:
            AsrInputError: the audio is not a 1-D float array or a region is malformed.
        """
        samples = _check_audio(audio)
        duration = len(samples) / SAMPLE_RATE
        if speech is None:
            segments, language, loops = self._decode(samples, options)
            return Transcription(tuple(segments), language, duration, options, loops)
        timeline = SpeechTimeline(speech, len(samples), SAMPLE_RATE)
        if timeline.is_empty:
            return Transcription((), options.language or "", duration, options)
        segments, language, loops = self._decode(timeline.join(samples), options)
        mapped = tuple(timeline.map_segment(s) for s in segments)
        return Transcription(mapped, language, duration, options, loops)

    def transcribe_turn(
        self,
        audio: np.ndarray,
        options: AsrOptions = AsrOptions(),  # noqa: B008 - frozen, so sharing it is safe
        *,
        prompt: str | None = None,
    ) -> Transcription:
        """Decode one closed turn (a few seconds of speech) in a single window, fast.

        The live path calls this for a turn's final text once VAD has closed it. ``prompt``
        (e.g. the previous turn's text) replaces ``options.initial_prompt``. Turns longer than
        one window fall back to :meth:`transcribe`.
        """
        samples = _check_audio(audio)
        turn_options = _with_prompt(options, prompt)
        if len(samples) > WINDOW_SECONDS * SAMPLE_RATE:
            return self.transcribe(samples, turn_options)
        segments, language, loops = self._decode(samples, turn_options, single_window=True)
        return Transcription(
            tuple(segments), language, len(samples) / SAMPLE_RATE, turn_options, loops
        )

    def _decode(
        self, samples: np.ndarray, options: AsrOptions, *, single_window: bool = False
    ) -> tuple[list[Segment], str, int]:
        """Decode, test each window for a loop, and re-decode from the first looping one."""
        if len(samples) == 0:
            return [], options.language or "", 0
        kwargs = _decode_kwargs(options, single_window=single_window)
        windows, language = self._run(samples, kwargs, keep_words=options.word_timestamps)
        for index, (window_start, window) in enumerate(windows):
            if not _window_loops(window, options):
                continue
            offset = round(window_start * SAMPLE_RATE)
            retry_kwargs = _decode_kwargs(options, anti_loop=True)
            retry, _ = self._run(samples[offset:], retry_kwargs, keep_words=options.word_timestamps)
            redone = [_shift(s, window_start) for _, w in retry for s in _unlooped(w, options)]
            kept = [s for _, w in self._sure(samples, windows[:index], options, single_window) for s in w]
            return kept + redone, language, 1
        return [s for _, w in self._sure(samples, windows, options, single_window) for s in w], language, 0

    def _sure(
        self,
        samples: np.ndarray,
        windows: list[tuple[float, list[Segment]]],
        options: AsrOptions,
        single_window: bool,
    ) -> list[tuple[float, list[Segment]]]:
        """Greedy whole-recording windows after :meth:`_beam_for_unsure_windows`; others as they are
        (a live turn's partial is replaced by its final anyway)."""
        if options.beam_size != 1 or single_window:
            return windows
        return self._beam_for_unsure_windows(samples, windows, options)

    def _beam_for_unsure_windows(
        self, samples: np.ndarray, windows: list[tuple[float, list[Segment]]], options: AsrOptions
    ) -> list[tuple[float, list[Segment]]]:
        """Greedy windows scoring below ``log_prob_threshold`` (not silence) decoded again with
        beam 5, kept when they score better: the deterministic stand-in for faster-whisper's
        temperature fallback. Greedy tiny.en once put a 30 s window of speech down as two words
        (docs/results/asr.md, "Greedy decoding and the CPU")."""
        ends = [start for start, _ in windows[1:]] + [len(samples) / SAMPLE_RATE]
        out = []
        for (start, window), end in zip(windows, ends, strict=True):
            if window and _unsure(window[0], options):
                # At most the window's own 30 s: a silent window after it (no segments) stays out.
                stop = min(end, start + WINDOW_SECONDS)
                span = samples[round(start * SAMPLE_RATE) : round(stop * SAMPLE_RATE)]
                kwargs = _decode_kwargs(replace(options, beam_size=UNSURE_WINDOW_BEAM))
                again = [s for _, w in self._run(span, kwargs, keep_words=options.word_timestamps)[0]
                         for s in w]  # fmt: skip
                better = again and _mean_logprob(again) > window[0].avg_logprob
                if better and not _window_loops(again, options):  # repeats score well: not better
                    window = [_shift(s, start) for s in again]
            out.append((start, window))
        return out

    def _run(
        self, samples: np.ndarray, kwargs: dict[str, Any], *, keep_words: bool
    ) -> tuple[list[tuple[float, list[Segment]]], str]:
        """One faster-whisper pass, consumed here, grouped by 30 s window: (start, segments)."""
        try:
            generator, info = self._model.transcribe(samples, **kwargs)
            raw = list(generator)
        except (RuntimeError, ValueError) as exc:  # CTranslate2 reports device/OOM as these
            raise AsrError(
                f"Whisper decoding failed ({type(exc).__name__}: {exc})",
                hint="check the device has memory free; try device='cpu' or a smaller model",
            ) from exc
        windows = [
            (seek / _FRAMES_PER_SECOND, [_to_segment(s, keep_words) for s in group])
            for seek, group in itertools.groupby(raw, key=lambda s: s.seek)
        ]
        return windows, info.language


def _unsure(segment: Segment, options: AsrOptions) -> bool:
    """Below the log-probability threshold and not silence (faster-whisper drops those itself)."""
    return (
        segment.avg_logprob < options.log_prob_threshold
        and segment.no_speech_prob < options.no_speech_threshold
    )


def _mean_logprob(segments: Sequence[Segment]) -> float:
    return float(np.mean([s.avg_logprob for s in segments]))


def _decode_kwargs(
    options: AsrOptions, *, single_window: bool = False, anti_loop: bool = False
) -> dict[str, Any]:
    """faster-whisper arguments for ``options``; ``anti_loop`` for a window that looped."""
    kwargs: dict[str, Any] = {
        "language": options.language,
        "beam_size": options.beam_size,
        "temperature": 0.0,  # never sample: reproducible (module docstring)
        "word_timestamps": options.word_timestamps,
        "initial_prompt": options.initial_prompt,
        "condition_on_previous_text": options.condition_on_previous_text,
        "no_speech_threshold": options.no_speech_threshold,
        "log_prob_threshold": options.log_prob_threshold,
        "compression_ratio_threshold": options.loop_compression_ratio,
        "vad_filter": False,  # speech regions come from the caller's VAD
    }
    if single_window:
        kwargs["condition_on_previous_text"] = False
    if anti_loop:
        kwargs.update(
            initial_prompt=None,
            condition_on_previous_text=False,
            word_timestamps=True,  # seek by word ends, not by the looping timestamp tokens
            hallucination_silence_threshold=_LOOP_SILENCE_SKIP_SECONDS,
            repetition_penalty=options.loop_repetition_penalty,
            no_repeat_ngram_size=options.loop_no_repeat_ngram_size,
        )
    return kwargs


def _window_loops(window: list[Segment], options: AsrOptions) -> bool:
    return loops_under(" ".join(s.text for s in window), options)


def _unlooped(window: list[Segment], options: AsrOptions) -> Iterable[Segment]:
    """A re-decoded window as is, or without its repeated lines if it still loops."""
    if not _window_loops(window, options):
        return window
    keep = drop_repeated_lines([s.text for s in window])
    return (s for s, k in zip(window, keep, strict=True) if k)


def _to_segment(raw: Any, keep_words: bool) -> Segment:
    """Our frozen Segment from a faster-whisper one (words stripped of their leading space,
    which ``Word.leading_space`` records; punctuation-only pieces are no words)."""
    words = tuple(from_pieces((w.word, w.start, w.end, w.probability) for w in (raw.words or [])))
    return Segment(
        start=raw.start,
        end=raw.end,
        text=raw.text.strip(),
        words=words if keep_words else (),
        avg_logprob=raw.avg_logprob,
        no_speech_prob=raw.no_speech_prob,
        compression_ratio=raw.compression_ratio,
    )


def _shift(segment: Segment, seconds: float) -> Segment:
    words = tuple(
        replace(w, start=round(w.start + seconds, 3), end=round(w.end + seconds, 3))
        for w in segment.words
    )
    return Segment(
        start=round(segment.start + seconds, 3),
        end=round(segment.end + seconds, 3),
        text=segment.text,
        words=words,
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        compression_ratio=segment.compression_ratio,
    )


def _with_prompt(options: AsrOptions, prompt: str | None) -> AsrOptions:
    return options if prompt is None else replace(options, initial_prompt=prompt)


def _check_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        shape = getattr(audio, "shape", type(audio).__name__)
        raise AsrInputError(
            f"expected 1-D mono audio, got {shape}",
            hint="pass one channel (voice.audio.Audio.channel(i) or .mono())",
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise AsrInputError(
            f"expected float samples in [-1, 1], got {audio.dtype}",
            hint="convert int16 PCM with voice.audio.int16_to_float",
        )
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(samples).all():
        # measured: ten NaN samples in JFK made Whisper return no text at all, without an error.
        raise AsrInputError(
            "the audio contains NaN or infinite samples",
            hint="replace them with silence (voice.audio.load_audio does)",
        )
    return samples


def resolve_device(device: str = "auto", compute_type: str = "auto") -> tuple[str, str]:
    """The concrete (device, compute type) that ``load`` would use for these arguments.

    Raises:
        AsrError: unknown device, or CUDA asked for without a visible GPU.
    """
    resolved = _resolve_device(device)
    return resolved, _resolve_compute_type(resolved, compute_type)


def _resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise AsrError(f"unknown device {device!r}", hint="use 'auto', 'cpu' or 'cuda'")
    import ctranslate2

    has_cuda = ctranslate2.get_cuda_device_count() > 0
    if device == "cuda" and not has_cuda:
        raise AsrError(
            "device='cuda' but no CUDA GPU is visible", hint="use device='auto' or 'cpu'"
        )
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    return device


def _resolve_compute_type(device: str, compute_type: str) -> str:
    if compute_type != "auto":
        return compute_type
    # int8 on CPU: the fastest CTranslate2 path there; float16 on GPU: the usual accuracy/speed
    # point for Whisper on tensor cores.
    return "float16" if device == "cuda" else "int8"


@functools.lru_cache(maxsize=4)
def _load_model(path: str, device: str, compute_type: str, cpu_threads: int) -> WhisperModel:
    """One CTranslate2 model per (path, device, type, threads) in this process."""
    from faster_whisper import WhisperModel

    if not Path(path).is_dir():
        raise AsrError(
            f"{path} is not a model directory", hint="see asr.models.resolve_whisper_model"
        )
    try:
        model = WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
    except (RuntimeError, ValueError) as exc:
        raise AsrError(
            f"could not load Whisper from {path} on {device}/{compute_type}: {exc}",
            hint="pick a compute_type the device supports (int8 or float32 on CPU)",
        ) from exc
    model.feature_extractor = BlockwiseLogMel(model.feature_extractor)
    return model


class BlockwiseLogMel:
    """faster-whisper's ``FeatureExtractor``, computing long audio a block of frames at a time.

    faster-whisper takes the log-mel spectrogram of the whole input at once, and its STFT
    intermediates (padded copies, 400-sample frames, complex spectra) peak at about 64 bytes
    per input sample (measured with tracemalloc: 299 MiB for 5 min of audio, 3.5 GiB for an
    hour of joined speech). Here the frames are windowed and transformed a block at a time into
    one power spectrum (5 bytes per sample), which then goes through the mel filters in one
    product, as in faster-whisper: BLAS sums in another order for another matrix width, and
    one bit of difference in the features changed words of tiny.en (measured on SNG0072: a
    product per block differed in 0.4 % of the values by 1.2e-7 and decoded "Casa Lasagna" as
    "Kazul, let's tell you"). So the result is faster-whisper's array, bit for bit, for about
    7 bytes per sample and one block at the peak (57 MiB for 5 min). Short inputs (live turns,
    30 s windows) go to faster-whisper's code unchanged.
    """

    def __init__(self, extractor: Any) -> None:
        self._extractor = extractor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._extractor, name)

    def __call__(
        self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None
    ) -> np.ndarray:
        """Log-mel features of mono ``waveform`` (faster-whisper's signature and result)."""
        fx = self._extractor
        frames = 1 + (len(waveform) + padding) // fx.hop_length  # the stock STFT's count
        if chunk_length is not None or waveform.ndim != 1 or frames <= 2 * _MEL_BLOCK_FRAMES:
            return np.asarray(fx(waveform, padding=padding, chunk_length=chunk_length))
        centered = _CenteredSignal(np.asarray(waveform, dtype=np.float32), padding, fx.n_fft // 2)
        window = np.hanning(fx.n_fft + 1)[:-1].astype("float32")
        # The power spectrum in faster-whisper's layout (frequency-major in memory), so that the
        # filter product below is the very same BLAS call on the same bits.
        magnitudes = np.empty((frames - 1, fx.n_fft // 2 + 1), dtype=np.float32).T
        for first in range(0, frames - 1, _MEL_BLOCK_FRAMES):  # the last frame is dropped
            last = min(first + _MEL_BLOCK_FRAMES, frames - 1)
            piece = centered[first * fx.hop_length : (last - 1) * fx.hop_length + fx.n_fft]
            stft = fx.stft(piece, fx.n_fft, fx.hop_length, window=window, center=False,
                           return_complex=True).astype("complex64")
            magnitudes[:, first:last] = np.abs(stft) ** 2
        log_spec: np.ndarray = fx.mel_filters @ magnitudes
        del magnitudes
        np.clip(log_spec, a_min=1e-10, a_max=None, out=log_spec)
        np.log10(log_spec, out=log_spec)
        np.maximum(log_spec, log_spec.max() - 8.0, out=log_spec)
        log_spec += 4.0
        log_spec /= 4.0
        return log_spec


_MEL_BLOCK_FRAMES = 3000
"""Frames per STFT block: 30 s of audio, about 35 MiB of intermediates (measured with
tracemalloc; 6000 frames took 70 MiB and were no faster)."""


class _CenteredSignal:
    """``waveform`` + ``padding`` zeros, reflect-padded by ``half`` on both sides (the signal the
    stock STFT frames), sliced without materializing it: only the two reflected ends are built."""

    def __init__(self, waveform: np.ndarray, padding: int, half: int) -> None:
        end = np.concatenate([waveform[-(half + 1) :], np.zeros(padding, dtype=np.float32)])
        self._pieces = (
            np.pad(waveform[: half + 1], (half, 0), mode="reflect")[:half],
            waveform,
            np.zeros(padding, dtype=np.float32),
            np.pad(end[-(half + 1) :], (0, half), mode="reflect")[-half:],
        )

    def __getitem__(self, span: slice) -> np.ndarray:
        parts, offset = [], 0
        for piece in self._pieces:
            lo, hi = max(span.start - offset, 0), min(span.stop - offset, len(piece))
            if hi > lo:
                parts.append(piece[lo:hi])
            offset += len(piece)
        return np.concatenate(parts)
