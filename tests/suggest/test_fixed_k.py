"""``voice train --actions K --intents K``: a fixed action space instead of K chosen by coverage.

Trains a small real model (40 CaSiNo conversations, real MiniLM encoder, no entity extraction)
through the CLI and checks the model and its manifest carry exactly the requested sizes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from suggest.data.format import write_conversations
from suggest.data.importers import import_casino
from suggest.model import load_model

pytestmark = pytest.mark.model

SLICE = 40


def _cache() -> Path:
    return Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline")


def test_fixed_action_and_intent_counts_reach_the_model_and_manifest(
    shared_data: Path, tmp_path: Path
) -> None:
    from voice.cli import cli

    report = import_casino(shared_data / "dialogues" / "casino")
    data = tmp_path / "casino.jsonl"
    write_conversations(data, sorted(report.conversations, key=lambda c: c.id)[:SLICE])
    out = tmp_path / "model"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data",
            str(data),
            "--tenant",
            "casino",
            "--out",
            str(out),
            "--actions",
            "5",
            "--intents",
            "3",
            "--no-eval",
            "--no-entities",
            "--cache-dir",
            str(_cache()),
        ],
    )
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert len(model.actions) == model.specs.n_actions == 5
    assert len(model.intents) == model.specs.n_intents == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["actions"]["k_grid"] == [5]
    assert manifest["parameters"]["intents"]["k_grid"] == [3]
    assert manifest["metrics"]["actions"]["k"] == 5
    assert "actions K=5" in result.output
