"""Calls spread over K server processes sharing one GPU: the shards' side and the merge.

Why: one Python process runs every call's feeder, streaming policy and decode loop under one
GIL, and on the H200 that process, not the GPU, set the ceiling (GPU busy <= 28 %,
docs/results/gpu.md). A deployment runs several server processes per GPU, each with its own
model and its own calls; this measures that.

Shard side (``bench_gpu.py --shard I/K --barrier DIR``): for each N of ``--calls`` (all shards
together), the shard plays call ids I, I+K, ... (so the K shards together play exactly the ids
0..N-1 of a one-process run), after all K have reached the barrier of that N, from a common
start time. Each writes its raw measurements to ``DIR/run_N_I.json``.

Merge side (``python scripts/gpu/bench_shards.py DIR --shards K --out OUT``): per N, the K
shards' measurements pooled into one row (the same summary as a one-process run: percentiles
over all calls' words and turns; decode workers counted over all shards) in
``OUT/gpu_shards.json`` and ``OUT/gpu_shards.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report import markdown, summarize  # noqa: E402

BARRIER_TIMEOUT = 90.0
"""Seconds a shard waits for the others at a barrier before it gives up on the sweep."""


def shard_ids(n: int, index: int, count: int) -> list[int]:
    """Call ids of shard ``index`` of ``count`` for N = ``n`` calls in all."""
    return list(range(index, n, count))


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/K"`` -> (I, K), checked."""
    index, count = (int(x) for x in text.split("/"))
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: want I/K with 0 <= I < K")
    return index, count


def wait_for_all(folder: Path, name: str, index: int, count: int) -> float | None:
    """Arrive at barrier ``name``; the common start time (epoch seconds), or None on timeout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.{index}.ready").write_text(str(time.time()))
    deadline = time.time() + BARRIER_TIMEOUT
    while time.time() < deadline:
        arrived = sorted(folder.glob(f"{name}.*.ready"))
        if len(arrived) >= count:
            return max(float(p.read_text() or 0) for p in arrived) + 0.5
        time.sleep(0.05)
    return None


def shard_sweep(
    decoder: Any,
    calls: list[Any],
    args: argparse.Namespace,
    info: dict[str, Any],
    began: float,
    run: Any,
) -> None:
    """Every N of the plan on this shard's calls, started together with the other shards."""
    index, count = parse_shard(args.shard)
    folder: Path = args.barrier
    plan = [int(n) for n in args.calls.split(",") if n]
    for n in plan:
        if time.perf_counter() - began + args.duration + args.drain + 5 > args.budget:
            print(f"shard {index}: budget reached before N={n}", flush=True)  # noqa: T201
            break
        start_at = wait_for_all(folder, f"n{n}", index, count)
        if start_at is None:
            print(f"shard {index}: the other shards did not reach N={n}", flush=True)  # noqa: T201
            break
        time.sleep(max(0.0, start_at - time.time()))
        ids = shard_ids(n, index, count)
        start = time.perf_counter()
        log = run(decoder, calls, len(ids), args, args.step, ids).play()
        wall = time.perf_counter() - start
        record = {"n": n, "wall": wall, "info": info, "log": asdict(log)}
        (folder / f"run_{n}_{index}.json").write_text(json.dumps(record))
        own = summarize(len(ids), log, args, wall, args.step)
        print(  # noqa: T201
            f"shard {index}: N={n} ({len(ids)} here) commit {own['commit_p50']:.2f} / "
            f"{own['commit_p95']:.2f} s, final {own['final_p50']:.2f} s, "
            f"sustained {own['sustained']}",
            flush=True,
        )


def merge(folder: Path, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of every N that all ``count`` shards finished, pooled; and the run's info."""
    from bench_gpu import RunLog

    rows, info = [], {}
    names = [f.name for f in fields(RunLog)]
    by_n: dict[int, list[dict[str, Any]]] = {}
    for path in folder.glob("run_*_*.json"):
        record = json.loads(path.read_text())
        by_n.setdefault(record["n"], []).append(record)
    for n, records in sorted(by_n.items()):
        if len(records) < count:
            continue
        info = dict(records[0]["info"])
        pooled = RunLog()
        for record in records:
            for name in names:
                value = record["log"][name]
                if isinstance(value, list):
                    getattr(pooled, name).extend(
                        tuple(v) if isinstance(v, list) else v for v in value
                    )
            pooled.errors += record["log"]["errors"]
            pooled.words += record["log"]["words"]
            pooled.slip = max(pooled.slip, record["log"]["slip"])
        workers = argparse.Namespace(workers=count * int(info.get("workers", 1)))
        wall = max(r["wall"] for r in records)
        row = summarize(n, pooled, workers, wall, float(info.get("step", 0.5)))
        row["gpu_util"] = sum(_mean(r["log"]["gpu_util"]) for r in records) / count
        row["shards"] = count
        rows.append(row)
    info["workers"] = f"{count} processes x {info.get('workers')}"
    return rows, info


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Merge the shards of a multi-process GPU run.")
    parser.add_argument("folder", type=Path, help="the shards' --barrier folder")
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows, info = merge(args.folder, args.shards)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_shards.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    report = markdown(rows, info)
    (args.out / "gpu_shards.md").write_text(report)
    print(report)  # noqa: T201
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
