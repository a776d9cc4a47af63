"""The segmentation's cannot-link constraints in clustering, on synthetic chunks."""

from __future__ import annotations

import numpy as np
import pytest
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarize.clustering import (
    ConstrainedAgglomerativeClustering,
    exclusive_assignment,
    simultaneous_speakers,
)

pytestmark = pytest.mark.unit

FRAMES = 100


def _segmentation(*chunks: tuple[int, ...]) -> np.ndarray:
    """One chunk per tuple: frames each of 3 local speakers talks alone, one after another."""
    data = np.zeros((len(chunks), FRAMES, 3), dtype=np.float32)
    for c, lengths in enumerate(chunks):
        start = 0
        for speaker, length in enumerate(lengths):
            data[c, start:start + length, speaker] = 1.0
            start += length
    return data


def test_speaker_floor_needs_two_chunks_with_both_talking_long_enough() -> None:
    assert simultaneous_speakers(_segmentation((60, 30, 0), (50, 40, 0), (90, 0, 0))) == 2
    assert simultaneous_speakers(_segmentation((60, 30, 0), (90, 0, 0), (90, 0, 0))) == 1
    # 10 % of a chunk alone is too little to count as a second person
    assert simultaneous_speakers(_segmentation((80, 10, 0), (80, 10, 0))) == 1
    assert simultaneous_speakers(_segmentation((30, 30, 30), (30, 30, 30))) == 3


def test_local_speakers_of_one_chunk_get_distinct_clusters() -> None:
    segmentation = _segmentation((50, 50, 0))
    # both active speakers prefer cluster 0; the silent third would like cluster 1
    soft = np.array([[[1.9, 1.5], [1.8, 1.6], [0.0, 2.0]]])
    hard = exclusive_assignment(soft, segmentation)
    assert hard.tolist() == [[0, 1, -2]]


def test_a_speaker_without_a_free_cluster_keeps_its_speech() -> None:
    segmentation = _segmentation((30, 30, 30))
    soft = np.array([[[1.9, 0.5], [1.8, 0.4], [0.3, 1.7]]])
    hard = exclusive_assignment(soft, segmentation)
    assert hard[0, 2] == 1 and sorted(hard[0, :2].tolist()) == [0, 0]
    # without any embedding, every active speaker still gets a real cluster
    assert (exclusive_assignment(np.full((1, 3, 2), np.nan), segmentation) >= 0).all()


def test_close_voices_that_talk_in_the_same_chunks_are_two_speakers() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=192)
    voices = [base + 0.25 * rng.normal(size=192) for _ in range(2)]  # closer than threshold
    chunks = 12
    embeddings = np.full((chunks, 3, 192), np.nan)
    for c in range(chunks):
        for speaker in range(2):
            embeddings[c, speaker] = voices[speaker] + 0.05 * rng.normal(size=192)
    segmentation = SlidingWindowFeature(
        _segmentation(*[(50, 50, 0)] * chunks), SlidingWindow(duration=10.0, step=1.0)
    )
    clustering = ConstrainedAgglomerativeClustering()
    clustering.instantiate({"method": "centroid", "threshold": 1.5, "min_cluster_size": 3})
    hard, _, centroids = clustering(embeddings.copy(), segmentation)
    assert len(centroids) == 2
    assert (hard[:, 0] != hard[:, 1]).all() and (hard[:, 2] == -2).all()
    # the floor gives way to an explicit count
    hard_one, _, _ = clustering(embeddings.copy(), segmentation, num_clusters=1)
    assert set(hard_one[:, :2].ravel().tolist()) == {0}
