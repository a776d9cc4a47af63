"""Per-tenant choice of the policy's settings by cross-validation on the training side only.

``TrainConfig``'s defaults were chosen on PersuasionForGood; another tenant's data may want
others (the negotiation sets preferred the value return and a sharper beta). ``voice train
--tune`` runs grouped k-fold cross-validation over the training conversations (the held-out
split is never read) and scores every setting of a small grid by the target metric, next-action
top-3 on validation turns of successful conversations. The outcome-aware policy takes the best
(return, C, beta, lambda); behaviour cloning takes its own best C, so the baseline it is compared
with is tuned the same way. Ties go to the first setting in grid order, which starts at the
defaults. The whole table goes into the model's manifest.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suggest.errors import TrainingError
from suggest.policy import LinearPolicy
from suggest.train.config import TrainConfig
from suggest.train.dataset import TrainingRows
from suggest.train.policy_fit import fit_behaviour_cloning, fit_outcome_aware
from suggest.types import Conversation

Returns = Callable[[Sequence[Conversation], TrainConfig], np.ndarray]
"""Per-conversation return for a config (``pipeline.returns``; passed in to avoid a cycle)."""


@dataclass(frozen=True)
class TuningGrid:
    """The settings ``--tune`` tries (each axis's first value is the default's)."""

    reward: tuple[str, ...] = ("success", "value")
    regularization: tuple[float, ...] = (0.003, 0.001, 0.01)
    awr_temperature: tuple[float, ...] = (1.0, 0.5)
    awr_lambda: tuple[float, ...] = (0.0, 1.0)
    folds: int = 3

    def settings(self) -> list[dict[str, Any]]:
        """Every combination, in grid order."""
        axes = ("reward", "regularization", "awr_temperature", "awr_lambda")
        values = [getattr(self, axis) for axis in axes]
        return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*values)]


@dataclass
class TuningResult:
    """What cross-validation chose, and the table it chose from."""

    policy: dict[str, Any]
    """The outcome-aware policy's settings (return, C, beta, lambda)."""
    behaviour_cloning_regularization: float
    table: list[dict[str, Any]] = field(default_factory=list)
    folds: int = 3

    def apply(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the chosen settings."""
        return dataclasses.replace(
            config, **self.policy, bc_regularization=self.behaviour_cloning_regularization
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for the manifest."""
        return {
            "folds": self.folds,
            "metric": "next-action top-3 on validation turns of successful conversations",
            "policy": self.policy,
            "behaviour_cloning_regularization": self.behaviour_cloning_regularization,
            "grid": self.table,
        }


def subset(rows: TrainingRows, mask: np.ndarray) -> TrainingRows:
    """The rows where ``mask`` holds."""
    return TrainingRows(
        **{f.name: getattr(rows, f.name)[mask] for f in dataclasses.fields(TrainingRows)}
    )


def top3(weights: np.ndarray, bias: np.ndarray, rows: TrainingRows) -> np.ndarray:
    """Per row: is the actual action among the policy's top 3?"""
    scores = rows.features @ weights.T + bias
    return (np.argsort(-scores, axis=1)[:, :3] == rows.actions[:, None]).any(axis=1)


def group_folds(rows: TrainingRows, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped k-fold over conversations (a conversation's turns stay on one side)."""
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=min(folds, len(np.unique(rows.conversation))))
    return list(splitter.split(rows.features, groups=rows.conversation))


def cross_validate(
    rows: TrainingRows,
    folds: list,
    n_actions: int,
    config: TrainConfig,
    bc_fits: dict[tuple[int, float], LinearPolicy] | None = None,
) -> dict[str, float]:
    """Top-3 of behaviour cloning (all turns, successful turns) and AWR (successful turns).

    ``bc_fits`` keeps behaviour cloning per (fold, C) across calls: it does not depend on the
    AWR settings, so a grid fits it once per C.
    """
    bc_all, bc_won, awr_won = [], [], []
    every = np.arange(len(rows.actions))
    bc_c = config.bc_regularization or config.regularization
    for fold, (train_index, valid_index) in enumerate(folds):
        train = subset(rows, np.isin(every, train_index))
        valid = subset(rows, np.isin(every, valid_index))
        bc = bc_fits.get((fold, bc_c)) if bc_fits is not None else None
        if bc is None:
            bc = fit_behaviour_cloning(train, n_actions, config)
            if bc_fits is not None:
                bc_fits[(fold, bc_c)] = bc
        policy = fit_outcome_aware(train, n_actions, config)
        hits = top3(bc.weights, bc.bias, valid)
        bc_all.append(hits)
        bc_won.append(hits[valid.success])
        awr_won.append(top3(policy.weights, policy.bias, subset(valid, valid.success)))
    return {
        "bc_top3_all": float(np.concatenate(bc_all).mean()),
        "bc_top3_successful": float(np.concatenate(bc_won).mean()),
        "awr_top3_successful": float(np.concatenate(awr_won).mean()),
    }


def _supported(
    settings: list[dict[str, Any]],
    chosen: Sequence[Conversation],
    config: TrainConfig,
    returns: Returns,
) -> list[dict[str, Any]]:
    """The settings whose return the data supports: the value return needs usable values (a
    tenant whose won calls carry none is tuned on the success return alone)."""
    usable = set()
    for reward in {s["reward"] for s in settings}:
        try:
            returns(chosen, dataclasses.replace(config, reward=reward))
        except TrainingError:
            continue
        usable.add(reward)
    return [s for s in settings if s["reward"] in usable]


def tune(
    rows: TrainingRows,
    chosen: Sequence[Conversation],
    n_actions: int,
    config: TrainConfig,
    returns: Returns,
    grid: TuningGrid | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TuningResult:
    """Cross-validate every setting of ``grid`` on ``rows`` and pick the best of each method.

    ``rows.reward`` is rewritten per setting (the return depends on it) and left at the chosen
    policy's return. ``progress(done, total)`` is called after each setting.

    Raises:
        TrainingError: a fold's training side has one outcome only (nothing to cross-validate).
    """
    grid = grid or TuningGrid()
    folds = group_folds(rows, grid.folds)
    for train_index, _ in folds:
        if len(np.unique(rows.success[train_index])) < 2:
            raise TrainingError(
                f"--tune: a {grid.folds}-fold split leaves a fold whose training side has only "
                "one outcome (too few won or lost conversations)",
                hint="train without --tune (the defaults), or add conversations of the rarer outcome",
            )
    settings = _supported(grid.settings(), chosen, config, returns)
    table: list[dict[str, Any]] = []
    bc_fits: dict[tuple[int, float], LinearPolicy] = {}
    for done, setting in enumerate(settings, start=1):
        trial = dataclasses.replace(config, **setting, bc_regularization=None)
        rows.reward = returns(chosen, trial)[rows.conversation]
        scores = cross_validate(rows, folds, n_actions, trial, bc_fits)
        table.append({**setting, **{k: round(v, 4) for k, v in scores.items()}})
        if progress:
            progress(done, len(settings))
    best_policy = max(table, key=lambda r: r["awr_top3_successful"])
    best_bc = max(table, key=lambda r: r["bc_top3_successful"])
    policy = {k: best_policy[k] for k in settings[0]}
    rows.reward = returns(chosen, dataclasses.replace(config, **policy))[rows.conversation]
    return TuningResult(policy, float(best_bc["regularization"]), table, len(folds))
