"""A static sentence encoder: the mean of per-token vectors, optionally mapped, L2-normalised.

The token table is distilled from all-MiniLM-L6-v2 (``suggest.encoder.distill``): no transformer
runs at serving, only MiniLM's own WordPiece tokenizer, a table lookup and a mean. Measured on
the 2-core box: ~0.05 ms per turn against ~5 ms for the int8 ONNX MiniLM, which is what lifts
batched throughput past 500 suggestions/s (docs/results/suggest.md).

Files of an encoder directory: ``embeddings.safetensors`` (``tokens``: float16 [vocab, d], and
``map``: float32 [d, dim] applied after the mean, the identity when none was fitted),
``tokenizer.json`` (MiniLM's), ``encoder.json`` (the spec). A row depends on its own text only,
so training (which encodes with this same class) and serving agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from suggest.encoder.spec import CORRUPT_HINT, clip, load_tokenizer, read_spec_file
from suggest.errors import ModelFormatError

STATIC_FILES = ("embeddings.safetensors", "tokenizer.json", "encoder.json")


class StaticSentenceEncoder:
    """Thread-safe static encoder over a directory written by ``suggest.encoder.distill``."""

    def __init__(self, directory: Path, *, parallel: int = 1) -> None:
        """Load the table, the map and the tokenizer (``parallel`` is accepted and unused:
        a row costs microseconds, threads would only add overhead).

        Raises:
            ModelFormatError: a file is missing or corrupt, or the arrays do not fit the spec.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        missing = [name for name in STATIC_FILES if not (directory / name).is_file()]
        if missing:
            raise ModelFormatError(
                f"static encoder in {directory} lacks {missing}", hint="retrain the model"
            )
        self.spec = read_spec_file(directory / "encoder.json")
        try:
            arrays = load_file(str(directory / "embeddings.safetensors"))
            # float16 on disk (half the size); float32 in memory so sums do not lose precision.
            self._tokens = arrays["tokens"].astype(np.float32)
            self._map = arrays["map"].astype(np.float32)
        except (SafetensorError, KeyError) as error:
            raise ModelFormatError(
                f"{directory / 'embeddings.safetensors'} cannot be read ({error})",
                hint=CORRUPT_HINT,
            ) from error
        if self._map.shape != (self._tokens.shape[1], self.spec.dim):
            raise ModelFormatError(
                f"static encoder in {directory}: map {self._map.shape} does not fit "
                f"tokens {self._tokens.shape} and dim {self.spec.dim}",
                hint="retrain the model",
            )
        self._tokenizer = load_tokenizer(directory / "tokenizer.json")
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self.spec.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit length (zero for a text with no known token)."""
        out = np.zeros((len(texts), self._tokens.shape[1]), dtype=np.float32)
        if not texts:
            return np.zeros((0, self.spec.dim), np.float32)
        bound = self.spec.max_tokens  # a 1 MB turn is cut before it is tokenized (``clip``)
        encoded = self._tokenizer.encode_batch(
            [clip(t, bound) for t in texts], add_special_tokens=False
        )
        for row, item in enumerate(encoded):
            if item.ids:
                out[row] = self._tokens[item.ids].mean(axis=0)
        return normalise(out @ self._map)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
