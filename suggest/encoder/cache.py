"""Embeddings cached by text hash, so retraining re-encodes only new text.

One safetensors file per encoder digest and recipe
(``<cache>/embeddings/<sha16>-rows1.safetensors``) holding ``keys`` (uint8 [n, 16], blake2b of
the text) and ``vectors`` (float32 [n, dim]). A training speed-up only, never part of a model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CACHE_RECIPE = "rows1"
"""How cached vectors were computed (one text per run); a new recipe starts a new file."""


def text_key(text: str) -> bytes:
    """16-byte digest of a text (the cache key)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingCache:
    """Get-or-compute for many texts at once, persisted on :meth:`save`."""

    def __init__(self, path: Path, dim: int) -> None:
        """Open (or start) the cache file at ``path``."""
        from safetensors.numpy import load_file

        self.path = path
        self.dim = dim
        self._rows: dict[bytes, int] = {}
        self._vectors: list[np.ndarray] = []
        self._dirty = False
        if path.is_file():
            stored = load_file(str(path))
            if stored["vectors"].shape[1] == dim:
                self._vectors = [stored["vectors"]]
                self._rows = {bytes(k): i for i, k in enumerate(stored["keys"])}

    @classmethod
    def for_encoder(cls, cache_root: Path, encoder_sha256: str, dim: int) -> EmbeddingCache:
        """The cache file of one exported encoder."""
        name = f"{encoder_sha256[:16]}-{CACHE_RECIPE}.safetensors"
        return cls(cache_root / "embeddings" / name, dim)

    def __len__(self) -> int:
        return len(self._rows)

    def embed(
        self, texts: Sequence[str], compute: Callable[[Sequence[str]], np.ndarray]
    ) -> np.ndarray:
        """Vectors of ``texts``; only texts not cached are passed to ``compute`` (once each)."""
        keys = [text_key(t) for t in texts]
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._rows and key not in missing:
                missing[key] = text
        if missing:
            computed = compute(list(missing.values()))
            base = len(self._rows)
            self._vectors.append(np.asarray(computed, dtype=np.float32))
            for offset, key in enumerate(missing):
                self._rows[key] = base + offset
            self._dirty = True
        table = self._table()
        return table[[self._rows[k] for k in keys]] if keys else np.zeros((0, self.dim), np.float32)

    def save(self) -> None:
        """Write the cache when it changed (atomically: a crash never leaves half a file)."""
        from safetensors.numpy import save_file

        if not self._dirty:
            return
        keys = np.frombuffer(
            b"".join(key for key, _row in sorted(self._rows.items(), key=lambda item: item[1])),
            dtype=np.uint8,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
        save_file({"keys": keys.reshape(-1, 16).copy(), "vectors": self._table()}, str(scratch))
        scratch.replace(self.path)
        self._dirty = False

    def _table(self) -> np.ndarray:
        if len(self._vectors) > 1:
            self._vectors = [np.concatenate(self._vectors)]
        return self._vectors[0] if self._vectors else np.zeros((0, self.dim), np.float32)
