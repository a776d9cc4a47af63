"""The sentence encoder a model is trained with (and then served with): built or reused.

``minilm``: all-MiniLM-L6-v2 exported to ONNX (``encoder_layers`` < 6 keeps its first layers);
``static``: a token table distilled from that MiniLM, with a linear map fitted so that its
vectors approximate MiniLM's on the training texts (``suggest.encoder.distill``). The map is
fitted on the *training side* only, so held-out scores stay honest.

Either of the cheaper spaces has another geometry than the full MiniLM the clustering threshold
was calibrated in; :func:`reference_embedder` gives that MiniLM for choosing K (``suggest.clusters``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from suggest.encoder.distill import ensure_static_encoder
from suggest.encoder.export import ensure_encoder
from suggest.encoder.onnx_encoder import OnnxSentenceEncoder
from suggest.realise import REPEAT_COSINE
from suggest.train.config import TrainConfig
from suggest.train.texts import embed_all
from suggest.types import Conversation

FULL_MINILM_LAYERS = 6


def prepare_encoder(
    config: TrainConfig,
    cache_dir: Path,
    texts: Sequence[str],
    say: Callable[[str], None] = lambda _step: None,
) -> Path:
    """Directory of the encoder ``config`` asks for, built into ``cache_dir`` when missing.

    ``texts``: the training texts (the static map is fitted on at most
    ``config.static_fit_texts`` of them, drawn with ``config.seed``).
    """
    if config.encoder == "minilm":
        say("exporting the sentence encoder")
        return ensure_encoder(
            cache_dir, config.encoder_quantization, config.max_tokens, config.encoder_layers
        )
    say("distilling the static encoder from MiniLM")
    distinct = sorted(set(texts))
    if len(distinct) > config.static_fit_texts:
        distinct = sorted(random.Random(config.seed).sample(distinct, config.static_fit_texts))
    return ensure_static_encoder(
        cache_dir,
        dims=config.static_dims,
        fit_texts=distinct if config.static_fit_texts else (),
        embed_reference=_minilm_embedder(config, cache_dir) if config.static_fit_texts else None,
    )


def reference_embedder(
    config: TrainConfig, cache_dir: Path, *, remember: bool = True
) -> Callable[[Sequence[str]], np.ndarray] | None:
    """Embeds texts with the full int8 MiniLM when ``config``'s encoder has another space
    (static, or fewer layers); None when it is that MiniLM (fp32 is the same space).

    ``remember``: keep the vectors in the on-disk embedding cache (training data); False for
    live calls' texts, which must not outlive the call's own retention.
    """
    if config.encoder == "minilm" and config.encoder_layers == FULL_MINILM_LAYERS:
        return None
    return _minilm_embedder(config, cache_dir, remember=remember)


MIN_REPEATS = 20
"""Consecutive agent-turn pairs the reference must call repeats before the mapping is trusted."""


def repeat_cosine_in_own_space(
    chosen: Sequence[Conversation],
    vectors: Mapping[str, np.ndarray],
    reference: Callable[[Sequence[str]], np.ndarray],
) -> float | None:
    """The repeat threshold of this encoder's space (``suggest.realise.REPEAT_COSINE`` is
    MiniLM's): the cosine above which the same share of an agent's consecutive turns count as
    repeats as in the reference MiniLM. None when the data has too few repeats to place it.

    In a space where unrelated turns are closer (random pairs: 0.24 in MiniLM, 0.38 static, 0.61
    with 3 layers) MiniLM's 0.92 would skip wordings that are not repeats at all.
    """
    pairs = [
        (first.text, second.text)
        for conversation in chosen
        for first, second in itertools.pairwise(
            [t for t in conversation.turns if t.role == "agent"]
        )
    ]
    if not pairs:
        return None
    firsts, seconds = (list(side) for side in zip(*pairs, strict=True))
    reference_cosine = np.einsum("ij,ij->i", reference(firsts), reference(seconds))
    repeats = int((reference_cosine >= REPEAT_COSINE).sum())
    if repeats < MIN_REPEATS:
        return None
    own = np.stack([vectors[t] for t in firsts]), np.stack([vectors[t] for t in seconds])
    own_cosine = np.einsum("ij,ij->i", *own)
    return round(float(np.quantile(own_cosine, 1.0 - repeats / len(pairs))), 4)


def yardstick_for(
    parameters: Mapping[str, Any], cache_dir: Path, *, remember: bool = True
) -> Callable[[Sequence[str]], np.ndarray] | None:
    """The full MiniLM to measure the relevance of a model trained with ``parameters`` (its
    manifest's) when its own encoder has another space; None when it is that MiniLM."""
    config = TrainConfig(
        encoder=parameters.get("encoder", "minilm"),
        encoder_layers=parameters.get("encoder_layers", FULL_MINILM_LAYERS),
        max_tokens=parameters.get("max_tokens", TrainConfig.max_tokens),
    )
    return reference_embedder(config, cache_dir, remember=remember)


def _minilm_embedder(
    config: TrainConfig, cache_dir: Path, *, remember: bool = True
) -> Callable[[Sequence[str]], np.ndarray]:
    reference = OnnxSentenceEncoder(
        ensure_encoder(cache_dir, "int8", config.max_tokens), parallel=2
    )
    if not remember:
        return reference.encode

    def embed(texts: Sequence[str]) -> np.ndarray:
        # MiniLM vectors by text hash from the embedding cache: computed once per text.
        vectors = embed_all(texts, reference, cache_dir)
        return np.stack([vectors[t] for t in texts])

    return embed
