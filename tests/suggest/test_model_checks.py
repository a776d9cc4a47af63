"""A manifest that does not describe its model is a typed refusal at load, never a served model.

``manifest.json`` is not covered by the file digests, so its specs (the state layout) are checked
against the arrays. Uses the demo's bundled (real, small) model; no encoder is loaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from suggest.errors import ModelFormatError
from suggest.model import load_model, read_manifest
from suggest.registry import CURRENT_FILE, ModelRegistry

pytestmark = pytest.mark.unit


def _install(bundled: Path, root: Path, version: str = "20260101T000000Z") -> Path:
    target = root / "acme" / version
    shutil.copytree(bundled, target)
    return target


def _edit_specs(model: Path, **change: object) -> None:
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["specs"].update(change)
    (model / "manifest.json").write_text(json.dumps(manifest))


def test_the_bundled_model_passes_the_layout_check(bundled: Path) -> None:
    model = load_model(bundled)
    assert model.policy.weights.shape == (model.specs.n_actions, model.specs.n_features)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"n_actions": 3}, "policy.weights"),
        ({"projection_dim": 16}, "projection"),
        ({"phase_edges": [0, 1, 3]}, "policy.weights"),  # fewer phase buckets: fewer features
        ({"n_intents": 7}, "intent_centroids"),
        ({"embedding_dim": 128}, "action_centroids"),
        ({"entity_labels": ["DATE"]}, "outcome.weights"),
    ],
)
def test_a_manifest_whose_specs_disagree_with_the_weights_is_refused(
    bundled: Path, tmp_path: Path, change: dict[str, object], names: str
) -> None:
    model = _install(bundled, tmp_path)
    _edit_specs(model, **change)
    with pytest.raises(ModelFormatError, match=f"disagree with the model's weights: .*{names}") as err:
        load_model(model)
    assert "restore it as `voice train` wrote it" in (err.value.hint or "")
    with pytest.raises(ModelFormatError):
        ModelRegistry(tmp_path).promote("acme", model.name)
    assert not (tmp_path / "acme" / CURRENT_FILE).exists()  # nothing was promoted


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"phase_edges": [0, 3, 1, 6, 10, 15, 22]}, "phase_edges"),  # same width, not a layout
        ({"phase_edges": []}, "phase_edges"),
        ({"n_actions": "16"}, "n_actions is '16'"),
        ({"projection_dim": 0}, "projection_dim is 0"),
    ],
)
def test_specs_that_are_no_layout_at_all_are_refused(
    bundled: Path, tmp_path: Path, change: dict[str, object], says: str
) -> None:
    model = _install(bundled, tmp_path)
    _edit_specs(model, **change)
    with pytest.raises(ModelFormatError, match=says):
        load_model(model)


def test_an_encoder_of_another_dimension_is_refused(bundled: Path, tmp_path: Path) -> None:
    model = _install(bundled, tmp_path)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["encoder"]["dim"] = 768
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="the encoder embeds to 768"):
        load_model(model)


@pytest.mark.parametrize("content", ["null", "[]", "[1, 2]", '"manifest"', "42"])
def test_a_manifest_that_is_not_a_json_object_is_a_typed_refusal(
    bundled: Path, tmp_path: Path, content: str
) -> None:
    model = _install(bundled, tmp_path)
    (model / "manifest.json").write_text(content)
    with pytest.raises(ModelFormatError, match="not a manifest"):
        read_manifest(model)
    with pytest.raises(ModelFormatError, match="not a manifest"):
        load_model(model)
    [entry] = ModelRegistry(tmp_path).versions("acme")
    assert entry.problem is not None and "not a manifest" in entry.problem


def test_registry_list_marks_a_null_manifest_instead_of_crashing(
    bundled: Path, tmp_path: Path
) -> None:
    from voice.cli import cli

    _install(bundled, tmp_path, "20260101T000000Z")
    broken = _install(bundled, tmp_path, "20260201T000000Z")
    (broken / "manifest.json").write_text("null")
    result = CliRunner().invoke(cli, ["registry", "list", "acme", "--models", str(tmp_path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0 and "Traceback" not in result.output
    line = next(x for x in result.output.splitlines() if "0201T" in x)
    assert "cannot be served" in line
