"""The decode-step CUDA graphs in the GPU benchmark: the eager reference row and a text check.

Both set the decoder's graph pool aside for a while (``decoder.graphs = None``), so the same
process, model and warm-up give the comparison (:mod:`asr.torch_graphs`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report import summarize  # noqa: E402


def eager_row(
    decoder: Any, calls: list[Any], n: int, args: argparse.Namespace, step: float, run: Any
) -> dict[str, Any]:
    """One run of ``n`` calls with the decoder's graphs set aside (eager decode steps)."""
    graphs, decoder.graphs = decoder.graphs, None
    try:
        start = time.perf_counter()
        log = run(decoder, calls, n, args, step).play()
        row = summarize(n, log, args, time.perf_counter() - start, step)
    finally:
        decoder.graphs = graphs
    row["graphs"] = False
    print(
        "eager reference:",
        json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
        flush=True,
    )  # noqa: T201
    return row


def graph_check(decoder: Any, calls: list[Any], size: int) -> dict[str, Any]:
    """Texts of one batch decoded with and without the graphs: how many rows agree, and both
    times (float16 may break a near-tie differently, so a rare difference is not an error)."""
    from bench_capacity import partial_like

    requests = partial_like(calls, size, np.random.default_rng(1), None)
    began = time.perf_counter()
    graphed = decoder.decode_batch(requests)
    graphed_s = time.perf_counter() - began
    graphs, decoder.graphs = decoder.graphs, None
    try:
        began = time.perf_counter()
        eager = decoder.decode_batch(requests)
        eager_s = time.perf_counter() - began
    finally:
        decoder.graphs = graphs
    text = [[" ".join(w.text for w in words) for words in out] for out in (graphed, eager)]
    same = sum(a == b for a, b in zip(*text, strict=True))
    result = {
        "rows": size,
        "same_text": same,
        "graphed_ms": 1000 * graphed_s,
        "eager_ms": 1000 * eager_s,
    }
    print(f"  graph check: {json.dumps(result)}", flush=True)  # noqa: T201
    return result
