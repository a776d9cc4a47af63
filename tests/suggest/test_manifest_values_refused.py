"""A manifest whose values would break or skew every suggestion is refused at load.

``manifest.json`` is not covered by the file digests. Its shapes were checked against the
weights, but not its values: a ``summary_decay`` of ``"0.2"`` or null raised a TypeError on every
suggestion, a NaN decay or a ``repeat_cosine`` of -1 left no suggestion, a NaN weight made every
score uniform, and a wrong specs version, duplicate or non-string entity labels, or a schema
version of ``true`` / ``1.0`` loaded. Each is now a :class:`ModelFormatError` at load, so the
server keeps its old model and ``voice registry promote`` refuses it. Uses the demo's bundled
(real, small) model; no encoder is loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from suggest.errors import ModelFormatError
from suggest.model import load_model
from suggest.registry import CURRENT_FILE, ModelRegistry

pytestmark = pytest.mark.unit


def _install(bundled: Path, root: Path) -> Path:
    target = root / "acme" / "20260101T000000Z"
    shutil.copytree(bundled, target)
    return target


def _edit(model: Path, specs: dict[str, object] | None = None, **top: object) -> None:
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["specs"].update(specs or {})
    manifest.update(top)
    (model / "manifest.json").write_text(json.dumps(manifest))  # NaN is written as NaN


@pytest.mark.parametrize(
    ("specs", "top", "says"),
    [
        ({"summary_decay": "0.2"}, {}, "summary_decay is '0.2'"),
        ({"summary_decay": None}, {}, "summary_decay is None"),
        ({"summary_decay": math.nan}, {}, "summary_decay is nan"),
        ({"history_decay": math.nan}, {}, "history_decay is nan"),
        ({"history_decay": 0}, {}, "history_decay is 0"),
        ({"summary_decay": 1.5}, {}, "summary_decay is 1.5"),
        ({"version": 2}, {}, "specs version 2"),
        ({"version": True}, {}, "specs version True"),
        ({"entity_labels": [1] * 19}, {}, "entity_labels .* are not distinct names"),
        ({"entity_labels": ["DATE"] * 19}, {}, "entity_labels .* are not distinct names"),
        ({"entity_labels": "DATE"}, {}, "specs.entity_labels is 'DATE', not a list"),
        ({}, {"repeat_cosine": -1}, "repeat_cosine -1"),
        ({}, {"repeat_cosine": math.nan}, "repeat_cosine nan"),
        ({}, {"repeat_cosine": "0.9"}, "repeat_cosine '0.9'"),
        ({}, {"schema_version": True}, "model schema True"),
        ({}, {"schema_version": 1.0}, "model schema 1.0"),
    ],
)
def test_a_manifest_value_that_breaks_every_suggestion_is_refused_and_never_promoted(
    bundled: Path, tmp_path: Path, specs: dict[str, object], top: dict[str, object], says: str
) -> None:
    model = _install(bundled, tmp_path)
    _edit(model, specs, **top)
    with pytest.raises(ModelFormatError, match=says):
        load_model(model)
    with pytest.raises(ModelFormatError):
        ModelRegistry(tmp_path).promote("acme", model.name)
    assert not (tmp_path / "acme" / CURRENT_FILE).exists()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("policy.weights", np.nan, "policy.weights holds NaN or infinite values"),
        ("feedback_bias", np.inf, "feedback_bias holds NaN or infinite values"),
        ("exemplar.texts", np.nan, "exemplar.texts holds NaN"),
    ],
)
def test_weights_with_nan_or_inf_are_refused(
    bundled: Path, tmp_path: Path, name: str, value: float, says: str
) -> None:
    from safetensors.numpy import load_file, save_file

    model = _install(bundled, tmp_path)
    weights = load_file(str(model / "weights.safetensors"))
    weights[name] = weights[name].copy()
    weights[name].flat[0] = value
    save_file(weights, str(model / "weights.safetensors"))
    manifest = json.loads((model / "manifest.json").read_text())  # digests agree: only values differ
    digest = hashlib.sha256((model / "weights.safetensors").read_bytes()).hexdigest()
    manifest["files"]["weights.safetensors"] = digest
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=says):
        load_model(model)


def test_weights_of_another_dtype_are_refused(bundled: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    model = _install(bundled, tmp_path)
    weights = load_file(str(model / "weights.safetensors"))
    weights["majority"] = weights["majority"].astype(np.float64)
    save_file(weights, str(model / "weights.safetensors"))
    manifest = json.loads((model / "manifest.json").read_text())
    digest = hashlib.sha256((model / "weights.safetensors").read_bytes()).hexdigest()
    manifest["files"]["weights.safetensors"] = digest
    (model / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="majority is float64, not float32"):
        load_model(model)


def test_the_bundled_model_still_loads(bundled: Path) -> None:
    model = load_model(bundled)
    assert 0 < model.specs.summary_decay <= 1 and 0 < model.bank.repeat_cosine <= 1
