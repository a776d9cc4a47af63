"""Action/intent discovery: K chosen by coverage, clusters named by their own words."""

from __future__ import annotations

import numpy as np
import pytest

from suggest.clusters import ClusterOptions, discover

pytestmark = pytest.mark.unit


def _data(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:3]
    topics = ["refund money back", "cancel subscription plan", "delivery package late"]
    vectors, texts = [], []
    for index, centre in enumerate(centres):
        for n in range(60):
            vector = centre + rng.normal(0, 0.05, 8)
            vectors.append(vector / np.linalg.norm(vector))
            texts.append(f"please {topics[index]} now {n % 3}")
    return np.array(vectors, dtype=np.float32), texts


def test_smallest_k_reaching_the_coverage_target_is_chosen() -> None:
    vectors, texts = _data()
    found = discover(
        vectors, texts, ClusterOptions(k_grid=(2, 3, 4, 6), threshold=0.9, target_coverage=0.8)
    )
    assert found.k == 3
    assert found.coverage_by_k[2] < 0.8 <= found.coverage_by_k[3]
    assert found.coverage >= 0.95
    labels, sims = found.assign(vectors)
    assert len(set(labels[:60])) == len(set(labels[60:120])) == len(set(labels[120:])) == 1
    assert np.all(sims > 0.8)


def test_clusters_are_named_by_distinct_keywords_with_medoids() -> None:
    vectors, texts = _data()
    found = discover(vectors, texts, ClusterOptions(k_grid=(3,), threshold=0.9))
    names = {info.name for info in found.infos}
    assert len(names) == 3
    for info in found.infos:
        topic_words = set(info.medoid.split())
        assert set(info.keywords[0].split()) <= topic_words  # named by what its members say
        words = [w for term in info.keywords for w in term.split()]
        assert len(words) == len(set(words))  # no term repeats a better one's word
        assert info.size == 60 and abs(info.share - 1 / 3) < 1e-6


def test_the_grid_stops_at_its_largest_k_when_coverage_is_never_reached() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(200, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found = discover(
        vectors, [f"text {i}" for i in range(200)], ClusterOptions(k_grid=(2, 4, 8), threshold=0.99)
    )
    assert found.k == 8 and found.coverage < 0.8


def test_a_fixed_k_gives_exactly_k_clusters() -> None:
    vectors, texts = _data()
    options = ClusterOptions(threshold=0.9).fixed(5)
    assert options.k_grid == (5,)
    found = discover(vectors, texts, options)
    assert found.k == len(found.infos) == len(found.centroids) == 5
    assert set(found.coverage_by_k) == {5}
    with pytest.raises(ValueError):
        ClusterOptions().fixed(1)


def test_an_encoder_of_another_geometry_takes_k_from_the_reference_space() -> None:
    """A cheaper encoder crowds every turn near one direction (as a truncated MiniLM does): its
    own cosines would call K = 2 enough. K comes from the reference space instead, and the own
    threshold is set where this space covers the share the reference covers at that K."""
    vectors, texts = _data()
    crowded = vectors + 3.0  # one shared direction dominates every vector
    crowded /= np.linalg.norm(crowded, axis=1, keepdims=True)
    options = ClusterOptions(k_grid=(2, 3, 4, 6), threshold=0.9, target_coverage=0.8)
    own = discover(crowded, texts, options)
    assert own.k == 2 and own.coverage == 1.0 and own.coverage_space == "own space"

    by_text = dict(zip(texts, vectors, strict=True))
    calibrated = discover(crowded, texts, options, reference=lambda t: np.stack([by_text[x] for x in t]))
    assert calibrated.k == 3 and calibrated.coverage_space == "reference MiniLM"
    assert calibrated.coverage_by_k == discover(vectors, texts, options).coverage_by_k
    assert calibrated.threshold > 0.99  # where this crowded space separates covered from not
    assert abs(calibrated.coverage - calibrated.coverage_by_k[3]) < 0.02
    labels, _ = calibrated.assign(crowded)
    assert len(set(labels[:60])) == len(set(labels[60:120])) == len(set(labels[120:])) == 1
