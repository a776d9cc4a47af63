"""Agglomerative clustering of (chunk, local speaker) embeddings, constrained by the segmentation.

pyannote's ``AgglomerativeClustering`` looks at embeddings only. The segmentation model adds
two facts it ignores, both "cannot-link" constraints:

1. Two local speakers that each talk alone for a good part of the same 10 s chunk are two
   different people. When that happens in several chunks the recording has at least that many
   speakers, whatever the threshold says. Measured: on the SpokenWOZ calls (8 kHz, mixed to
   mono) CAM++ puts the two parties of SNG0072 and SNG0696 within the 0.7 threshold, so plain
   clustering guesses one speaker and pooled DER is 34 %; with this floor it is 18 %, and the
   result no longer changes between thresholds 0.7 and 0.85 on any of our three sets (plain
   clustering collapsed the telephone sample to one speaker at 0.8).
2. Two local speakers of one chunk cannot be the same cluster (pyannote's own
   ``constrained_assignment``, on by default in its VBx clustering): solved per chunk as an
   assignment problem. Speakers that are silent in the chunk are kept out of it, and an active
   speaker left without a cluster (more local speakers than clusters) takes its closest
   cluster instead of losing its speech. Measured: -0.1 point on AMI, -0.5 on SpokenWOZ.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pyannote.core import SlidingWindowFeature
from scipy.optimize import linear_sum_assignment

with warnings.catch_warnings():
    # torchcodec cannot load beside CPU torch; the engine never decodes files with it.
    warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly")
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

MIN_ACTIVE_RATIO = 0.2
"""Share of a chunk a local speaker must talk alone to count as present (pyannote's
``filter_embeddings`` uses the same 20 % to pick the embeddings it clusters)."""
MIN_CHUNKS = 2
"""Chunks that must show k simultaneous speakers before k becomes the floor; one chunk could
be a segmentation glitch. 2 and 3 gave identical results on all our sets."""
_NO_EMBEDDING_SCORE = -1.0
"""Score of an embedding that could not be computed (valid scores, 2 - cosine distance, lie
in [0, 2])."""
_SILENT_SCORE = -2.0
"""Score of a local speaker who does not speak in the chunk: never preferred."""


class ConstrainedAgglomerativeClustering(AgglomerativeClustering):
    """pyannote ``AgglomerativeClustering`` plus the segmentation's cannot-link constraints.

    Same hyper-parameters (``method``, ``threshold``, ``min_cluster_size``), so a pipeline's
    ``params`` block works unchanged.

    Args:
        metric: embedding distance.
        constrained_assignment: give the local speakers of one chunk distinct clusters.
    """

    def __init__(self, metric: str = "cosine", constrained_assignment: bool = True) -> None:
        # The parent's constrained assignment lets silent local speakers take clusters from
        # active ones; ours replaces it (see exclusive_assignment).
        super().__init__(metric=metric, constrained_assignment=False)
        self.exclusive = constrained_assignment

    def filter_embeddings(
        self,
        embeddings: np.ndarray,
        segmentations: SlidingWindowFeature | None = None,
        min_active_ratio: float = MIN_ACTIVE_RATIO,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pyannote's choice of embeddings to cluster, or every valid one if it picks none.

        In a near-silent recording (AMI trn02) nobody talks alone for 20 % of any chunk;
        pyannote then averages an empty set into a NaN centroid.
        """
        chosen = super().filter_embeddings(embeddings, segmentations, min_active_ratio)
        if len(chosen[0]) > 0:
            return chosen
        chunk_idx, speaker_idx = np.where(~np.isnan(embeddings).any(axis=2))
        return embeddings[chunk_idx, speaker_idx], chunk_idx, speaker_idx

    def __call__(  # type: ignore[override]
        self,
        embeddings: np.ndarray,
        segmentations: SlidingWindowFeature | None = None,
        num_clusters: int | None = None,
        min_clusters: int | None = None,
        max_clusters: int | float | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cluster as pyannote does, with the speaker-count floor and exclusive assignment."""
        if num_clusters is None and segmentations is not None:
            floor = simultaneous_speakers(segmentations.data)
            ceiling = floor if max_clusters is None else max_clusters
            min_clusters = int(max(min_clusters or 1, min(floor, ceiling)))
        hard, soft, centroids = super().__call__(
            embeddings,
            segmentations=segmentations,
            num_clusters=num_clusters,
            min_clusters=min_clusters,
            max_clusters=max_clusters,  # type: ignore[arg-type]  # pyannote passes inf: no bound
        )
        if self.exclusive and segmentations is not None and soft.shape[2] > 1:
            hard = exclusive_assignment(soft, segmentations.data)
        return hard, soft, centroids


def simultaneous_speakers(
    segmentations: np.ndarray,
    min_active_ratio: float = MIN_ACTIVE_RATIO,
    min_chunks: int = MIN_CHUNKS,
) -> int:
    """Most local speakers seen talking alone for ``min_active_ratio`` of one chunk, in at
    least ``min_chunks`` chunks (1 when no chunk shows more than one).

    Args:
        segmentations: binary ``(chunks, frames, local_speakers)`` activity.
    """
    alone = segmentations.sum(axis=2, keepdims=True) == 1
    clean_frames = (segmentations * alone).sum(axis=1)
    present = (clean_frames >= min_active_ratio * segmentations.shape[1]).sum(axis=1)
    for count in range(segmentations.shape[2], 1, -1):
        if int((present >= count).sum()) >= min_chunks:
            return count
    return 1


def exclusive_assignment(soft_clusters: np.ndarray, segmentations: np.ndarray) -> np.ndarray:
    """Per chunk, the assignment of local speakers to distinct clusters with the best score.

    Args:
        soft_clusters: ``(chunks, local_speakers, clusters)`` scores, higher is closer; NaN
            where a speaker's embedding could not be computed.
        segmentations: binary ``(chunks, frames, local_speakers)`` activity.

    Returns:
        ``(chunks, local_speakers)`` cluster indices; -2 for speakers silent in the chunk.
    """
    scores = np.nan_to_num(soft_clusters, nan=_NO_EMBEDDING_SCORE)
    silent = segmentations.sum(axis=1) == 0
    scores[silent] = _SILENT_SCORE
    hard = np.full(silent.shape, -2, dtype=np.int8)
    for chunk, chunk_scores in enumerate(scores):
        speakers, clusters = linear_sum_assignment(chunk_scores, maximize=True)
        hard[chunk, speakers] = clusters
    unassigned = ~silent & (hard == -2)
    hard[unassigned] = np.argmax(scores, axis=2)[unassigned]
    hard[silent] = -2
    return hard
