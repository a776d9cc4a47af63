"""Silero VAD v6 through onnxruntime, using the ONNX file bundled in the faster-whisper wheel.

The model is a small LSTM that scores 512-sample (32 ms at 16 kHz) chunks, each seen with the
64 samples before it. Its recurrent state (``h``, ``c``) and that context carry from chunk to
chunk, so one :class:`SileroState` belongs to one audio stream, while the ONNX session is loaded
once per process and shared (:func:`load_silero`). The ONNX input's first axis is time, so a
whole recording is scored in one ``run`` with the same result as chunk by chunk.

No extra package: faster-whisper is already a dependency; the file is located without
importing faster-whisper (which would pull in CTranslate2).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voice.errors import ConfigError

SILERO_RATE = 16000
"""The bundled model is the 16 kHz variant."""
CHUNK_SAMPLES = 512
"""Samples scored per step (32 ms)."""
CONTEXT_SAMPLES = 64
"""Samples of the previous chunk prepended to each chunk."""
_STATE_SHAPE = (1, 1, 128)
# Chunks per ONNX run when scoring a whole recording (bounds memory for hour-long calls; the
# same batch size faster-whisper uses).
_BATCH_CHUNKS = 10_000


def silero_model_path() -> Path:
    """Path of ``faster_whisper/assets/silero_vad_v6.onnx``.

    Raises:
        ConfigError: faster-whisper (and so the model file) is not installed.
    """
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("Silero VAD model not found", hint="pip install faster-whisper")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise ConfigError(f"{path} is missing", hint="reinstall faster-whisper>=1.1")
    return path


@functools.cache
def load_silero() -> SileroModel:
    """The process-wide Silero model (loaded on first use, then shared by every stream)."""
    return SileroModel(silero_model_path())


@dataclass
class SileroState:
    """Per-stream recurrent state: LSTM ``h``/``c`` and the last 64 samples seen."""

    h: np.ndarray = field(default_factory=lambda: np.zeros(_STATE_SHAPE, dtype=np.float32))
    c: np.ndarray = field(default_factory=lambda: np.zeros(_STATE_SHAPE, dtype=np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT_SAMPLES, dtype=np.float32))


class SileroModel:
    """A loaded Silero ONNX session; stateless itself (state lives in :class:`SileroState`)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        # One thread: the model is tiny (0.1-0.2 ms per chunk) and many streams run side by side;
        # thread pools would only add contention.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=opts
        )

    def probabilities(self, samples: np.ndarray, state: SileroState | None = None) -> np.ndarray:
        """Speech probability of each whole 512-sample chunk of 16 kHz float32 ``samples``.

        With ``state``, scoring continues from it and updates it (streaming); a trailing partial
        chunk is ignored, so callers feed multiples of 512. Without, scoring starts fresh.
        """
        state = state if state is not None else SileroState()
        usable = len(samples) - len(samples) % CHUNK_SAMPLES
        if usable == 0:
            return np.zeros(0, dtype=np.float32)
        chunks = np.asarray(samples[:usable], dtype=np.float32).reshape(-1, CHUNK_SAMPLES)
        previous = np.concatenate([state.context[None, :], chunks[:-1, -CONTEXT_SAMPLES:]])
        framed = np.concatenate([previous, chunks], axis=1)
        out = []
        for i in range(0, len(framed), _BATCH_CHUNKS):
            probs, state.h, state.c = self._session.run(
                None, {"input": framed[i : i + _BATCH_CHUNKS], "h": state.h, "c": state.c}
            )
            out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
        state.context = chunks[-1, -CONTEXT_SAMPLES:].copy()
        return np.concatenate(out)
