#!/usr/bin/env python
"""Other forms of the outcome-aware policy, cross-validated on the *training* side only.

The shipped policy is advantage-weighted behaviour cloning (AWR) in a linear softmax. This probe
asks whether another form would beat behaviour cloning (BC) on the target metric, next-action
top-3 on validation turns of successful conversations (grouped k-fold over training
conversations, as ``scripts/tune_policy.py``; the held-out split is never read):

- ``bayes``: p(a | s, won) = p(a | s) * P(won | s, a) / P(won | s) exactly, so the policy that
  predicts successful agents best is BC's logits plus ``alpha * log Q(s, a)``; Q is a logistic
  model of success from the state, the action, and action x (intent, phase, call-start context)
  terms (``interactions``) or the action alone (``main``). It keeps BC's full sample.
- ``conditioned``: one softmax over [state, won, won x (intent, phase, context)] fitted on every
  turn with its call's outcome, read with won = 1 (return-conditioned behaviour cloning).
- ``ratio``: BC plus ``alpha * log[p(a | intent, won) / p(a | intent)]`` from smoothed counts.
- ``mlp``: one hidden layer (torch), with and without the AWR weights: does a richer function
  class open a gap that the linear softmax cannot express?

Each form's grid is printed in full; results are in docs/results/suggest.md.

    python scripts/probe_policy_forms.py --data dond.jsonl --tenant dealornodeal --actions 32 \\
        --reward value --beta 0.5 --advantage-lambda 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler
from tune_policy import training_side

from suggest.train.config import TrainConfig
from suggest.train.dataset import TrainingRows
from suggest.train.pipeline import discover_spaces, prepare_rows, returns
from suggest.train.policy_fit import fit_policies
from suggest.train.tuning import subset

ALPHAS = (0.25, 0.5, 1.0, 2.0)
Q_CS = (0.003, 0.03, 0.3)
CONDITIONED_CS = (0.001, 0.003, 0.01)
RATIO_PRIORS = (10.0, 30.0, 100.0)
MLP_GRID = [(h, wd, ep) for h in (64, 256) for wd in (0.01, 0.1) for ep in (5, 15)]
INTERACTING_BLOCKS = ("intent", "phase", "context")


def top3_hits(scores: np.ndarray, actions: np.ndarray) -> np.ndarray:
    return (np.argsort(-scores, axis=1)[:, :3] == actions[:, None]).any(axis=1)


def q_design(states: np.ndarray, actions: np.ndarray, z: np.ndarray, k: int) -> np.ndarray:
    """[state, one-hot action, one-hot action x z] for the success model Q(s, a)."""
    onehot = np.zeros((len(actions), k), np.float32)
    onehot[np.arange(len(actions)), actions] = 1.0
    crossed = (onehot[:, :, None] * z[:, None, :]).reshape(len(actions), -1)
    return np.hstack([states, onehot, crossed])


def log_q_all_actions(model: LogisticRegression, states: np.ndarray, z: np.ndarray, k: int):
    """(n, k) log P(success | s, a) for every action a."""
    return np.stack(
        [
            model.predict_log_proba(q_design(states, np.full(len(states), a), z, k))[:, 1]
            for a in range(k)
        ],
        axis=1,
    )


def bayes_fold(train, valid, won, bc_logits, awr_logits, z_columns, k, out) -> None:
    """Score BC + alpha log Q (and AWR + alpha log Q) on one fold's successful turns."""
    scaler = StandardScaler().fit(train.features)
    train_x, valid_x = scaler.transform(train.features), scaler.transform(valid.features)
    for kind, cols in (("interactions", z_columns), ("main", z_columns[:0])):
        for c in Q_CS:
            model = LogisticRegression(C=c, max_iter=2000).fit(
                q_design(train_x, train.actions, train_x[:, cols], k), train.success
            )
            if kind == "interactions":
                actual = q_design(valid_x, valid.actions, valid_x[:, cols], k)
                out.setdefault(f"q_auc_C{c}", []).append(
                    np.array([roc_auc_score(valid.success, model.predict_proba(actual)[:, 1])])
                )
            log_q = log_q_all_actions(model, valid_x[won], valid_x[won][:, cols], k)
            for alpha in ALPHAS:
                for base, logits in (("bc", bc_logits), ("awr", awr_logits)):
                    key = f"{base}+{kind}_C{c}_alpha{alpha}"
                    out.setdefault(key, []).append(
                        top3_hits(logits + alpha * log_q, valid.actions[won])
                    )


def conditioned_fold(train, valid, won, z_columns, out) -> None:
    """Outcome-conditioned behaviour cloning: one softmax over [state, won, won x z], fitted on
    every training turn with its call's outcome, read with won = 1 (what successful agents do
    here). With L2 on the won terms it falls back to behaviour cloning when outcomes say nothing.
    """
    scaler = StandardScaler().fit(train.features)
    train_x, valid_x = scaler.transform(train.features), scaler.transform(valid.features[won])
    won_train = train.success.astype(np.float32)[:, None]
    design = np.hstack([train_x, won_train, won_train * train_x[:, z_columns]])
    valid_design = np.hstack([valid_x, np.ones((len(valid_x), 1)), valid_x[:, z_columns]])
    for c in CONDITIONED_CS:
        model = LogisticRegression(C=c, max_iter=2000).fit(design, train.actions)
        scores = np.full((len(valid_x), int(train.actions.max()) + 1), -np.inf)
        scores[:, model.classes_] = model.decision_function(valid_design)
        out.setdefault(f"conditioned_C{c}", []).append(top3_hits(scores, valid.actions[won]))


def ratio_fold(train, valid, won, bc_logits, k, out) -> None:
    """BC plus alpha * log[p(a | intent, won) / p(a | intent)] from smoothed turn counts: the
    Bayes correction with P(won | s, a) / P(won | s) approximated at the intent level, where
    counts are many (``prior`` pseudo-turns pull each ratio toward 1)."""
    rows_of = train.intent_before + 1  # -1 (opening) -> row 0
    n_rows = int(max(train.intent_before.max(), valid.intent_before.max())) + 2
    every = np.zeros((n_rows, k))
    winners = np.zeros((n_rows, k))
    np.add.at(every, (rows_of, train.actions), 1.0)
    np.add.at(winners, (rows_of[train.success], train.actions[train.success]), 1.0)
    overall = every.sum(0) / every.sum()
    for prior in RATIO_PRIORS:
        p_all = (every + prior * overall) / (every.sum(1, keepdims=True) + prior)
        p_won = (winners + prior * p_all) / (winners.sum(1, keepdims=True) + prior)
        log_ratio = np.log(p_won / p_all)[valid.intent_before[won] + 1]
        for alpha in ALPHAS:
            out.setdefault(f"ratio_prior{prior}_alpha{alpha}", []).append(
                top3_hits(bc_logits + alpha * log_ratio, valid.actions[won])
            )


def mlp_logits(train_x, actions, weights, valid_x, k, hidden, decay, epochs) -> np.ndarray:
    import torch

    torch.manual_seed(0)
    x = torch.tensor(train_x, dtype=torch.float32)
    y = torch.tensor(actions)
    w = torch.tensor(weights, dtype=torch.float32)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden),
        torch.nn.GELU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(hidden, k),
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=decay)
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), 256):
            b = order[start : start + 256]
            loss = torch.nn.functional.cross_entropy(net(x[b]), y[b], reduction="none")
            loss = (loss * w[b]).sum() / w[b].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    net.eval()
    with torch.no_grad():
        return net(torch.tensor(valid_x, dtype=torch.float32)).numpy()


def mlp_fold(train, valid, won, awr_weights, k, out) -> None:
    scaler = StandardScaler().fit(train.features)
    train_x, valid_x = scaler.transform(train.features), scaler.transform(valid.features[won])
    for hidden, decay, epochs in MLP_GRID:
        for name, weights in (("bc", np.ones(len(train.actions))), ("awr", awr_weights)):
            scores = mlp_logits(train_x, train.actions, weights, valid_x, k, hidden, decay, epochs)
            key = f"mlp_{name}_h{hidden}_wd{decay}_ep{epochs}"
            out.setdefault(key, []).append(top3_hits(scores, valid.actions[won]))


def cross_validate(rows: TrainingRows, z_columns, k, config, forms, folds) -> dict[str, float]:
    every = np.arange(len(rows.actions))
    out: dict[str, list[np.ndarray]] = {}
    for fold, (train_index, valid_index) in enumerate(folds):
        started = time.perf_counter()
        train = subset(rows, np.isin(every, train_index))
        valid = subset(rows, np.isin(every, valid_index))
        fitted = fit_policies(train, k, config)
        won = valid.success.astype(bool)
        bc = valid.features[won] @ fitted.behaviour_cloning.weights.T
        bc = bc + fitted.behaviour_cloning.bias
        awr = valid.features[won] @ fitted.policy.weights.T + fitted.policy.bias
        out.setdefault("linear_bc", []).append(top3_hits(bc, valid.actions[won]))
        out.setdefault("linear_awr", []).append(top3_hits(awr, valid.actions[won]))
        if "bayes" in forms:
            bayes_fold(train, valid, won, bc, awr, z_columns, k, out)
        if "ratio" in forms:
            ratio_fold(train, valid, won, bc, k, out)
        if "conditioned" in forms:
            conditioned_fold(train, valid, won, z_columns, out)
        if "mlp" in forms:
            mlp_fold(train, valid, won, fitted.advantage_weights, k, out)
        print(f"fold {fold}: {time.perf_counter() - started:.0f} s", flush=True)
    return {key: round(float(np.concatenate(v).mean()), 4) for key, v in out.items()}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--actions", type=int, default=0, help="K (0: chosen by coverage)")
    parser.add_argument("--reward", default="success", choices=("success", "value"))
    parser.add_argument("--beta", type=float, default=1.0, help="AWR temperature")
    parser.add_argument("--advantage-lambda", type=float, default=0.0)
    parser.add_argument(
        "--forms",
        default="bayes,mlp,conditioned,ratio",
        help="comma-separated: bayes,mlp,conditioned,ratio",
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--no-context", action="store_true")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline"),
    )
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    base = TrainConfig(tenant=args.tenant, context=not args.no_context)
    config = dataclasses.replace(
        base,
        actions=base.actions.fixed(args.actions) if args.actions else base.actions,
        reward=args.reward,
        awr_temperature=args.beta,
        awr_lambda=args.advantage_lambda,
    )
    chosen, encoder, vectors, extracted = training_side(args.data, args.tenant, args.cache_dir)
    actions, intents = discover_spaces(chosen, vectors, config)
    vocabulary, rows = prepare_rows(
        chosen, vectors, extracted, actions, intents, encoder.dim, config
    )
    rows.reward = returns(chosen, config)[rows.conversation]
    offsets, start = {}, 0
    for name, width in vocabulary.specs.blocks():
        offsets[name], start = (start, start + width), start + width
    z_columns = np.concatenate([np.arange(*offsets[n]) for n in INTERACTING_BLOCKS if n in offsets])
    folds = list(GroupKFold(n_splits=args.folds).split(rows.features, groups=rows.conversation))
    scores = cross_validate(rows, z_columns, actions.k, config, args.forms.split(","), folds)
    summary = {
        "tenant": args.tenant,
        "action_k": actions.k,
        "awr": {"reward": args.reward, "beta": args.beta, "lambda": args.advantage_lambda},
        "successful_validation_turns": int(rows.success.sum()),
        "top3_successful": scores,
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
