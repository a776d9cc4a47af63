"""all-MiniLM-L6-v2 as one ONNX graph (tokens -> mean-pooled, L2-normalised vector).

Why ONNX: sentence-transformers on torch costs ~14 ms per sentence on the 2-core target; the
exported graph, dynamically int8-quantised per channel, runs a short turn in a few ms.

Every text is run as its own row (shape 1 x tokens), never padded into a batch. Dynamic int8
quantisation scales activations per *tensor*, so in a padded batch a text's vector depends on
its neighbours: measured on 300 PersuasionForGood turns, batch-encoded vectors had mean cosine
0.986 (min 0.95) to the same texts encoded alone — as large as the quantisation error itself —
and the micro-batcher then returned different suggestions for the same call depending on who
else was in the batch. Row by row, a vector depends only on its text, live, in evaluation and in
training alike; the cost is small because batching a 20-token sentence saved only ~10 % per
sentence (int8, one thread: 5.1 ms batched at 32 vs 5.6 ms alone). Parallelism comes from
threads instead: onnxruntime releases the GIL, so ``parallel`` rows run at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from suggest.encoder.spec import (
    CORRUPT_HINT,
    EncoderSpec,
    Quantization,
    clip,
    load_tokenizer,
    read_spec_file,
)
from suggest.errors import ModelFormatError

ENCODER_FILES = ("model.onnx", "tokenizer.json", "encoder.json")
__all__ = ["ENCODER_FILES", "EncoderSpec", "OnnxSentenceEncoder", "Quantization"]


class OnnxSentenceEncoder:
    """Thread-safe sentence encoder over an exported encoder directory."""

    def __init__(self, directory: Path, *, parallel: int = 1) -> None:
        """Load ``model.onnx``, ``tokenizer.json`` and ``encoder.json`` from ``directory``.

        ``parallel``: texts encoded at once by :meth:`encode` (threads; one core each).

        Raises:
            ModelFormatError: a file is missing, unreadable or corrupt.
        """
        import onnxruntime as ort

        missing = [name for name in ENCODER_FILES if not (directory / name).is_file()]
        if missing:
            raise ModelFormatError(
                f"encoder in {directory} lacks {missing}", hint="retrain or re-export the model"
            )
        self.spec = read_spec_file(directory / "encoder.json")
        self._tokenizer = load_tokenizer(directory / "tokenizer.json")
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.spec.max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one row per run: threads across rows, not inside one
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(directory / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's InvalidProtobuf, Fail, ... share no base
            raise ModelFormatError(
                f"{directory / 'model.onnx'} is not a readable ONNX graph ({error})",
                hint=CORRUPT_HINT,
            ) from error
        self._pool = ThreadPoolExecutor(parallel, "encoder") if parallel > 1 else None

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self.spec.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit length; each row depends on its own text only."""
        out = np.zeros((len(texts), self.spec.dim), dtype=np.float32)
        if not texts:
            return out
        bound = self.spec.max_tokens
        ids = [
            e.ids
            for e in self._tokenizer.encode_batch(
                [clip(t, bound) if t.strip() else "." for t in texts]
            )
        ]
        rows = (
            self._pool.map(self._run, ids) if self._pool and len(ids) > 1 else map(self._run, ids)
        )
        for index, vector in enumerate(rows):
            out[index] = vector
        return out

    def _run(self, ids: list[int]) -> np.ndarray:
        input_ids = np.asarray([ids], dtype=np.int64)
        feed = {
            "input_ids": input_ids,
            "attention_mask": np.ones_like(input_ids),
            "token_type_ids": np.zeros_like(input_ids),
        }
        return np.asarray(self._session.run(None, feed)[0][0], dtype=np.float32)
