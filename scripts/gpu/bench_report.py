"""Tables of the GPU benchmark: one row per run, the goals, the markdown report."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

GOALS = {"commit_p50": 1.5, "commit_p95": 2.5, "final_p50": 0.7}
"""Issue 4: word-commit latency p50/p95 and end of turn -> final p50, in seconds."""


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (NaN when there are no values)."""
    return float(np.percentile(values, q)) if values else float("nan")


def growth(points: list[tuple[float, float]]) -> float:
    """Median of the last third minus median of the first third (by audio time)."""
    if len(points) < 6:
        return 0.0
    times = np.array([t for t, _ in points])
    values = np.array([v for _, v in points])
    lo, hi = np.percentile(times, [33.3, 66.7])
    first, last = values[times <= lo], values[times >= hi]
    return float(np.median(last) - np.median(first)) if len(first) and len(last) else 0.0


def summarize(
    n: int, log: Any, args: argparse.Namespace, wall: float, step: float
) -> dict[str, Any]:
    """One table row from a run's raw measurements (a ``bench_gpu.RunLog``)."""
    commits = [c[1] for c in log.commits]
    finals = [f[1] for f in log.finals]
    sizes = [b[1] for b in log.batches]
    busy = sum(b[3] for b in log.batches) / max(wall, 1e-9) / max(1, args.workers)
    row = {
        "calls": n,
        "legs": 2 * n,
        "step": step,
        "words": log.words,
        "finals": len(finals),
        "commit_p50": pct(commits, 50),
        "commit_p95": pct(commits, 95),
        "committed_by_final": sum(c[2] for c in log.commits),
        "final_p50": pct(finals, 50),
        "final_p95": pct(finals, 95),
        "lag_growth": growth(log.lags),
        "final_growth": growth(log.finals),
        "partial_lag_p50": pct([v for _, v in log.lags], 50),
        "max_slip": log.slip,
        "errors": log.errors,
        "batches": len(sizes),
        "batch_mean": float(np.mean(sizes)) if sizes else 0.0,
        "batch_p95": pct(sizes, 95),
        "batch_max": max(sizes, default=0),
        "decode_ms_p50": 1000 * pct([b[3] for b in log.batches], 50),
        "decode_ms_p95": 1000 * pct([b[3] for b in log.batches], 95),
        "requests_per_s": sum(sizes) / max(wall, 1e-9),
        "gpu_util": float(np.mean(log.gpu_util)) if log.gpu_util else float("nan"),
        "busy": busy,
        "max_queue": max((q[1] for q in log.queue), default=0),
        "max_spacing": max((q[2] for q in log.queue), default=0.0),
    }
    row["sustained"] = (
        row["lag_growth"] < 0.5 and row["final_growth"] < 0.5 and row["max_slip"] < 0.25
    )
    row["goals_met"] = bool(
        row["sustained"]
        and row["errors"] == 0
        and row["commit_p50"] <= GOALS["commit_p50"]
        and row["commit_p95"] <= GOALS["commit_p95"]
        and row["final_p50"] <= GOALS["final_p50"]
    )
    return row


def markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """The result table and the headline (largest N meeting the goals) as markdown."""
    head = (
        "| calls | legs | step (s) | commit p50 / p95 (s) | end of turn -> final p50 / p95 (s) "
        "| lag growth partial / final (s) | max slip (s) | batch mean / p95 / max "
        "| decode ms p50 / p95 | GPU util | worker busy | max spacing (s) | goals |"
    )
    lines = [
        f"Device: {info.get('device')}; model {info.get('model')}; dtype {info.get('dtype')}; "
        f"workers {info.get('workers')}, max batch {info.get('max_batch')}, "
        f"{info.get('duration')} s per N.",
        "",
        head,
        "|" + "---|" * 13,
    ]

    def eager(row: dict[str, Any]) -> str:  # the eager reference of a graphed run
        return " (eager)" if info.get("graphs") and row.get("graphs") is False else ""

    for r in rows:
        lines.append(
            f"| {r['calls']}{eager(r)} | {r['legs']} | {r['step']:.2f} | {r['commit_p50']:.2f} / "
            f"{r['commit_p95']:.2f} | {r['final_p50']:.2f} / {r['final_p95']:.2f} | "
            f"{r['lag_growth']:+.2f} / "
            f"{r['final_growth']:+.2f} | {r['max_slip']:.2f} | {r['batch_mean']:.1f} / "
            f"{r['batch_p95']:.0f} / {r['batch_max']} | {r['decode_ms_p50']:.0f} / "
            f"{r['decode_ms_p95']:.0f} | {r['gpu_util']:.0f} % | {100 * r['busy']:.0f} % | "
            f"{r['max_spacing']:.1f} | {'yes' if r['goals_met'] else 'no'} |"
        )
    sweep = [r for r in rows if r["step"] == info.get("step") and not eager(r)]
    best = max((r["calls"] for r in sweep if r["goals_met"]), default=0)
    held = max((r["calls"] for r in sweep if r["sustained"] and r["errors"] == 0), default=0)
    lines += [
        "",
        f"At a {info.get('step')} s step: largest N meeting the goals (commit p50 <= 1.5 s, "
        f"p95 <= 2.5 s, end of turn -> final p50 <= 0.7 s, lag not growing): **{best} calls** "
        f"({2 * best} legs); largest N whose lag did not grow: {held} calls.",
    ]
    return "\n".join(lines) + "\n"
