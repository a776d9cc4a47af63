#!/usr/bin/env python
"""Print the measured tables of docs/results/suggest.md from the JSON the other scripts write.

    python scripts/report_suggest.py --model models/persuasionforgood/<version> \
        --bench bench.json [--tune tune.json] [--train-log train.txt]

Inputs: the model's manifest (training counts, K, coverage, held-out metrics), the output of
scripts/bench_suggest.py and of scripts/tune_policy.py. Paste the result into the results page.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def heldout_table(metrics: dict) -> list[str]:
    """Next-action accuracy of the three policies, held-out split."""
    rows = [
        "| policy | top-1 (all) | top-3 (all) | top-3 (successful conversations) |",
        "|---|---|---|---|",
    ]
    for name, key in (
        ("outcome-aware (AWR)", "policy"),
        ("behaviour cloning", "bc"),
        ("majority", "majority"),
    ):
        rows.append(
            f"| {name} | {metrics[f'top1_{key}']:.3f} | {metrics[f'top3_{key}']:.3f} | "
            f"{metrics[f'top3_{key}_successful']:.3f} |"
        )
    return rows


def relevance_lines(metrics: dict) -> list[str]:
    """Relevance of the top suggestion against the fixed baseline."""
    low, high = metrics["relevance_minus_baseline_ci95"]
    return [
        "| suggestion | mean cosine with the actual next agent turn |",
        "|---|---|",
        f"| top-1 (outcome-aware) | {metrics['relevance']:.3f} |",
        f"| best of top-3 | {metrics['relevance_best']:.3f} |",
        f"| top-1 of behaviour cloning, same retrieval | {metrics['relevance_bc']:.3f} |",
        f"| fixed most-common reply | {metrics['relevance_baseline']:.3f} |",
        "",
        f"Difference top-1 minus baseline: 95 % bootstrap CI {low:+.3f} .. {high:+.3f}.",
    ]


def bench_lines(bench: dict) -> list[str]:
    """Latency and throughput rows."""
    rows = ["| measurement | p50 ms | p99 ms | n / rate |", "|---|---|---|---|"]
    for turn in (5, 100):
        single = bench[f"single_turn_{turn}"]
        rows.append(
            f"| single, warm, turn {turn} | {single['p50_ms']} | {single['p99_ms']} | "
            f"n={single['n']} |"
        )
    for run in bench.get("offered", []):
        rows.append(
            f"| micro-batched, offered {run['offered_per_s']:.0f}/s | {run['p50_ms']} | "
            f"{run['p99_ms']} | "
            f"served {run['served_per_s']}/s, mean batch {run['mean_batch']} |"
        )
    if "saturated" in bench:
        run = bench["saturated"]
        rows.append(
            f"| micro-batched, saturated ({run['callers']} closed-loop callers) | "
            f"{run['p50_ms']} | "
            f"{run['p99_ms']} | {run['throughput_per_s']}/s, mean batch {run['mean_batch']} |"
        )
    rows.append("")
    rows.append(
        f"turn-100 / turn-5 p50 ratio: {bench['turn100_over_turn5_p50']}; "
        f"machine {bench['machine']}"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--bench", type=Path)
    parser.add_argument("--tune", type=Path)
    args = parser.parse_args()
    manifest = json.loads((args.model / "manifest.json").read_text())
    metrics, training = manifest["metrics"], manifest["training"]
    out = [
        f"Model {manifest['tenant']}/{manifest['version']}: "
        f"{training['conversations']} training conversations, "
        f"{training['agent_turns']} agent turns.",
        f"Actions K={metrics['actions']['k']} (coverage {metrics['actions']['coverage']:.3f}; by K "
        f"{metrics['actions']['coverage_by_k']}); intents K={metrics['intents']['k']} "
        f"(coverage {metrics['intents']['coverage']:.3f}).",
        "",
    ]
    heldout = metrics.get("heldout")
    if heldout:
        out += heldout_table(heldout)
        out += [
            "",
            f"McNemar p (policy vs behaviour cloning, top-3, successful): "
            f"{heldout['top3_policy_vs_bc_successful_p']:.3f}",
            f"Outcome AUC (likelihood ratio policy/BC): {heldout['auc']:.3f}, 95 % CI "
            f"{heldout['auc_ci95'][0]:.3f} .. {heldout['auc_ci95'][1]:.3f} "
            f"({heldout['auc_conversations']} conversations); "
            f"raw policy likelihood AUC {heldout['auc_likelihood']:.3f}",
            "",
        ]
        out += relevance_lines(heldout) + [""]
    if args.bench:
        out += bench_lines(json.loads(args.bench.read_text())) + [""]
    if args.tune:
        tune = json.loads(args.tune.read_text())
        out += [
            "| projection | C | beta | BC top-3 all (CV) | BC top-3 won | AWR top-3 won |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['projection_dim']} | {r['regularization']} | {r['awr_temperature']} | "
            f"{r['bc_top3_all']:.4f} | {r['bc_top3_successful']:.4f} | "
            f"{r['awr_top3_successful']:.4f} |"
            for r in tune["grid"]
        ]
    print("\n".join(out))


if __name__ == "__main__":
    main()
