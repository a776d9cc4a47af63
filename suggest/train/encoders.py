"""The sentence encoder a model is trained with (and then served with): built or reused.

``minilm``: all-MiniLM-L6-v2 exported to ONNX (``encoder_layers`` < 6 keeps its first layers);
``static``: a token table distilled from that MiniLM, with a linear map fitted so that its
vectors approximate MiniLM's on the training texts (``suggest.encoder.distill``). The map is
fitted on the *training side* only, so held-out scores stay honest.

Either of the cheaper spaces has another geometry than the full MiniLM the clustering threshold
was calibrated in; :func:`reference_embedder` gives that MiniLM for choosing K (``suggest.clusters``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from suggest.encoder.distill import ensure_static_encoder
from suggest.encoder.export import ensure_encoder
from suggest.encoder.onnx_encoder import OnnxSentenceEncoder
from suggest.train.config import TrainConfig
from suggest.train.texts import embed_all

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
