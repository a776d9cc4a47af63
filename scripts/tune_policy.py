#!/usr/bin/env python
"""Choose the policy's hyperparameters by cross-validation on the *training* side only.

Grouped 3-fold cross-validation over training conversations (the held-out split is never
read): behaviour cloning and the outcome-aware policy (AWR) are both scored by next-action
top-3 on validation turns of successful conversations (the target metric; behaviour cloning's
top-3 on all turns is reported too), each over the grid below. The value model is cross-fitted
inside each training fold, as in training. The winners become ``TrainConfig`` defaults; the
table goes to docs/results/suggest.md. Call-start facts (``context``) enter the state as in
``voice train`` unless ``--no-context``; the grid's axes are options (``--lambdas 0,1``,
``--rewards success,value``, ``--action-ks 8,16,32``, ...), and the cross-fitted value model's
AUC on the training rows is printed per action K and PCA size (how much of the outcome the state
can see). Actions are clustered once per K on the training side (``--action-ks``; default: K
chosen by coverage, as ``voice train`` does); intents once, as ``voice train`` does.

    python scripts/tune_policy.py --data data/pfg.jsonl --tenant persuasionforgood
    python scripts/tune_policy.py --data data/casino.jsonl --tenant casino --action-ks 8,16,32
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold

from suggest.clusters import discover
from suggest.data.format import read_conversations
from suggest.data.split import select
from suggest.encoder.export import ensure_encoder
from suggest.encoder.onnx_encoder import OnnxSentenceEncoder
from suggest.train.config import TrainConfig
from suggest.train.dataset import TrainingRows
from suggest.train.pipeline import discover_spaces, prepare_rows, returns
from suggest.train.texts import embed_all, extract_all
from suggest.train.tuning import cross_validate

GRID = {
    "projection_dim": (32, 64),
    "regularization": (0.001, 0.003, 0.01),
    "awr_temperature": (0.5, 1.0),
}


def value_auc(rows: TrainingRows, config: TrainConfig) -> float:
    """AUC of the cross-fitted V(s) for success on the training rows (does the state see it?)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from suggest.train.policy_fit import _cross_fitted_value

    scaled = StandardScaler().fit_transform(rows.features).astype(np.float32)
    success_config = dataclasses.replace(config, reward="success")
    return float(roc_auc_score(rows.success, _cross_fitted_value(scaled, rows, success_config)))


def training_side(
    data: Path, tenant: str, cache_dir: Path
) -> tuple[list, OnnxSentenceEncoder, dict[str, np.ndarray], dict]:
    """The training side's conversations, the encoder, and their (cached) embeddings and entities."""
    chosen = select(
        [c for c in read_conversations(data).conversations if c.tenant == tenant], "train"
    )
    encoder = OnnxSentenceEncoder(ensure_encoder(cache_dir), parallel=2)
    vectors = embed_all([t.text for c in chosen for t in c.turns], encoder, cache_dir)
    extracted = extract_all([t for c in chosen for t in c.turns], cache_dir)
    return chosen, encoder, vectors, extracted


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline"),
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--no-context", action="store_true", help="leave call-start facts out of the state"
    )
    parser.add_argument("--projection-dims", type=_floats, default=GRID["projection_dim"])
    parser.add_argument("--cs", type=_floats, default=GRID["regularization"], help="C grid")
    parser.add_argument("--betas", type=_floats, default=GRID["awr_temperature"])
    parser.add_argument("--lambdas", type=_floats, default=(0.0,), help="advantage mix grid")
    parser.add_argument(
        "--rewards", default="success", help="comma-separated returns: success,value"
    )
    parser.add_argument(
        "--action-ks",
        type=_ints,
        default=(),
        help="comma-separated numbers of actions, each clustered once (default: chosen by coverage)",
    )
    return parser.parse_args()


def main() -> None:
    """Embed and cluster the training side once per action K, replay it once per PCA size."""
    args = _arguments()
    base = TrainConfig(tenant=args.tenant, context=not args.no_context)
    chosen, encoder, vectors, extracted = training_side(args.data, args.tenant, args.cache_dir)
    first = base.actions.fixed(args.action_ks[0]) if args.action_ks else base.actions
    actions, intents = discover_spaces(chosen, vectors, dataclasses.replace(base, actions=first))
    agent = [t.text for c in chosen for t in c.turns if t.role == "agent"]
    spaces = {actions.k: actions}
    for k in args.action_ks[1:]:
        spaces[k] = discover(np.stack([vectors[t] for t in agent]), agent, base.actions.fixed(k))
    results = []
    for k, space in spaces.items():
        clustered = dataclasses.replace(base, actions=base.actions.fixed(k))
        for projection in (int(d) for d in args.projection_dims):
            projected = dataclasses.replace(clustered, projection_dim=projection)
            vocabulary, rows = prepare_rows(
                chosen, vectors, extracted, space, intents, encoder.dim, projected
            )
            print(
                json.dumps(
                    {
                        "action_k": k,
                        "action_coverage": round(space.coverage, 4),
                        "projection_dim": projection,
                        "context_names": list(vocabulary.specs.context_names),
                        "value_auc": round(value_auc(rows, projected), 4),
                    }
                ),
                flush=True,
            )
            folds = list(
                GroupKFold(n_splits=args.folds).split(rows.features, groups=rows.conversation)
            )
            results += _grid(rows, folds, chosen, projected, args, space.k)
    _report(results, args.out)


def _grid(
    rows: TrainingRows,
    folds: list,
    chosen: list,
    projected: TrainConfig,
    args: argparse.Namespace,
    n_actions: int,
) -> list[dict]:
    """Cross-validate every (return, C, beta, lambda) of the grid on one action space."""
    results = []
    for reward, c, beta, lam in itertools.product(
        args.rewards.split(","), args.cs, args.betas, args.lambdas
    ):
        config = dataclasses.replace(
            projected,
            reward=reward,  # type: ignore[arg-type]  # checked by TrainConfig's users
            regularization=c,
            awr_temperature=beta,
            awr_lambda=lam,
        )
        rows.reward = returns(chosen, config)[rows.conversation]
        started = time.perf_counter()
        scores = cross_validate(rows, folds, n_actions, config)
        results.append(
            {
                "action_k": n_actions,
                "projection_dim": projected.projection_dim,
                "reward": reward,
                "regularization": c,
                "awr_temperature": beta,
                "awr_lambda": lam,
                **scores,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def _report(results: list[dict], out: Path | None) -> None:
    # Each method gets the settings that serve the target metric best, behaviour cloning too.
    best_bc = max(results, key=lambda r: r["bc_top3_successful"])
    best_awr = max(results, key=lambda r: r["awr_top3_successful"])
    summary = {"grid": results, "best_behaviour_cloning": best_bc, "best_outcome_aware": best_awr}
    by_k = {}
    for k in dict.fromkeys(r["action_k"] for r in results):
        at_k = [r for r in results if r["action_k"] == k]
        by_k[str(k)] = {
            "behaviour_cloning": max(r["bc_top3_successful"] for r in at_k),
            "outcome_aware": max(at_k, key=lambda r: r["awr_top3_successful"]),
        }
    if len(by_k) > 1:
        summary["best_by_action_k"] = by_k
    print(json.dumps({k: v for k, v in summary.items() if k != "grid"}, indent=1))
    if out:
        out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
