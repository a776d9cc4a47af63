"""Unsupervised discovery of discrete moves: agent actions and customer intents.

Both are spherical k-means over unit-length sentence embeddings. ``K`` is chosen from the data:
the smallest ``K`` of a grid whose *coverage* (share of turns whose cosine to their own centroid
is at least ``threshold``) reaches ``target_coverage`` — the "80/20 cover" of what is said. Each
cluster is named by its top c-TF-IDF keywords and shown by its medoid and nearest examples.

The 0.5 threshold is calibrated for the full MiniLM's space. A cheaper encoder has another
geometry (a truncated MiniLM puts almost any two turns within 0.5; the static encoder is
coarser), so its own cosines would pick the bottom of the grid whatever the data. With such an
encoder, K is chosen on the same turns embedded by the reference MiniLM, and the threshold in
the encoder's own space is the one under which it covers the same share of turns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from suggest.errors import TrainingError


@dataclass(frozen=True)
class ClusterInfo:
    """What one cluster is, for people (names, keywords, examples) and for the record (size)."""

    id: int
    name: str
    keywords: tuple[str, ...]
    medoid: str
    """The member text closest to the centroid."""
    examples: tuple[str, ...]
    size: int
    share: float
    """Share of the clustered turns assigned to this cluster."""


@dataclass(frozen=True)
class ClusterOptions:
    """How to cluster one kind of turn."""

    k_grid: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64)
    """Candidate sizes, smallest first; the first reaching ``target_coverage`` wins."""
    threshold: float = 0.5
    """Cosine to the own centroid at or above which a turn counts as covered."""
    target_coverage: float = 0.8
    selection_sample: int = 3000
    """K is chosen on at most this many turns (the final fit uses all): keeps training fast."""
    keywords: int = 4
    examples: int = 5
    seed: int = 0

    def fixed(self, k: int) -> ClusterOptions:
        """The same options with K fixed to ``k`` instead of chosen by coverage."""
        if k < 2:
            raise ValueError(f"K must be at least 2, got {k}")
        return replace(self, k_grid=(k,))


@dataclass
class ClusterSet:
    """Fitted clusters: unit centroids plus their descriptions and how K was chosen."""

    centroids: np.ndarray
    infos: list[ClusterInfo]
    threshold: float
    coverage: float
    coverage_by_k: dict[int, float] = field(default_factory=dict)
    coverage_space: str = "own space"
    """Where ``coverage_by_k`` was measured (and so K chosen, unless fixed): this space, or the
    reference MiniLM's (see module docstring)."""

    @property
    def k(self) -> int:
        """Number of clusters."""
        return len(self.infos)

    def assign(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nearest cluster id, cosine to it) per row of unit-length ``embeddings``."""
        sims = embeddings @ self.centroids.T
        labels = sims.argmax(axis=1)
        return labels, sims[np.arange(len(labels)), labels]


def discover(
    embeddings: np.ndarray,
    texts: Sequence[str],
    options: ClusterOptions,
    *,
    reference: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> ClusterSet:
    """Cluster the turns, choosing K by coverage (see module docstring).

    A one-entry ``k_grid`` fixes K (``ClusterOptions.fixed``); coverage is still reported.
    ``reference``: unit vectors of texts in the space ``options.threshold`` was calibrated in,
    for an encoder of another geometry: K is chosen there, and the threshold of this space is
    set so that it covers the share of turns the reference covers at that K.

    Raises:
        TrainingError: fewer turns than the smallest K.
    """
    if len(texts) < max(2, options.k_grid[0]):
        raise TrainingError(
            f"{len(texts)} turns cannot form {options.k_grid[0]} clusters", hint="add conversations"
        )
    rng = np.random.default_rng(options.seed)
    sample = rng.choice(len(texts), size=min(len(texts), options.selection_sample), replace=False)
    if reference is None:
        chosen, coverage_by_k = _choose_k(embeddings[sample], options)
    else:
        chosen, coverage_by_k = _choose_k(reference([texts[i] for i in sample]), options)
    centroids = _spherical_kmeans(embeddings, min(chosen, len(texts) - 1), options.seed)
    labels, sims = ClusterSet(centroids, [], options.threshold, 0.0).assign(embeddings)
    threshold = options.threshold
    if reference is not None:
        target = coverage_by_k.get(chosen, options.target_coverage)
        threshold = round(float(np.quantile(sims, 1.0 - target)), 4)
    infos = describe(centroids, labels, sims, embeddings, texts, options)
    return ClusterSet(
        centroids=centroids,
        infos=infos,
        threshold=threshold,
        coverage=float((sims >= threshold).mean()),
        coverage_by_k=coverage_by_k,
        coverage_space="own space" if reference is None else "reference MiniLM",
    )


def _choose_k(embeddings: np.ndarray, options: ClusterOptions) -> tuple[int, dict[int, float]]:
    """The first K of the grid whose coverage of ``embeddings`` reaches the target, and the
    coverage of each K tried. None reaching it: the largest K tried, or the grid's largest when
    the turns ran out first (``discover`` caps it at the number of turns)."""
    coverage_by_k: dict[int, float] = {}
    for k in options.k_grid:
        if k >= len(embeddings):
            return options.k_grid[-1], coverage_by_k
        centroids = _spherical_kmeans(embeddings, k, options.seed, n_init=1)
        sims = (embeddings @ centroids.T).max(axis=1)
        coverage_by_k[k] = float((sims >= options.threshold).mean())
        if coverage_by_k[k] >= options.target_coverage:
            return k, coverage_by_k
    return (max(coverage_by_k) if coverage_by_k else options.k_grid[0]), coverage_by_k


def describe(
    centroids: np.ndarray,
    labels: np.ndarray,
    sims: np.ndarray,
    embeddings: np.ndarray,
    texts: Sequence[str],
    options: ClusterOptions,
) -> list[ClusterInfo]:
    """Names (top keywords), medoids and examples of fitted clusters."""
    keywords = _ctfidf_keywords(texts, labels, len(centroids), options.keywords)
    infos: list[ClusterInfo] = []
    used: set[str] = set()
    for cluster in range(len(centroids)):
        members = np.flatnonzero(labels == cluster)
        ranked = members[np.argsort(-sims[members])] if len(members) else members
        examples = tuple(dict.fromkeys(texts[i] for i in ranked[: options.examples * 3]))[
            : options.examples
        ]
        words = keywords[cluster] or ("misc",)
        name = "_".join(w.replace(" ", "-") for w in words[:3])
        if name in used:
            name = f"{name}_{cluster}"
        used.add(name)
        infos.append(
            ClusterInfo(
                id=cluster,
                name=name,
                keywords=words,
                medoid=examples[0] if examples else "",
                examples=examples,
                size=int(len(members)),
                share=float(len(members) / max(1, len(labels))),
            )
        )
    return infos


def _spherical_kmeans(embeddings: np.ndarray, k: int, seed: int, n_init: int = 2) -> np.ndarray:
    """k-means on unit vectors, centroids re-normalised: cosine k-means, sklearn's solver."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed, max_iter=100).fit(embeddings)
    centroids = model.cluster_centers_.astype(np.float32)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-9)


def _stop_words() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    # Contraction tails ("I've" -> "ve") and chat fillers would otherwise name clusters.
    return sorted(
        ENGLISH_STOP_WORDS
        | {
            "ve",
            "ll",
            "re",
            "don",
            "didn",
            "doesn",
            "isn",
            "wasn",
            "haven",
            "im",
            "ok",
            "okay",
            "oh",
            "yeah",
            "just",
            "really",
        }
    )


def _ctfidf_keywords(
    texts: Sequence[str], labels: np.ndarray, k: int, top: int
) -> list[tuple[str, ...]]:
    """Class-based TF-IDF (BERTopic's c-TF-IDF): each cluster's text as one document."""
    from sklearn.feature_extraction.text import CountVectorizer

    documents = [" ".join(texts[i] for i in np.flatnonzero(labels == c).tolist()) for c in range(k)]
    try:
        counts = CountVectorizer(
            stop_words=_stop_words(),
            token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",
            ngram_range=(1, 2),
            max_features=30000,
        ).fit(documents)
    except ValueError:  # every word is a stop word
        return [() for _ in range(k)]
    matrix = counts.transform(documents).astype(np.float64).toarray()
    frequency = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    idf = np.log(1.0 + matrix.sum(axis=1).mean() / np.maximum(matrix.sum(axis=0), 1.0))
    scores = frequency * idf
    vocabulary = counts.get_feature_names_out()
    return [_distinct_terms(vocabulary, row, top) for row in scores]


def _distinct_terms(vocabulary: np.ndarray, scores: np.ndarray, top: int) -> tuple[str, ...]:
    """Best-scoring terms sharing no word with a better one ("donate", then not "like donate")."""
    chosen: list[str] = []
    words: set[str] = set()
    for j in np.argsort(-scores)[: top * 10]:
        if scores[j] <= 0 or len(chosen) == top:
            break
        term_words = set(str(vocabulary[j]).split())
        if not term_words & words:
            chosen.append(str(vocabulary[j]))
            words |= term_words
    return tuple(chosen)
