"""Batched DTW and median filter of the torch backend's word timing against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.word_timing import _median_filter, _merge_punctuations, _Timing, dtw_jumps

pytestmark = pytest.mark.unit


def _reference_dtw(x: np.ndarray) -> np.ndarray:
    """Whisper's ``dtw_cpu`` plus faster-whisper's jump extraction, cell by cell."""
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0
    trace = -np.ones((n + 1, m + 1))
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j], trace[i, j] = x[i - 1, j - 1] + c, t
    trace[0, :], trace[:, 0] = 2, 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        i, j = (i - 1, j - 1) if t == 0 else (i - 1, j) if t == 1 else (i, j - 1)
    rows, cols = np.array(path[::-1]).T
    return cols[np.pad(np.diff(rows), (1, 0), constant_values=1).astype(bool)]


def test_batched_dtw_matches_the_cell_by_cell_reference() -> None:
    rng = np.random.default_rng(7)
    shapes = [(int(rng.integers(1, 10)), int(rng.integers(1, 40))) for _ in range(24)]
    shapes += [(5, 5), (1, 1), (8, 3)]
    matrices = [rng.normal(size=s) for s in shapes]
    batch = torch.zeros(
        len(shapes), max(s[0] for s in shapes), max(s[1] for s in shapes), dtype=torch.float64
    )
    for k, matrix in enumerate(matrices):
        batch[k, : matrix.shape[0], : matrix.shape[1]] = torch.from_numpy(matrix)
    got = dtw_jumps(batch, [s[0] for s in shapes], [s[1] for s in shapes])
    for matrix, jumps in zip(matrices, got, strict=True):
        np.testing.assert_array_equal(jumps, _reference_dtw(-matrix))


def test_median_filter_reflects_each_row_at_its_own_end() -> None:
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(2, 1, 2, 12)))
    frames = torch.tensor([12, 9])
    got = _median_filter(x, frames)
    for b, length in enumerate(frames.tolist()):
        row = x[b, 0, 0, :length].numpy()
        padded = np.pad(row, 3, mode="reflect")
        expected = np.median(np.lib.stride_tricks.sliding_window_view(padded, 7), axis=-1)
        np.testing.assert_allclose(got[b, 0, 0, :length].numpy(), expected)
    short = _median_filter(x, torch.tensor([3, 2]))
    assert torch.equal(short, x)  # CTranslate2 leaves rows of <= 3 frames unfiltered


def test_punctuation_joins_its_word() -> None:
    texts = [" Hello", ",", " (", "world", ")"]
    words = [_Timing(w, [i], 0.0, 0.0, 1.0) for i, w in enumerate(texts)]
    _merge_punctuations(words)
    assert [w.word for w in words] == [" Hello,", "", "", " (world)", ""]
    assert words[3].tokens == [2, 3, 4]
