#!/usr/bin/env python
"""Relabel real conversations with an outcome that *does* depend on the agent's moves.

On the shared sets the outcome-aware policy ties behaviour cloning, and the outcome is barely
predictable from what agents do (AUC 0.51-0.55). This separates "the method cannot learn it" from
"the data has nothing to learn": keep every real text and turn, cluster agent turns into actions
and customer turns into intents exactly as ``voice train`` does (same options, same training
side, so the same clusters), and plant a rule — after each frequent intent, one move (the
``--rank``-th most common reply to it, plausible but not what most agents say) is the "best
agents'" move. A conversation's chance of success rises with the share of its agent turns that
make a planted move: P(success) = sigmoid(strength * z + b), z the standardised share, b set so
the success rate stays the real one. Then ``voice train`` / ``voice evaluate`` on the output
measure whether the policy recovers it (top-3 on successful held-out turns vs behaviour cloning).

The output is for method checks only: its outcomes are not real, and each conversation says so
in ``meta`` (``outcome: planted``).

    python scripts/planted_outcome.py --data data/pfg.jsonl --tenant persuasionforgood \\
        --strength 1 --out /tmp/pfg_planted.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from suggest.data.format import read_conversations, write_conversations
from suggest.data.split import is_heldout, select
from suggest.encoder.export import ensure_encoder
from suggest.encoder.onnx_encoder import OnnxSentenceEncoder
from suggest.train.config import TrainConfig
from suggest.train.pipeline import discover_spaces
from suggest.train.texts import embed_all
from suggest.types import Conversation, Outcome

MIN_INTENT_TURNS = 30
"""An intent answered fewer times on the training side gets no planted move."""


def moves(conversation: Conversation, vectors, actions, intents) -> list[tuple[int, int]]:
    """(intent answered, action) of every agent turn; intent -1 before any customer turn."""
    out, intent = [], -1
    for turn in conversation.turns:
        label = int(
            (vectors[turn.text] @ (actions if turn.role == "agent" else intents).T).argmax()
        )
        if turn.role == "agent":
            out.append((intent, label))
        else:
            intent = label
    return out


def planted_moves(
    train_moves: list[list[tuple[int, int]]], n_intents: int, n_actions: int, rank: int
):
    """Per frequent intent (and the opening), its ``rank``-th most common agent reply."""
    counts = np.zeros((n_intents + 1, n_actions), np.int64)
    for call in train_moves:
        for intent, action in call:
            counts[intent, action] += 1  # intent -1 lands in the last row: the opening
    planted = set()
    for row in range(n_intents + 1):
        if counts[row].sum() >= MIN_INTENT_TURNS:
            intent = row if row < n_intents else -1
            planted.add((intent, int(np.argsort(-counts[row], kind="stable")[rank])))
    return planted


def intercept_for_rate(z: np.ndarray, strength: float, rate: float) -> float:
    """b with mean(sigmoid(strength * z + b)) = rate (bisection; the mean rises with b)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(strength * z + middle)))) < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="conversation JSONL (real)")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--out", type=Path, help="relabelled conversation JSONL")
    parser.add_argument(
        "--check",
        type=Path,
        help="instead: read a `voice evaluate --out` report of a model trained on --out's file",
    )
    parser.add_argument("--strength", type=float, default=1.0, help="log-odds per std of share")
    parser.add_argument("--rank", type=int, default=3, help="0 = the most common reply")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline"),
    )
    args = parser.parse_args()
    if not (args.out or args.check):
        parser.error(
            "give --out (relabel) or --check (score a model trained on the relabelled data)"
        )
    return args


def main() -> None:
    args = _arguments()
    conversations = [
        c for c in read_conversations(args.data).conversations if c.tenant == args.tenant
    ]
    train = select(conversations, "train")
    encoder = OnnxSentenceEncoder(ensure_encoder(args.cache_dir), parallel=2)
    vectors = embed_all([t.text for c in conversations for t in c.turns], encoder, args.cache_dir)
    actions, intents = discover_spaces(train, vectors, TrainConfig(tenant=args.tenant))
    per_call = [moves(c, vectors, actions.centroids, intents.centroids) for c in conversations]
    train_calls = [m for c, m in zip(conversations, per_call, strict=True) if not is_heldout(c.id)]
    planted = planted_moves(train_calls, intents.k, actions.k, args.rank)
    if args.check:
        report = check(
            json.loads(args.check.read_text())["turns"], conversations, per_call, planted
        )
    else:
        report = relabel(conversations, per_call, planted, args)
        report.update(action_k=actions.k, intent_k=intents.k, planted_moves=sorted(planted))
    print(json.dumps(report))


def relabel(conversations, per_call, planted, args: argparse.Namespace) -> dict:
    """Write the relabelled conversations; return what was planted and how visible it is."""
    share = np.array([np.mean([m in planted for m in call]) if call else 0.0 for call in per_call])
    z = (share - share.mean()) / (share.std() or 1.0)
    rate = float(np.mean([c.outcome.success for c in conversations]))
    bias = intercept_for_rate(z, args.strength, rate)
    probability = 1 / (1 + np.exp(-(args.strength * z + bias)))
    success = np.random.default_rng(args.seed).random(len(conversations)) < probability
    relabelled = [
        dataclasses.replace(
            c,
            outcome=Outcome(success=bool(s), value=float(s)),
            meta={**c.meta, "outcome": "planted", "planted_strength": str(args.strength)},
        )
        for c, s in zip(conversations, success, strict=True)
    ]
    write_conversations(args.out, relabelled)
    return {
        "conversations": len(conversations),
        "share_of_agent_turns_planted": round(float(np.mean(share)), 4),
        "success_rate": round(float(success.mean()), 4),
        "outcome_auc_of_planted_share": round(float(roc_auc_score(success, share)), 4),
    }


def check(turns: list[dict], conversations, per_call, planted) -> dict:
    """Did the policy learn the planted moves? ``voice evaluate`` turns, split planted / other.

    Per group of held-out turns: how many, top-3 of the policy and of behaviour cloning, and the
    mean log-probability the policy gives the actual move minus behaviour cloning's.
    """
    move_of = {
        (c.id, index): move
        for c, call in zip(conversations, per_call, strict=True)
        for index, move in zip(
            [i for i, t in enumerate(c.turns) if t.role == "agent"], call, strict=True
        )
    }
    groups: dict[str, list[dict]] = {}
    for turn in turns:
        intent, action = move_of[(turn["conversation"], turn["turn"])]
        if action != turn["action"]:
            raise SystemExit("the model's actions differ from this script's: not the same clusters")
        won = "won" if turn["success"] else "lost"
        kind = "planted" if (intent, action) in planted else "other"
        groups.setdefault(f"{won}_{kind}", []).append(turn)
    return {
        name: {
            "turns": len(group),
            "top3_policy": round(float(np.mean([t["rank_policy"] < 3 for t in group])), 4),
            "top3_bc": round(float(np.mean([t["rank_bc"] < 3 for t in group])), 4),
            "logp_policy_minus_bc": round(
                float(np.mean([t["logp_policy"] - t["logp_bc"] for t in group])), 4
            ),
        }
        for name, group in sorted(groups.items())
    }


if __name__ == "__main__":
    main()
