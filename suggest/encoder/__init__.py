"""Sentence encoders for the engine: MiniLM exported to ONNX, or a static table distilled from it.

``load_encoder(dir)`` picks the class from ``encoder.json`` (``kind``). Serving needs only
numpy and tokenizers (plus onnxruntime for ``onnx``); building an encoder
(``suggest.encoder.export``, ``suggest.encoder.distill``) needs torch and transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from suggest.encoder.onnx_encoder import ENCODER_FILES, OnnxSentenceEncoder
from suggest.encoder.spec import EncoderSpec, read_spec_file
from suggest.encoder.static_encoder import STATIC_FILES, StaticSentenceEncoder
from suggest.errors import ModelFormatError

__all__ = [
    "ENCODER_FILES",
    "EncoderSpec",
    "OnnxSentenceEncoder",
    "SentenceEncoder",
    "StaticSentenceEncoder",
    "encoder_files",
    "load_encoder",
    "read_spec",
]


class SentenceEncoder(Protocol):
    """What training, evaluation and serving need of an encoder."""

    spec: EncoderSpec

    @property
    def dim(self) -> int:
        """Embedding size."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; a row depends on its own text only."""
        ...


def read_spec(directory: Path) -> EncoderSpec:
    """The spec in ``directory/encoder.json``.

    Raises:
        ModelFormatError: the file is missing or not a spec.
    """
    path = directory / "encoder.json"
    if not directory.exists() and (directory.parent / "manifest.json").is_file():
        # A model shipped without its encoder to stay small, like voice/demo_assets/model:
        # nothing is wrong with it, it needs the encoder exported from the installed MiniLM.
        raise ModelFormatError(
            f"{directory.parent} has no encoder/ folder: the model is shipped without its "
            "sentence encoder, like the bundled demo model",
            hint="run `voice demo --bundled-model --calls 0 --exit-after` once, then pass "
            "data/demo/models/demo/bundled, the copy it writes with the encoder",
        )
    if not path.is_file():
        raise ModelFormatError(f"{directory} holds no encoder.json", hint="retrain the model")
    return read_spec_file(path)


def encoder_files(spec: EncoderSpec) -> tuple[str, ...]:
    """The files an encoder directory of this kind holds (copied into every model)."""
    return STATIC_FILES if spec.kind == "static" else ENCODER_FILES


def load_encoder(directory: Path, *, parallel: int = 1) -> SentenceEncoder:
    """The encoder in ``directory``, of the kind its ``encoder.json`` names.

    Raises:
        ModelFormatError: a file is missing, corrupt, or does not fit the spec.
    """
    spec = read_spec(directory)
    if spec.kind == "static":
        return StaticSentenceEncoder(directory, parallel=parallel)
    return OnnxSentenceEncoder(directory, parallel=parallel)
