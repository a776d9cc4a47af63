"""A huge turn is cut before it is tokenized, so it cannot stall the batch it is in.

The tokenizer read a whole text before the encoder truncated its tokens: a 1 MB turn took about
half a second to two seconds to tokenize, and every call in its batch waited. Both encoders now
cut a text to ``max_tokens * CHARS_PER_TOKEN_BOUND`` characters first (``static``, which truncates
no tokens: ``UNTRUNCATED_TOKENS``). An ordinary turn encodes exactly as before. Uses the MiniLM
encoder attached to the demo's bundled model, and a tiny static table built here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suggest.encoder import load_encoder
from suggest.encoder.spec import CHARS_PER_TOKEN_BOUND, UNTRUNCATED_TOKENS, clip

pytestmark = pytest.mark.unit


class _SpyTokenizer:
    """The real tokenizer, recording the longest text it was given."""

    def __init__(self, real: Any) -> None:
        self.real, self.longest = real, 0

    def encode_batch(self, texts: list[str], **kwargs: Any) -> Any:
        self.longest = max([self.longest, *(len(t) for t in texts)])
        return self.real.encode_batch(texts, **kwargs)


def test_the_minilm_encoder_tokenizes_a_bounded_prefix_of_a_huge_turn(
    bundled_suggestion_model: Path,
) -> None:
    encoder = load_encoder(bundled_suggestion_model / "encoder")
    bound = encoder.spec.max_tokens * CHARS_PER_TOKEN_BOUND
    spy = _SpyTokenizer(encoder._tokenizer)  # type: ignore[attr-defined]
    encoder._tokenizer = spy  # type: ignore[attr-defined]
    huge = "It is too expensive for me right now. " * 27_000  # ~1 MB
    vectors = encoder.encode([huge, "Okay."])
    assert spy.longest <= bound  # 1.7 s to tokenize the whole 1 MB; 5 ms for the bound
    # MiniLM reads its first max_tokens tokens either way: the vector is the same
    np.testing.assert_allclose(vectors[0], encoder.encode([huge[: bound * 4]])[0], atol=1e-6)
    assert np.linalg.norm(vectors[1]) == pytest.approx(1.0, abs=1e-5)  # its batch neighbour is served


def _static_encoder(directory: Path, tokenizer_json: Path) -> Any:
    from safetensors.numpy import save_file

    directory.mkdir()
    vocab = len(json.loads(tokenizer_json.read_text())["model"]["vocab"])
    rng = np.random.default_rng(0)
    save_file(
        {
            "tokens": rng.standard_normal((vocab, 8)).astype(np.float16),
            "map": rng.standard_normal((8, 8)).astype(np.float16),
        },
        str(directory / "embeddings.safetensors"),
    )
    (directory / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    spec = {"source": "test", "package": "test", "quantization": "none", "max_tokens": 0, "dim": 8,
            "sha256": "0" * 64, "kind": "static", "layers": 6, "recipe": {}}  # fmt: skip
    (directory / "encoder.json").write_text(json.dumps(spec))
    return load_encoder(directory)


def test_the_static_encoder_tokenizes_a_bounded_prefix_of_a_huge_turn(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    encoder = _static_encoder(tmp_path / "static", bundled_suggestion_model / "encoder" / "tokenizer.json")
    spy = _SpyTokenizer(encoder._tokenizer)
    encoder._tokenizer = spy
    huge = "price " * 200_000
    vectors = encoder.encode([huge, "Okay, fine."])
    assert spy.longest <= UNTRUNCATED_TOKENS * CHARS_PER_TOKEN_BOUND
    np.testing.assert_allclose(vectors[0], encoder.encode([clip(huge, 0)])[0], atol=1e-6)
    assert np.linalg.norm(vectors[1]) == pytest.approx(1.0, abs=1e-5)  # an ordinary turn is read whole
