"""Per-call speaker centroids of online attribution: founding, k-means re-estimation, labels."""

from __future__ import annotations

import itertools

import numpy as np

from diarize.errors import InvalidAudioError


class SpeakerCentroids:
    """Per-call speaker centroids on the unit sphere, re-estimated from the call's recent windows.

    A window founds a new speaker when its cosine distance to every centroid exceeds
    ``new_speaker_distance`` (at most ``max_speakers``). Once there are several speakers, each
    window re-runs a weighted spherical k-means over the recent windows (weights halve every
    ``half_life_windows`` windows: a decaying average), started from the current centroids and from
    farthest-point seeds, keeping the best fit; labels stay stable by matching the new
    clusters to the windows' previous labels.

    measured (SpokenWOZ mixed to mono, 1.5 s windows): the two parties' centroids are 0.70-0.82
    cosine-similar and a single window is as close to the other party's one-window centroid as
    to its own, so founding plus a decaying-average update alone labelled 56-79 % of the speech
    right (the second speaker was founded from an outlier of the first, or never); with the
    k-means re-estimation 92 % (oracle centroids: 95 %).
    """

    def __init__(
        self,
        *,
        max_speakers: int,
        new_speaker_distance: float,
        half_life_windows: float,
        history_windows: int,
    ) -> None:
        """Set the tracker up (``half_life_windows``: windows after which one counts half)."""
        self.max_speakers = max_speakers
        self.new_speaker_distance = new_speaker_distance
        self.history_windows = history_windows
        self._decay = 0.5 ** (1.0 / half_life_windows)
        self.reset()

    def reset(self) -> None:
        """Forget every speaker and window."""
        self.centroids = np.zeros((0, 0), dtype=np.float32)
        self._windows: list[np.ndarray] = []
        self._labels: list[int] = []

    @property
    def num_speakers(self) -> int:
        """Speakers found so far."""
        return len(self.centroids)

    def assign(self, embedding: np.ndarray) -> tuple[int, float]:
        """Index of the speaker ``embedding`` belongs to (maybe a new one) and its similarity."""
        unit = unit_vector(embedding)
        similarities = self.centroids @ unit if self.num_speakers else np.zeros(0)
        far = not similarities.size or 1.0 - similarities.max() > self.new_speaker_distance
        if far and self.num_speakers < self.max_speakers:
            self.centroids = np.vstack([self.centroids.reshape(-1, len(unit)), unit[None]])
            self._remember(unit, self.num_speakers - 1)
            return self.num_speakers - 1, 1.0
        self._remember(unit, int(np.argmax(similarities)))
        if self.num_speakers > 1:
            self._recluster()
        else:
            self.centroids = unit_vector(self._weights() @ np.stack(self._windows))[None]
        similarities = self.centroids @ unit
        best = int(np.argmax(similarities))
        self._labels[-1] = best
        return best, float(similarities[best])

    def _remember(self, unit: np.ndarray, label: int) -> None:
        self._windows.append(unit)
        self._labels.append(label)
        del self._windows[: -self.history_windows]
        del self._labels[: -self.history_windows]

    def _weights(self) -> np.ndarray:
        """Weight of each remembered window: 1 for the newest, halving every half-life."""
        ages = np.arange(len(self._windows), dtype=np.float32)[::-1]
        return np.power(np.float32(self._decay), ages).astype(np.float32)

    def _recluster(self) -> None:
        windows, weights = np.stack(self._windows), self._weights()
        best_fit, best = -np.inf, self.centroids
        for start in self._seeds(windows):
            centroids, fit = _spherical_kmeans(windows, weights, start)
            if fit > best_fit:
                best_fit, best = fit, centroids
        self.centroids = self._keep_labels(windows, weights, best)

    def _seeds(self, windows: np.ndarray) -> list[np.ndarray]:
        """The current centroids, and farthest-point seeds from a few windows across the history."""
        seeds = [self.centroids]
        for first in range(0, len(windows), max(1, len(windows) // _SEED_TRIES)):
            chosen = [first]
            while len(chosen) < self.num_speakers:
                closeness = (windows @ windows[chosen].T).max(axis=1)
                chosen.append(int(np.argmin(closeness)))
            seeds.append(windows[chosen])
        return seeds

    def _keep_labels(
        self, windows: np.ndarray, weights: np.ndarray, centroids: np.ndarray
    ) -> np.ndarray:
        """Order ``centroids`` so their clusters agree most with the windows' earlier labels."""
        assigned = np.argmax(windows @ centroids.T, axis=1)
        previous = np.asarray(self._labels)
        agreement = np.zeros((len(centroids), len(centroids)))
        np.add.at(agreement, (assigned, previous), weights)
        order = max(
            itertools.permutations(range(len(centroids))),
            key=lambda perm: sum(agreement[new, old] for old, new in enumerate(perm)),
        )
        return centroids[list(order)]


_SEED_TRIES = 4
"""Farthest-point seedings per re-estimation (besides the current centroids). measured: one
seeding from the first window stayed in a split of the first speaker on 3 of 5 calls."""
_KMEANS_ITERATIONS = 20


def _spherical_kmeans(
    windows: np.ndarray, weights: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, float]:
    """Weighted spherical k-means from ``start``: centroids and the weighted sum of similarities
    (``-inf`` when a cluster empties: fewer speakers than centroids in this stretch)."""
    centroids = start
    for _ in range(_KMEANS_ITERATIONS):
        assigned = np.argmax(windows @ centroids.T, axis=1)
        if len(np.unique(assigned)) < len(centroids):
            return centroids, -np.inf
        sums = np.stack(
            [weights[assigned == k] @ windows[assigned == k] for k in range(len(centroids))]
        )
        updated = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        if np.allclose(updated, centroids, atol=1e-5):
            break
        centroids = updated
    return centroids, float(weights @ (windows @ centroids.T).max(axis=1))


def unit_vector(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to length 1 (float32).

    Raises:
        InvalidAudioError: the vector is zero or not finite (an embedding of silence).
    """
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        raise InvalidAudioError(
            "zero or non-finite speaker embedding", hint="embed speech, not silence"
        )
    return (np.asarray(vector, dtype=np.float32) / norm).astype(np.float32)
