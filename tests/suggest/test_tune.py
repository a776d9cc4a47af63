"""``voice train --tune``: the policy's settings chosen per tenant by cross-validation.

Trains a small real model (60 CaSiNo conversations, real MiniLM encoder, no entity extraction)
through the CLI and checks that the manifest records the whole grid, that the model carries the
settings the grid's best row names (behaviour cloning its own best C), and that --tune refuses
the options it chooses itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from suggest.data.format import write_conversations
from suggest.data.importers import import_casino
from suggest.train.tuning import TuningGrid

pytestmark = pytest.mark.model

SLICE = 60


def _cache() -> Path:
    return Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline")


def _casino_slice(shared_data: Path, tmp_path: Path) -> Path:
    report = import_casino(shared_data / "dialogues" / "casino")
    data = tmp_path / "casino.jsonl"
    write_conversations(data, sorted(report.conversations, key=lambda c: c.id)[:SLICE])
    return data


def test_tune_picks_the_best_cross_validated_settings(shared_data: Path, tmp_path: Path) -> None:
    from voice.cli import cli

    data, out = _casino_slice(shared_data, tmp_path), tmp_path / "model"
    common = ["train", "--data", str(data), "--tenant", "casino", "--no-eval", "--no-entities"]
    result = CliRunner().invoke(
        cli, [*common, "--tune", "--out", str(out), "--cache-dir", str(_cache())]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    tuning, parameters = manifest["tuning"], manifest["parameters"]
    grid = tuning["grid"]
    assert len(grid) == len(TuningGrid().settings()) and tuning["folds"] == 3
    best = max(grid, key=lambda r: r["awr_top3_successful"])  # first of equals: grid order
    for key in ("reward", "regularization", "awr_temperature", "awr_lambda"):
        assert parameters[key] == best[key] == tuning["policy"][key]
    best_bc = max(grid, key=lambda r: r["bc_top3_successful"])
    assert parameters["bc_regularization"] == best_bc["regularization"]
    assert parameters["tune"] is True
    scores = {(r["reward"], r["awr_temperature"], r["awr_lambda"]) for r in grid}
    assert len(scores) == 8  # every return x beta x lambda was tried
    assert "tuned (24 settings, 3 folds)" in result.output

    refused = CliRunner().invoke(cli, [*common, "--tune", "--beta", "0.5", "--out", str(out)])
    assert refused.exit_code == 2 and "--tune chooses" in refused.output


def test_untuned_manifests_do_not_change() -> None:
    from suggest.train.config import TrainConfig

    parameters = TrainConfig().to_dict()
    assert "tune" not in parameters and "bc_regularization" not in parameters
    tuned = TrainConfig(tune=True, bc_regularization=0.01).to_dict()
    assert tuned["tune"] is True and tuned["bc_regularization"] == 0.01


def test_tune_refuses_data_a_fold_cannot_learn_from() -> None:
    """One won conversation among twenty: some fold trains on lost calls only."""
    import numpy as np

    from suggest.errors import TrainingError
    from suggest.train.config import TrainConfig
    from suggest.train.dataset import TrainingRows
    from suggest.train.tuning import tune

    rng = np.random.default_rng(0)
    conversation = np.repeat(np.arange(20), 5)
    success = conversation == 0
    rows = TrainingRows(
        features=rng.standard_normal((100, 4)).astype(np.float32),
        actions=rng.integers(0, 3, 100),
        conversation=conversation,
        turn=np.tile(np.arange(5), 20),
        intent_before=np.full(100, -1),
        contexts=np.zeros((100, 4), np.float32),
        reward=success.astype(np.float32),
        success=success,
    )
    with pytest.raises(TrainingError, match="only one outcome"):
        tune(rows, [], 3, TrainConfig(), lambda chosen, config: np.zeros(20, np.float32))
