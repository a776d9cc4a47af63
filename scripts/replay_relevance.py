#!/usr/bin/env python
"""Relevance of `voice suggest` replays on one yardstick: cosine in the reference MiniLM space.

    python scripts/replay_relevance.py qa_minilm.jsonl qa_static.jsonl [--bootstrap 2000]

Each replay's own ``similarity`` is measured in its model's encoder space, so replays of models
with different encoders (MiniLM, static, a truncated MiniLM) cannot be compared on it. This
re-embeds every suggestion and every actual agent turn with the full int8 MiniLM (through the
embedding cache) and prints, per replay, the mean cosine of the top-1 suggestion and of the best
of the top-k with what the agent said. With two or more replays of the same conversations, each
later one is compared with the first: the paired difference and a bootstrap 95 % interval that
resamples conversations (turns of one call are not independent).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from suggest.encoder import load_encoder
from suggest.encoder.export import ensure_encoder
from suggest.train.texts import embed_all

CACHE = Path.home() / ".cache" / "nextline"


def read_replay(path: Path) -> list[dict]:
    """Rows of a replay, in (conversation, turn) order."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: (r["conversation"], r["turn"]))


def scores(rows: Sequence[dict], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 cosine, best-of-k cosine) per row; a row without suggestions scores 0."""
    top1, best = np.zeros(len(rows)), np.zeros(len(rows))
    for i, row in enumerate(rows):
        actual = vectors[row["actual"]]
        sims = [float(vectors[s["text"]] @ actual) for s in row["suggestions"]]
        top1[i], best[i] = (sims[0], max(sims)) if sims else (0.0, 0.0)
    return top1, best


def paired_ci(
    diff: np.ndarray, groups: np.ndarray, rounds: int, seed: int = 0
) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of ``diff``, resampling whole groups."""
    rng = np.random.default_rng(seed)
    ids, index = np.unique(groups, return_inverse=True)
    sums, counts = np.bincount(index, diff), np.bincount(index)
    draws = rng.integers(0, len(ids), (rounds, len(ids)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("replays", nargs="+", type=Path, help="`voice suggest --out` files")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap rounds")
    args = parser.parse_args()
    replays = {path: read_replay(path) for path in args.replays}
    texts = {r["actual"] for rows in replays.values() for r in rows}
    texts |= {s["text"] for rows in replays.values() for r in rows for s in r["suggestions"]}
    vectors = embed_all(sorted(texts), load_encoder(ensure_encoder(CACHE), parallel=2), CACHE)
    first_path, first_rows = next(iter(replays.items()))
    first = scores(first_rows, vectors)
    keys = [(r["conversation"], r["turn"]) for r in first_rows]
    print("| replay | turns | top-1 similarity | best of top-k |")
    print("|---|---|---|---|")
    results = {path: scores(rows, vectors) for path, rows in replays.items()}
    for path, (top1, best) in results.items():
        print(f"| {path.name} | {len(top1)} | {top1.mean():.3f} | {best.mean():.3f} |")
    groups = np.array([conversation for conversation, _ in keys])
    for path, rows in list(replays.items())[1:]:
        if [(r["conversation"], r["turn"]) for r in rows] != keys:
            print(f"{path.name}: not the same turns as {first_path.name}; no paired comparison")
            continue
        cells = []
        for mine, base in zip(results[path], first, strict=True):
            low, high = paired_ci(mine - base, groups, args.bootstrap)
            cells.append(f"{(mine - base).mean():+.3f} ({low:+.3f} to {high:+.3f})")
        print(f"| {path.name} - {first_path.name} (95 % CI) | | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
