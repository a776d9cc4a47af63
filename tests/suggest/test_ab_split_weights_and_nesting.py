"""A/B split files: weights near the float limit still split the calls (1e308 + 1e308 overflowed
to inf and every call went to one arm), a weight that is a string or a boolean is refused (they
were read as numbers), and a file nested too deeply to parse is a one-line error (a
RecursionError traceback in `voice ab assign`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from suggest.ab import ABSplit
from suggest.errors import ConfigError
from voice.cli import cli

pytestmark = pytest.mark.unit


def _split(*weights: Any) -> dict[str, Any]:
    names = ["control", "treatment"]
    return {"experiment": "e1", "arms": [{"name": n, "model": f"acme/{n}", "weight": w}
                                         for n, w in zip(names, weights, strict=True)]}


def test_weights_near_the_float_limit_still_split_the_calls() -> None:
    split = ABSplit.from_dict(_split(1e308, 1e308))
    arms = [split.assign(f"call-{i}").name for i in range(2000)]
    assert 900 <= arms.count("treatment") <= 1100
    skewed = ABSplit.from_dict(_split(1.5e308, 0.5e308))
    assert 1400 <= [skewed.assign(f"call-{i}").name for i in range(2000)].count("control") <= 1600


@pytest.mark.parametrize("weight", ["1", True, None, [1], 10**400], ids=["str", "bool", "null", "list", "huge-int"])
def test_a_weight_that_is_not_a_finite_number_is_refused(weight: Any) -> None:
    with pytest.raises(ConfigError, match=r"arm 'control' has weight .*weights must be finite numbers above 0"):
        ABSplit.from_dict(_split(weight, 1.0))


def test_a_split_nested_too_deeply_is_a_one_line_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    result = CliRunner().invoke(cli, ["ab", "assign", "--split", str(deep), "--call-id", "c1"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert f"Error: {deep} is not a split: nested too deeply" in " ".join(result.output.split())


def test_a_split_file_with_string_weights_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps(_split("0.9", "0.1")))
    with pytest.raises(ConfigError, match="has weight '0.9', a str"):
        ABSplit.load(path)


def test_yaml_weights_in_exponent_form_are_numbers(tmp_path: Path) -> None:
    """YAML 1.1 (PyYAML) reads ``1e3`` as a string; a split written that way loaded before the
    weights' type check and must still load (YAML 1.2 and JSON read it as a number)."""
    path = tmp_path / "split.yaml"
    path.write_text("experiment: e1\narms:\n  - {name: control, model: acme/a, weight: 3e3}\n"
                    "  - {name: treatment, model: acme/b, weight: 1.0e3}\n", encoding="utf-8")
    split = ABSplit.load(path)
    assert [arm.weight for arm in split.arms] == [3000.0, 1000.0]
    assert 1350 <= [split.assign(f"call-{i}").name for i in range(2000)].count("treatment") * 3 <= 1650
