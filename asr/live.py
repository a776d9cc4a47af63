"""Load the live path's Whisper: one model per process, several concurrent decodes.

The live server loads one model and runs ``workers`` decodes on it at once from as many
threads (CTranslate2 ``inter_threads``; it releases the GIL), each on ``cpu_threads`` cores. The
live server runs one single-thread decode per core (``voice.live.asr_runtime.decode_slots``;
measured in docs/results/streaming.md).

``encoder_window="trimmed"`` encodes a shorter window than Whisper's fixed 30 s: the audio plus
some of its zero padding, with a minimum length (:class:`EncoderTrim`; partials may use a shorter
one than finals, see :func:`trimmed_to`).
CTranslate2 accepts shorter inputs, and the encoder, most of a short decode on CPU, costs about
its length. Whisper was trained on padded 30 s windows and needs to see several seconds of that
padding after the speech: measured on the 126 SpokenWOZ turns (docs/results/streaming.md), a
window cut 1 s after the audio wrecked the text (+20 WER points), while windows of 15-20 s with
8 s or more of padding decoded as well as the full window at about 60 % of its cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from asr.engine import WhisperEngine, resolve_device
from asr.models import resolve_whisper_model
from asr.types import AsrError

if TYPE_CHECKING:
    import ctranslate2

__all__ = ["FINAL_TRIM", "PARTIAL_TRIM", "EncoderTrim", "EncoderWindow", "load_streaming_engine", "trimmed_to"]

EncoderWindow = Literal["full", "trimmed"]


@dataclass(frozen=True)
class EncoderTrim:
    """How far a ``trimmed`` model cuts Whisper's 30 s window: the audio plus ``padding``
    seconds of its zero padding, and never less than ``minimum`` seconds in all."""

    minimum: float = 20.0
    padding: float = 10.0


FINAL_TRIM = EncoderTrim(20.0, 10.0)
"""Every decode's window unless :func:`trimmed_to` says otherwise (the final pass)."""
PARTIAL_TRIM = EncoderTrim(12.0, 8.0)
"""Partials: a shorter window for the tentative text a final replaces anyway. On 41 short
telephone prompts the same words as the 20 s window at about 0.75 of its cost; SpokenWOZ turns
decoded as well at 15 s as at 30 s (docs/results/streaming.md)."""
_trim: ContextVar[EncoderTrim] = ContextVar("encoder_trim", default=FINAL_TRIM)


@contextmanager
def trimmed_to(trim: EncoderTrim) -> Iterator[None]:
    """Decodes in this block (this thread or task) use ``trim``; a ``full`` model ignores it."""
    token = _trim.set(trim)
    try:
        yield
    finally:
        _trim.reset(token)


def load_streaming_engine(
    model: str = "tiny.en",
    *,
    device: str = "auto",
    compute_type: str = "auto",
    workers: int = 1,
    cpu_threads: int = 1,
    encoder_window: EncoderWindow = "full",
) -> WhisperEngine:
    """Load a model that ``workers`` threads may decode with at the same time.

    Args:
        model: ``tiny.en``, ``base`` or a CTranslate2 model directory.
        device: ``cpu``, ``cuda`` or ``auto``.
        compute_type: CTranslate2 type; ``auto`` is int8 on CPU and float16 on CUDA.
        workers: concurrent decodes (CTranslate2 ``num_workers``); see the module docstring.
        cpu_threads: threads per decode on CPU.
        encoder_window: ``full`` (Whisper's 30 s window) or ``trimmed`` (module docstring).

    Raises:
        asr.models.ModelNotFoundError: the model is not installed.
        AsrError: the device or compute type is not available.
    """
    from faster_whisper import WhisperModel

    path = resolve_whisper_model(model)
    resolved_device, resolved_type = resolve_device(device, compute_type)
    cls = _trimmed_model_class() if encoder_window == "trimmed" else WhisperModel
    try:
        whisper = cls(
            str(path),
            device=resolved_device,
            compute_type=resolved_type,
            cpu_threads=cpu_threads,
            num_workers=max(1, workers),
        )
    except (RuntimeError, ValueError) as exc:
        raise AsrError(
            f"could not load Whisper from {path} on {resolved_device}/{resolved_type}: {exc}",
            hint="pick a compute_type the device supports (int8 or float32 on CPU)",
        ) from exc
    return WhisperEngine(whisper, name=model, device=resolved_device, compute_type=resolved_type)


def _trimmed_model_class() -> type[Any]:
    """The subclass is built on first use so importing this module needs no faster-whisper."""
    from faster_whisper import WhisperModel

    class TrimmedWhisperModel(WhisperModel):  # type: ignore[misc]
        """Encodes the audio plus some padding (:class:`EncoderTrim`) instead of the 30 s window."""

        def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
            return super().encode(_trim_padding(features, _trim.get()))

    return TrimmedWhisperModel


def _trim_padding(features: np.ndarray, trim: EncoderTrim = FINAL_TRIM) -> np.ndarray:
    """Cut faster-whisper's zero feature padding down to ``trim.padding`` seconds (the window
    keeps at least ``trim.minimum`` seconds; 100 feature frames a second).

    faster-whisper pads the log-mel features of a short window with exact zeros
    (``pad_or_trim``); real frames are never all zero, so the last non-zero frame is the end
    of the audio.
    """
    batch = features if features.ndim == 3 else features[None]
    voiced = np.flatnonzero(np.any(batch != 0, axis=(0, 1)))
    last = int(voiced[-1]) + 1 if len(voiced) else 1
    keep = min(batch.shape[-1], max(round(trim.minimum * 100), last + round(trim.padding * 100)))
    keep += keep % 2  # the encoder's stride-2 convolution halves the frame count
    return features[..., :keep]
