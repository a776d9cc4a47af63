"""Model files, the registry and the suggestion commands refuse what cannot be trusted or served.

Uses the demo's bundled (real, small) model as written by ``voice train``; no encoder is needed,
since every refusal here happens before one is loaded.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from suggest.compare import NothingToCompareError, compare_reports
from suggest.data.format import read_conversations, write_conversations
from suggest.errors import ConfigError, ModelFormatError, TrainingError
from suggest.evaluate import EvaluationReport
from suggest.model import load_model
from suggest.registry import CURRENT_FILE, ModelRegistry, staging_dir
from suggest.train.config import TrainConfig
from suggest.train.pipeline import train
from suggest.train.publish import publish as _publish
from suggest.types import Conversation, Outcome, Turn

pytestmark = pytest.mark.unit


def _install(bundled: Path, root: Path, tenant: str, version: str) -> Path:
    target = root / tenant / version
    shutil.copytree(bundled, target)
    return target


def _edit_manifest(model: Path, change: dict[str, object], drop: str | None = None) -> None:
    manifest = json.loads((model / "manifest.json").read_text())
    manifest.update(change)
    if drop:
        del manifest[drop]
    (model / "manifest.json").write_text(json.dumps(manifest))


def _cli(*args: str) -> tuple[int, str]:
    from voice.cli import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_a_manifest_without_file_digests_is_refused_not_loaded_unchecked(
    bundled: Path, tmp_path: Path
) -> None:
    tampered = _install(bundled, tmp_path, "acme", "v1")
    exemplars = json.loads((tampered / "exemplars.json").read_text())
    exemplars[0]["text"] = "TAMPERED " + exemplars[0]["text"]
    (tampered / "exemplars.json").write_text(json.dumps(exemplars))
    _edit_manifest(tampered, {}, drop="files")
    with pytest.raises(ModelFormatError, match="does not record the digests"):
        load_model(tampered)
    _edit_manifest(tampered, {"files": {}})
    with pytest.raises(ModelFormatError, match="retrain"):
        load_model(tampered)


def test_missing_or_truncated_weights_are_typed_refusals_in_load_promote_and_list(
    bundled: Path, tmp_path: Path
) -> None:
    good = _install(bundled, tmp_path, "acme", "20260101T000000Z")
    assert load_model(good).specs.n_actions > 0
    missing = _install(bundled, tmp_path, "acme", "20260201T000000Z")
    (missing / "weights.safetensors").unlink()
    with pytest.raises(ModelFormatError, match="weights.safetensors is missing"):
        load_model(missing)
    truncated = _install(bundled, tmp_path, "acme", "20260301T000000Z")
    weights = truncated / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="does not match its manifest digest"):
        load_model(truncated)
    import hashlib

    files = json.loads((truncated / "manifest.json").read_text())["files"]
    files["weights.safetensors"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    _edit_manifest(truncated, {"files": files})  # digests agree: the reader itself must refuse
    with pytest.raises(ModelFormatError, match="cannot be read"):
        load_model(truncated)

    for version in ("20260201T000000Z", "20260301T000000Z"):
        code, output = _cli("registry", "promote", f"acme/{version}", "--models", str(tmp_path))
        assert code == 1 and "Error:" in output and "Traceback" not in output
    assert not (tmp_path / "acme" / CURRENT_FILE).exists()  # nothing was promoted
    code, output = _cli("registry", "list", "acme", "--models", str(tmp_path))
    line = {v: next(x for x in output.splitlines() if v in x) for v in ("0101T", "0201T", "0301T")}
    assert code == 0 and line["0301T"].lstrip().startswith("*")  # the newest is served ...
    assert "cannot be served" in line["0301T"]  # ... and marked as broken, as is the other one
    assert "cannot be served" in line["0201T"] and "cannot be served" not in line["0101T"]


def test_a_callers_tenant_only_ever_names_a_model_inside_the_registry(
    bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voice.config import ServerConfig
    from voice.frames import CallStartedFrame
    from voice.live.suggestions import SuggestionRouter

    server = tmp_path / "srv"
    _install(bundled, server / "models", "acme", "20260101T000000Z")
    shutil.copytree(bundled, server / "secret_model")  # another tenant's model beside the registry
    shutil.copytree(bundled, tmp_path / "models_outside")
    monkeypatch.chdir(server)
    registry = ModelRegistry(Path("models"))
    router = SuggestionRouter.load(ServerConfig(models_root="models"))
    for tenant in ("..", "secret_model", "../secret_model", "/tmp", "acme/20260101T000000Z"):
        assert router.choose(CallStartedFrame(call_id="c1", tenant=tenant)) == (None, None)
    with pytest.raises(ConfigError, match="not a safe folder name"):
        registry.served("..")
    with pytest.raises(ModelFormatError, match="has no model"):
        registry.served("secret_model")
    assert router.choose(CallStartedFrame(call_id="c2", tenant="acme"))[0] == str(
        Path("models") / "acme" / "20260101T000000Z"
    )
    (server / "models" / "acme" / CURRENT_FILE).write_text("../../secret_model\n")
    with pytest.raises(ConfigError, match="not a safe folder name"):
        registry.served("acme")
    assert router.choose(CallStartedFrame(call_id="c3", tenant="acme")) == (None, None)
    # an operator's explicit model directory still works, wherever it is
    assert registry.resolve(str(tmp_path / "models_outside")) == tmp_path / "models_outside"
    assert registry.resolve("secret_model") == Path("secret_model")


def test_trainings_started_in_the_same_second_get_their_own_sortable_versions(
    tmp_path: Path,
) -> None:
    registry, now = ModelRegistry(tmp_path), datetime(2026, 11, 27, 20, 57, 1, tzinfo=UTC)
    found: list[Path] = []
    threads = [
        threading.Thread(target=lambda: found.append(registry.new_version("casino", now)))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    names = sorted(p.name for p in found)
    assert len(set(names)) == 6 and names[0] == "20261127T205701Z"
    assert all(staging_dir(p).is_dir() and not p.exists() for p in found)  # reserved, unpublished
    later = registry.new_version("casino", datetime(2026, 11, 27, 20, 57, 2, tzinfo=UTC))
    assert sorted([*names, later.name])[-1] == later.name  # a later second still sorts last


def test_publishing_never_overwrites_a_model_another_training_published(tmp_path: Path) -> None:
    target = tmp_path / "casino" / "v1"
    work = staging_dir(target)
    work.mkdir(parents=True)
    (work / "manifest.json").write_text("{}")
    target.mkdir()
    (target / "manifest.json").write_text('{"other": true}')
    with pytest.raises(TrainingError, match="another training"):
        _publish(work, target)
    assert json.loads((target / "manifest.json").read_text()) == {"other": True}
    shutil.rmtree(target)
    _publish(work, target)
    assert (target / "manifest.json").read_text() == "{}" and not work.exists()


def _conversations(n: int, text: str | None = None) -> list[Conversation]:
    return [
        Conversation(
            id=f"c{i}",
            tenant="casino",
            outcome=Outcome(success=i % 2 == 0),
            turns=(
                Turn("agent", text if text is not None else f"Hello, I am agent number {i}."),
                Turn("customer", text if text is not None else f"I need {i} bottles of water."),
            ),
        )
        for i in range(n)
    ]


def test_too_few_conversations_say_what_the_cli_can_do(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="--split all") as raised:
        train(_conversations(3), TrainConfig(tenant="casino"), tmp_path / "m", cache_dir=tmp_path)
    assert "min_conversations" not in str(raised.value)  # not an option of `voice train`
    assert "about 25 in all" in str(raised.value)


def test_one_outcome_only_is_refused_before_any_turn_is_embedded(tmp_path: Path) -> None:
    """A CRM export of closed-won deals only used to fail after the encoder, the embeddings and
    the clustering (minutes on a real archive)."""
    won = [replace(c, outcome=Outcome(success=True)) for c in _conversations(40)]
    config = TrainConfig(tenant="casino", split="all")
    with pytest.raises(TrainingError, match="all 40 conversations of tenant 'casino' .* are won"):
        train(won, config, tmp_path / "m", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "0 conversations .*40 more have only empty turns"),  # empty turns are dropped
        ("ok", "only 1 distinct turn texts; training needs at least"),
    ],
)
def test_too_few_distinct_turn_texts_is_a_training_error_not_a_pca_crash(
    tmp_path: Path, text: str, message: str
) -> None:
    config = TrainConfig(tenant="casino", split="all")
    with pytest.raises(TrainingError, match=message):
        train(_conversations(40, text), config, tmp_path / "m", cache_dir=tmp_path)


def test_a_lone_surrogate_in_a_turn_skips_its_line_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    write_conversations(path, _conversations(2))
    bad = json.loads(path.read_text().splitlines()[0])
    bad["id"], bad["turns"][0]["text"] = "sur-1", "hi \ud800"
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(bad) + "\n")  # json escapes it as \ud800: valid JSON, bad text
    report = read_conversations(path)
    assert [c.id for c in report.conversations] == ["c0", "c1"]
    assert len(report.issues) == 1 and "not valid Unicode" in str(report.issues[0])
    assert "line 3" in str(report.issues[0])


def test_evaluate_and_compare_on_no_conversations_fail_instead_of_reporting_p_1(
    bundled: Path, tmp_path: Path
) -> None:
    data = tmp_path / "allbad.jsonl"
    data.write_text('{"id": "x"}\n{not json\n')
    model = str(bundled)
    code, output = _cli("evaluate", "--model", model, "--data", str(data), "--split", "all")
    assert code == 1 and "no conversations to evaluate" in output
    code, output = _cli(
        "compare", "--model", model, "--model", model, "--data", str(data), "--split", "all"
    )
    assert code == 1 and "no conversations to evaluate" in output and "p = 1" not in output
    empty_a = EvaluationReport([], 0, 0, "acme/v1")
    with pytest.raises(NothingToCompareError, match="no common agent turn"):
        compare_reports(empty_a, EvaluationReport([], 0, 0, "globex/v1"))


def test_a_folder_that_is_no_model_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--suggest-model out` (a transcript folder) said "tenant 'out' has no model"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(ModelFormatError, match="'out' is a folder but not a model: it has no manifest.json"):
        registry.resolve("out")
    with pytest.raises(ModelFormatError, match="tenant 'acme' has no model"):
        registry.resolve("acme")  # no such folder here: a tenant name
