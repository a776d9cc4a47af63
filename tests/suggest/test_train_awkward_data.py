"""Real trainings (MiniLM, no entity extraction) on PersuasionForGood slices a tenant could send:
one lost call among many won, and agent turns with no text.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from suggest.data.format import write_conversations
from suggest.data.importers import import_persuasionforgood
from suggest.train.config import TrainConfig
from suggest.train.pipeline import train
from suggest.types import Conversation, Turn

pytestmark = pytest.mark.model

TENANT = "persuasionforgood"


def _cache() -> Path:
    return Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline")


@pytest.fixture(scope="module")
def conversations(shared_data: Path) -> list[Conversation]:
    report = import_persuasionforgood(shared_data / "dialogues" / "persuasionforgood")
    return sorted(report.conversations, key=lambda c: c.id)[:80]


def test_one_lost_call_among_won_ones_trains_and_leaves_no_reservation(
    conversations: list[Conversation], tmp_path: Path
) -> None:
    """`voice train` crashed with sklearn's "needs samples of at least 2 classes" (the lost
    call's value fold left the others all won) and left `.<version>.partial` behind."""
    from voice.cli import cli

    won = [c for c in conversations if c.outcome.success][:24]
    lost = [c for c in conversations if not c.outcome.success][:1]
    data = tmp_path / "onefail.jsonl"
    write_conversations(data, won + lost)
    models = tmp_path / "models"
    result = CliRunner().invoke(
        cli,
        [
            "train", "--data", str(data), "--tenant", TENANT, "--split", "all", "--no-entities",
            "--no-eval", "--models", str(models), "--cache-dir", str(_cache()),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    published = list((models / TENANT).iterdir())
    assert len(published) == 1 and not published[0].name.startswith(".")
    assert (published[0] / "manifest.json").is_file()


def test_blank_agent_turns_never_become_suggestions(
    conversations: list[Conversation], tmp_path: Path
) -> None:
    """Blank agent turns (an export that lost the text) made an action whose example was '',
    empty exemplars and an empty most-common-reply baseline."""
    blanked = []
    for number, conversation in enumerate(conversations[:40]):
        turns = list(conversation.turns)
        agent = [i for i, t in enumerate(turns) if t.role == "agent"]
        for i in agent[number % 3 :: 4]:
            turns[i] = Turn("agent", "")
        blanked.append(replace(conversation, turns=tuple(turns)))
    assert sum(not t.text for c in blanked for t in c.turns) > 30
    config = TrainConfig(
        tenant=TENANT, split="all", entities=False, evaluate_heldout=False, min_conversations=20
    )
    result = train(blanked, config, tmp_path / "model", cache_dir=_cache())
    model = result.model
    assert model.manifest["baselines"]["most_common_reply"].strip()
    assert all(e.text.strip() for e in model.bank.exemplars)
    assert all(a.medoid.strip() and all(x.strip() for x in a.examples) for a in model.actions)
    saved = json.loads((result.directory / "exemplars.json").read_text())
    assert saved and all(e["text"].strip() for e in saved)


def test_a_model_published_at_the_same_out_meanwhile_is_never_overwritten(
    conversations: list[Conversation], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `voice train --out X` runs: the one finishing second found X published and rewrote it
    in place, exiting 0 (a model served meanwhile changed under it, half-written for a while)."""
    from suggest.errors import TrainingError
    from suggest.train import pipeline

    out = tmp_path / "out"
    original = pipeline._fit

    def other_run_publishes_while_this_one_fits(*args: object) -> object:
        out.mkdir()
        (out / "manifest.json").write_text('{"other": true}')
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_fit", other_run_publishes_while_this_one_fits)
    config = TrainConfig(
        tenant=TENANT, split="all", entities=False, evaluate_heldout=False, min_conversations=20
    )
    with pytest.raises(TrainingError, match="written by another training"):
        train(conversations[:30], config, out, cache_dir=_cache())
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert json.loads((out / "manifest.json").read_text()) == {"other": True}
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(left) == 1 and (left[0] / "weights.safetensors").is_file()  # named in the error
