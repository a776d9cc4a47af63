"""Build a static encoder from the installed MiniLM (training time; needs torch, transformers).

The recipe is model2vec's (Tulkens & van Dongen 2024, https://github.com/MinishLab/model2vec),
re-implemented here because model2vec's ``distill`` extra pins transformers < 5.4 and pulls
skeletoken, while this project runs transformers 5.x:

1. every WordPiece token of MiniLM's vocabulary goes through MiniLM alone, as
   ``[CLS] token [SEP]``, and the mean of the three output vectors is its raw vector (cached per
   MiniLM package version: ~65 s CPU once on the 2-core box);
2. PCA of the raw vectors to ``dims`` components, then SIF weighting ``a / (a + p(token))``
   with p from Zipf's law over the vocabulary order (a = 1e-4), as model2vec does;
3. optionally (``fit``) a linear map from the mean token vector to MiniLM's own sentence
   vectors, fitted by ridge regression on the training texts' MiniLM embeddings. This puts
   the cheap vectors into MiniLM's space. Measured on PersuasionForGood training texts (fit on
   80 % of the conversations, scored on the other 20 %): Spearman correlation of pairwise
   cosines with MiniLM's 0.41 -> 0.79, nearest-10 overlap 0.22 -> 0.32, mean cosine to the
   MiniLM vector 0.79 (docs/results/suggest.md).

The table is stored in float16 (half the size; the engine computes in float32) and the encoder
is then loaded through :class:`StaticSentenceEncoder`, the serving class, for training too.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from suggest.encoder.export import MINILM_PACKAGE, MINILM_SOURCE
from suggest.encoder.spec import EncoderSpec
from suggest.encoder.static_encoder import STATIC_FILES, normalise
from suggest.models import minilm_path

DISTILL_RECIPE = 1
"""Bump when the steps change, so cached token vectors and tables are rebuilt."""
SIF_COEFFICIENT = 1e-4
SKIPPED_TOKENS = re.compile(r"\[(unused\d+|PAD|CLS|SEP|MASK|UNK)\]")
"""Never embedded (zero rows): they carry no meaning, and a zero row does not move a mean's
direction."""

EmbedTexts = Callable[[Sequence[str]], np.ndarray]


def ensure_static_encoder(
    cache_root: Path,
    *,
    dims: int = 256,
    fit_texts: Sequence[str] = (),
    embed_reference: EmbedTexts | None = None,
    ridge: float = 0.1,
) -> Path:
    """The cached static encoder directory for these settings, building it when missing.

    ``fit_texts`` with ``embed_reference`` (MiniLM's ``encode``) fit the map; without them the
    map is the identity (plain model2vec). The directory name digests the fit texts, so
    each training set gets its own table and reuses it on retraining.
    """
    package = _package()
    texts = sorted(set(fit_texts)) if embed_reference is not None else []
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12] if texts else "none"
    key = f"static-{package.split('==')[1]}-d{dims}-fit{digest}-r{ridge:g}-r{DISTILL_RECIPE}"
    target = cache_root / "encoders" / key
    if all((target / name).is_file() for name in STATIC_FILES):
        return target
    tokens = _pca_sif(raw_token_vectors(cache_root), dims)
    mapping = np.eye(dims, dtype=np.float32)
    if texts and embed_reference is not None:
        mapping = fit_map(tokens, texts, embed_reference(texts), ridge)
    recipe = {
        "pca_dims": dims,
        "sif": SIF_COEFFICIENT,
        "map": "ridge" if texts else "identity",
        "ridge": ridge if texts else None,
        "fit_texts": len(texts),
        "fit_texts_sha256": digest if texts else None,
        "distill_recipe": DISTILL_RECIPE,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / "encoder"
        write_static_encoder(built, tokens, mapping, package=package, recipe=recipe)
        if not target.exists():  # another process may have finished first: keep theirs
            built.rename(target)
    return target


def write_static_encoder(
    out: Path, tokens: np.ndarray, mapping: np.ndarray, *, package: str, recipe: dict
) -> EncoderSpec:
    """Write ``embeddings.safetensors``, ``tokenizer.json`` and ``encoder.json`` into ``out``."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {"tokens": tokens.astype(np.float16), "map": mapping.astype(np.float32)},
        str(out / "embeddings.safetensors"),
    )
    shutil.copyfile(minilm_path() / "tokenizer.json", out / "tokenizer.json")
    spec = EncoderSpec(
        source=MINILM_SOURCE,
        package=package,
        quantization="none",
        max_tokens=0,
        dim=int(mapping.shape[1]),
        sha256=hashlib.sha256((out / "embeddings.safetensors").read_bytes()).hexdigest(),
        kind="static",
        layers=6,
        recipe=recipe,
    )
    (out / "encoder.json").write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    return spec


def raw_token_vectors(cache_root: Path) -> np.ndarray:
    """(vocab, 384) float32: MiniLM's mean output for ``[CLS] token [SEP]`` (cached)."""
    from safetensors.numpy import load_file, save_file

    path = cache_root / "encoders" / f"static-tokens-{_package().split('==')[1]}-r{DISTILL_RECIPE}.safetensors"
    if path.is_file():
        return load_file(str(path))["vectors"]
    vectors = _forward_vocabulary(minilm_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    save_file({"vectors": vectors}, str(scratch))
    scratch.replace(path)
    return vectors


def fit_map(
    tokens: np.ndarray, texts: Sequence[str], targets: np.ndarray, ridge: float
) -> np.ndarray:
    """(dims, 384) ridge map from the normalised mean token vector of a text to its target."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    table = tokens.astype(np.float16).astype(np.float32)  # what serving will read
    means = np.zeros((len(texts), tokens.shape[1]), np.float32)
    for row, item in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):
        if item.ids:
            means[row] = table[item.ids].mean(axis=0)
    x = normalise(means)
    gram = x.T @ x + ridge * np.eye(x.shape[1], dtype=np.float32)
    return np.linalg.solve(gram, x.T @ targets).astype(np.float32)


def _pca_sif(raw: np.ndarray, dims: int) -> np.ndarray:
    """PCA to ``dims`` (sign-fixed, as model2vec) and Zipf-SIF weights by vocabulary order."""
    used = np.abs(raw).sum(axis=1) > 0
    centred = raw[used] - raw[used].mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred / (len(centred) - 1))
    components = vectors[:, ::-1][:, :dims]
    scores = centred @ components
    scores *= np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(dims)])
    inverse_rank = 1.0 / np.arange(2, len(raw) + 2)
    probability = inverse_rank / inverse_rank.sum()
    weights = SIF_COEFFICIENT / (SIF_COEFFICIENT + probability)
    table = np.zeros((len(raw), dims), np.float32)
    table[used] = scores * weights[used, None]
    return table


def _forward_vocabulary(source: Path, batch: int = 1024) -> np.ndarray:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    vocabulary = Tokenizer.from_file(str(source / "tokenizer.json")).get_vocab()
    model = AutoModel.from_pretrained(str(source)).eval()
    ids = sorted(i for token, i in vocabulary.items() if not SKIPPED_TOKENS.fullmatch(token))
    cls, sep = vocabulary["[CLS]"], vocabulary["[SEP]"]
    out = np.zeros((len(vocabulary), int(model.config.hidden_size)), np.float32)
    with torch.inference_mode():
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            inputs = torch.tensor([[cls, i, sep] for i in chunk])
            hidden = model(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                token_type_ids=torch.zeros_like(inputs),
            ).last_hidden_state
            out[chunk] = hidden.mean(dim=1).numpy()
    return out


def _package() -> str:
    try:
        return f"{MINILM_PACKAGE}=={version(MINILM_PACKAGE)}"
    except PackageNotFoundError:
        return f"{MINILM_PACKAGE}==unknown"
