"""Training on awkward tenant data: few calls of one outcome, racing trainings, values on other
scales than 0/1, blank turns, many versions in one second.

Hermetic: the policy fits run on synthetic rows, the save path on the demo's bundled model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from suggest.data.format import read_conversations, write_conversations
from suggest.encoder import encoder_files
from suggest.errors import TrainingError
from suggest.model import load_model
from suggest.registry import ModelRegistry, _published, staging_dir
from suggest.train import pipeline
from suggest.train import publish as publish_module
from suggest.train.config import TrainConfig
from suggest.train.dataset import TrainingRows
from suggest.train.policy_fit import (
    _cross_fitted_value,
    fit_behaviour_cloning,
    fit_policies,
)
from suggest.types import Conversation, Outcome, Turn

pytestmark = pytest.mark.unit


def _rows(success_of: np.ndarray, per: int = 5, actions: int = 4, seed: int = 0) -> TrainingRows:
    """``per`` rows for each conversation, its success from ``success_of``."""
    rng = np.random.default_rng(seed)
    conversation = np.repeat(np.arange(len(success_of)), per)
    success = success_of[conversation]
    n = len(conversation)
    return TrainingRows(
        features=rng.normal(size=(n, 10)).astype(np.float32),
        actions=rng.integers(0, actions, n),
        conversation=conversation,
        turn=np.tile(np.arange(per), len(success_of)),
        intent_before=np.zeros(n, int),
        contexts=np.zeros((n, 4), np.float32),
        reward=success.astype(np.float32),
        success=success,
    )


# --- finding 1: a tenant with very few lost (or won) calls -----------------------------------


@pytest.mark.parametrize(
    ("rare", "rare_won"), [([7], False), ([0, 5], False), ([10, 20], False), ([7], True)]
)
def test_a_tenant_with_a_few_lost_or_won_calls_trains_instead_of_crashing(
    rare: list[int], rare_won: bool
) -> None:
    """GroupKFold puts all calls of the rare outcome into one fold: the other folds train on one
    outcome only, which sklearn refuses with a raw ValueError (it crashed `voice train`)."""
    success_of = np.isin(np.arange(30), rare) == rare_won
    fitted = fit_policies(_rows(success_of), 4, TrainConfig())
    assert np.isfinite(fitted.advantage_weights).all()


def test_a_one_outcome_value_fold_predicts_that_fold_s_base_rate() -> None:
    success_of = np.arange(30) != 7
    rows = _rows(success_of)
    value = _cross_fitted_value(rows.features, rows, TrainConfig())
    # the fold holding conversation 7 was valued by a model of won calls only: its base rate 1
    assert np.all(value[rows.conversation == 7] == 1.0)
    assert value.dtype == np.float32 and np.all((value >= 0) & (value <= 1))


def test_a_fit_sklearn_refuses_is_a_training_error_with_a_hint() -> None:
    rows = _rows(np.arange(30) % 2 == 0, actions=1)  # every turn the same action
    with pytest.raises(TrainingError, match="failed") as raised:
        fit_behaviour_cloning(rows, 4, TrainConfig())
    assert raised.value.hint and "add conversations" in raised.value.hint


def test_a_failed_training_gives_back_its_version_whatever_the_error(tmp_path: Path) -> None:
    """Only ClickException used to free the reservation: a crash left `.<version>.partial`."""
    from voice.cli.train_cmd import _train_reserved

    target = ModelRegistry(tmp_path).new_version("acme")
    assert staging_dir(target).is_dir()

    def crash() -> None:
        raise ValueError("n_samples=0")

    with pytest.raises(ValueError):
        _train_reserved(crash, target, reserved=True)
    assert not staging_dir(target).exists() and list((tmp_path / "acme").iterdir()) == []


# --- finding 2: two trainings with the same --out --------------------------------------------


def _saveable(bundled: Path, tmp_path: Path, marker: str) -> tuple[object, Path]:
    """The bundled model with ``marker`` in its manifest, and an encoder folder to copy from."""
    model = load_model(bundled)
    model.manifest = {**model.manifest, "marker": marker}
    encoder_dir = tmp_path / "encoder_src"
    encoder_dir.mkdir(parents=True, exist_ok=True)
    for name in encoder_files(model.encoder):
        (encoder_dir / name).write_text(f"stand-in {name}")
    return model, encoder_dir


def test_two_trainings_with_one_out_never_write_into_one_folder(
    bundled: Path, tmp_path: Path
) -> None:
    """Both used `.<out>.partial`: the second removed the first's files and both wrote there."""
    out = tmp_path / "models" / "acme" / "v1"
    first, encoder_dir = _saveable(bundled, tmp_path, "first")
    second, _ = _saveable(bundled, tmp_path, "second")
    work_first = publish_module.save_out_of_sight(first, out, encoder_dir, in_place=False)  # type: ignore[arg-type]
    work_second = publish_module.save_out_of_sight(second, out, encoder_dir, in_place=False)  # type: ignore[arg-type]
    assert work_first != work_second
    assert load_model(work_first).manifest["marker"] == "first"
    publish_module.publish(work_first, out)
    with pytest.raises(TrainingError, match="another training") as raised:
        publish_module.publish(work_second, out)
    assert str(work_second) in str(raised.value)  # the loser's model is left for the user
    assert load_model(out).manifest["marker"] == "first"  # the published model loads whole
    assert [p.name for p in _published(tmp_path / "models" / "acme")] == ["v1"]


def test_a_failed_save_leaves_no_staging_folder(
    bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "acme" / "v1"
    model, encoder_dir = _saveable(bundled, tmp_path, "x")

    def half_written(_model: object, directory: Path, _encoder: Path) -> None:
        (directory / "weights.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(publish_module, "save_model", half_written)
    with pytest.raises(OSError, match="disk full"):
        publish_module.save_out_of_sight(model, out, encoder_dir, in_place=False)  # type: ignore[arg-type]
    assert list(out.parent.iterdir()) == []


def test_publishing_gives_back_the_registry_reservation(bundled: Path, tmp_path: Path) -> None:
    target = ModelRegistry(tmp_path).new_version("acme")
    model, encoder_dir = _saveable(bundled, tmp_path / "src", "x")
    work = publish_module.save_out_of_sight(model, target, encoder_dir, in_place=False)  # type: ignore[arg-type]
    assert work.name.startswith(f".{target.name}.") and work != staging_dir(target)
    publish_module.publish(work, target)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


# --- finding 6: --reward value -----------------------------------------------------------------


def _valued(*outcomes: tuple[bool, float | None]) -> list[Conversation]:
    return [
        Conversation(str(i), "t", Outcome(won, value), (Turn("agent", "hi"),))
        for i, (won, value) in enumerate(outcomes)
    ]


VALUE = TrainConfig(reward="value")


def test_negative_values_keep_their_order_instead_of_flipping() -> None:
    refunds = _valued((False, -100.0), (False, -80.0), (True, -5.0), (True, -1.0))
    returns = pipeline.returns(refunds, VALUE)
    assert np.all(np.diff(returns) > 0) and returns.min() == 0.0 and returns.max() <= 1.0


def test_a_won_call_without_a_value_takes_the_won_calls_median() -> None:
    """It took 1.0 (its success), then divided by dollars' p95: a won call scored as lost."""
    returns = pipeline.returns(_valued((True, None), (True, 200.0), (False, 0.0), (True, 150.0)), VALUE)
    p95 = float(np.percentile([175.0, 200.0, 0.0, 150.0], 95))  # 175: median of 200 and 150
    assert returns[0] == pytest.approx(175.0 / p95) and returns[0] > returns[3]


def test_non_negative_values_are_scaled_by_their_95th_percentile_as_before() -> None:
    conversations = _valued(*[(v > 10, float(v)) for v in range(5, 32)])
    values = np.array([c.outcome.value for c in conversations], np.float32)
    expected = np.clip(values / float(np.percentile(values, 95)), 0.0, 1.0)
    assert pipeline.returns(conversations, VALUE).tobytes() == expected.tobytes()


def test_data_without_values_falls_back_to_success() -> None:
    conversations = _valued((True, None), (False, None), (True, None))
    assert pipeline.returns(conversations, VALUE).tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [
        (((True, None), (False, 3.0), (False, 0.0)), "no value"),
        (((True, 0.0), (False, 0.0), (True, 0.0)), "do not vary"),
    ],
)
def test_unusable_values_are_refused_and_tune_leaves_the_value_return_out(
    outcomes: tuple[tuple[bool, float | None], ...], message: str
) -> None:
    conversations = _valued(*outcomes)
    from suggest.train.tuning import TuningGrid, _supported

    with pytest.raises(TrainingError, match=message):
        pipeline.returns(conversations, VALUE)
    settings = _supported(TuningGrid().settings(), conversations, TrainConfig(), pipeline.returns)
    assert settings and {s["reward"] for s in settings} == {"success"}


# --- finding 3: blank turns --------------------------------------------------------------------


def test_blank_turns_are_dropped_with_a_note_and_all_blank_lines_are_bad(tmp_path: Path) -> None:
    good = Conversation(
        "c1", "acme", Outcome(True), (Turn("agent", "Hello"), Turn("customer", "  "), Turn("agent", ""))
    )
    blank = Conversation("c2", "acme", Outcome(False), (Turn("agent", " \t"),))
    path = tmp_path / "c.jsonl"
    write_conversations(path, [good, blank])
    report = read_conversations(path)
    assert [c.id for c in report.conversations] == ["c1"]
    assert [t.text for t in report.conversations[0].turns] == ["Hello"]
    assert len(report.notes) == 1 and report.notes[0].startswith("2 turns with empty text dropped")
    assert "line 1 turns[1]" in report.notes[0]
    assert len(report.issues) == 1 and "line 2" in str(report.issues[0])
    assert "every turn's text is empty" in str(report.issues[0])


def test_training_never_sees_a_blank_turn(tmp_path: Path) -> None:
    """Conversations built in code skip read_conversations: training drops blank turns too."""
    conversations = [
        Conversation(
            f"c{i}",
            "acme",
            Outcome(i % 2 == 0),
            (Turn("agent", f"Hello number {i}"), Turn("customer", f"reply {i}"), Turn("agent", " ")),
        )
        for i in range(40)
    ]
    chosen = pipeline._chosen(conversations, TrainConfig(tenant="acme", split="all"))
    assert all(t.text.strip() for c in chosen for t in c.turns)
    assert len(chosen) == 40 and all(len(c.turns) == 2 for c in chosen)
    all_blank = [replace(c, turns=(Turn("agent", ""),)) for c in conversations]
    with pytest.raises(TrainingError, match="40 more have only empty turns"):
        pipeline._chosen(all_blank, TrainConfig(tenant="acme", split="all"))


# --- finding 8: ten versions in one second -----------------------------------------------------


def test_the_newest_of_eleven_versions_in_one_second_is_the_last(tmp_path: Path) -> None:
    registry, now = ModelRegistry(tmp_path), datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    made = []
    for _ in range(11):
        version = registry.new_version("acme", now)
        version.mkdir()
        (version / "manifest.json").write_text(json.dumps({}))
        staging_dir(version).rmdir()
        made.append(version.name)
    assert made[-1] == "20260101T120000Z-11"
    assert registry._newest("acme") == tmp_path / "acme" / made[-1]
    listed = [p.name for p in _published(tmp_path / "acme")]
    assert listed == made  # oldest first: -9 before -10 before -11
    shutil.rmtree(tmp_path / "acme" / made[-1])
    assert registry._newest("acme") == tmp_path / "acme" / made[-2]
