"""Registry names: a hand-named version never outranks a training, a name never ends in a newline.

``voice train --out models/acme/baseline`` writes a version named ``baseline``; sorted by text it
came after every timestamp, so it stayed the tenant's newest and no later training went live.
``check_name`` matched with ``$``, which also matches before a final newline: ``"acme\\n"``
passed as a folder name. No model is loaded (folders with a manifest are all the registry reads
to list versions in order).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from suggest.errors import ConfigError
from suggest.registry import ModelRegistry, check_name, version_order

pytestmark = pytest.mark.unit


def _model(root: Path, tenant: str, version: str) -> None:
    (root / tenant / version).mkdir(parents=True)
    (root / tenant / version / "manifest.json").write_text("{}")


def test_a_hand_named_version_sorts_before_every_training(tmp_path: Path) -> None:
    _model(tmp_path, "acme", "baseline")
    _model(tmp_path, "acme", "20260101T000000Z")
    _model(tmp_path, "acme", "20260201T000000Z-2")
    assert ModelRegistry(tmp_path).served("acme") == tmp_path / "acme" / "20260201T000000Z-2"
    names = ["20260101T000000Z-10", "baseline", "20260101T000000Z", "alpha", "20260101T000000Z-9"]
    assert sorted(names, key=version_order) == [
        "alpha",
        "baseline",
        "20260101T000000Z",
        "20260101T000000Z-9",
        "20260101T000000Z-10",
    ]


def test_only_hand_named_versions_sort_by_their_text(tmp_path: Path) -> None:
    _model(tmp_path, "acme", "b-model")
    _model(tmp_path, "acme", "a-model")
    assert ModelRegistry(tmp_path).served("acme").name == "b-model"


@pytest.mark.parametrize("name", ["acme\n", "acme\r\n", "20260101T000000Z\n"])
def test_a_name_with_a_trailing_newline_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not a safe folder name"):
        check_name(name, "tenant")


def test_a_tenant_with_a_trailing_newline_is_not_served(tmp_path: Path) -> None:
    _model(tmp_path, "acme", "20260101T000000Z")
    with pytest.raises(ConfigError):
        ModelRegistry(tmp_path).served("acme\n")
