"""Load the live path's Whisper: one model per process, several concurrent decodes.

The live server loads one model and runs ``workers`` decodes on it at once from as many
threads (CTranslate2 ``inter_threads``; it releases the GIL), each on ``cpu_threads`` cores. On
2 CPU cores with tiny.en the server runs one 2-thread decode at a time: a final returns in
about 55 % of the single-thread time, and the end of a turn waits for exactly one decode
(``voice.live.asr_runtime``; docs/results/streaming.md).

``encoder_window="trimmed"`` encodes a shorter window than Whisper's fixed 30 s: the audio plus
at least ``_TRIM_PADDING_FRAMES`` of its zero padding, and never less than ``_TRIM_MIN_FRAMES``.
CTranslate2 accepts shorter inputs, and the encoder, most of a short decode on CPU, costs about
its length. Whisper was trained on padded 30 s windows and needs to see several seconds of that
padding after the speech: measured on the 126 SpokenWOZ turns (docs/results/streaming.md), a
window cut 1 s after the audio wrecked the text (+20 WER points), while windows of 15-20 s with
8 s or more of padding decoded as well as the full window at about 60 % of its cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from asr.engine import WhisperEngine, resolve_device
from asr.models import resolve_whisper_model
from asr.types import AsrError

if TYPE_CHECKING:
    import ctranslate2

__all__ = ["EncoderWindow", "load_streaming_engine"]

EncoderWindow = Literal["full", "trimmed"]

_TRIM_PADDING_FRAMES = 1000  # 10 s of zero padding kept after the audio (100 frames a second)
_TRIM_MIN_FRAMES = 2000  # and a window of at least 20 s


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
        """Encodes the audio plus 10 s of padding (at least 20 s) instead of the 30 s window."""

        def encode(self, features: np.ndarray) -> ctranslate2.StorageView:
            return super().encode(_trim_padding(features))

    return TrimmedWhisperModel


def _trim_padding(features: np.ndarray) -> np.ndarray:
    """Cut faster-whisper's zero feature padding down to ``_TRIM_PADDING_FRAMES`` frames (the
    window keeps at least ``_TRIM_MIN_FRAMES``).

    faster-whisper pads the log-mel features of a short window with exact zeros
    (``pad_or_trim``); real frames are never all zero, so the last non-zero frame is the end
    of the audio.
    """
    batch = features if features.ndim == 3 else features[None]
    voiced = np.flatnonzero(np.any(batch != 0, axis=(0, 1)))
    last = int(voiced[-1]) + 1 if len(voiced) else 1
    keep = min(batch.shape[-1], max(_TRIM_MIN_FRAMES, last + _TRIM_PADDING_FRAMES))
    keep += keep % 2  # the encoder's stride-2 convolution halves the frame count
    return features[..., :keep]
