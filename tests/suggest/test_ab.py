"""A/B assignment is deterministic and splits as configured; the report's intervals behave."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from suggest.ab import ABRouter, ABSplit, CallFacts, CallRecord, experiment_records
from suggest.ab_report import ab_report, calls_per_arm, newcombe, wilson
from suggest.errors import ConfigError
from suggest.types import LatencyBreakdown, SuggestContext, SuggestResult

pytestmark = pytest.mark.unit


def _split(weights: tuple[float, float] = (0.9, 0.1), unit: str = "call") -> ABSplit:
    return ABSplit.from_dict(
        {
            "experiment": "exp-1",
            "unit": unit,
            "arms": [
                {"name": "control", "model": "models/t/v1", "weight": weights[0]},
                {"name": "treatment", "model": "models/t/v2", "weight": weights[1]},
            ],
        }
    )


def test_assignment_is_deterministic_across_instances() -> None:
    ids = [f"call-{i}" for i in range(500)]
    assert [_split().assign(i).name for i in ids] == [_split().assign(i).name for i in ids]


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.9, 0.1), (3.0, 1.0)])
def test_assignment_splits_as_configured(weights: tuple[float, float]) -> None:
    split = _split(weights)
    names = [split.assign(f"call-{i}").name for i in range(20000)]
    expected = weights[1] / sum(weights)
    assert abs(names.count("treatment") / len(names) - expected) < 0.01


def test_experiment_name_reshuffles_and_agent_unit_keeps_an_agent_together() -> None:
    split, other = (
        _split((0.5, 0.5)),
        ABSplit.from_dict({**_as_dict(_split((0.5, 0.5))), "experiment": "exp-2"}),
    )
    ids = [f"call-{i}" for i in range(400)]
    agreement = np.mean([split.assign(i).name == other.assign(i).name for i in ids])
    assert 0.35 < agreement < 0.65  # independent experiments: about half agree
    by_agent = _split((0.5, 0.5), unit="agent")
    assert len({by_agent.assign(f"call-{i}", "agent-7").name for i in range(50)}) == 1


def _as_dict(split: ABSplit) -> dict:
    return {
        "experiment": split.experiment,
        "unit": split.unit,
        "arms": [{"name": a.name, "model": a.model, "weight": a.weight} for a in split.arms],
    }


def test_bad_configurations_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ABSplit.from_dict({"experiment": "e", "arms": [{"name": "a", "model": "m", "weight": 0}]})
    with pytest.raises(ConfigError):
        ABSplit.from_dict(
            {"experiment": "e", "unit": "tenant", "arms": [{"name": "a", "model": "m"}]}
        )
    with pytest.raises(ConfigError):
        ABSplit.from_dict({"arms": []})
    path = tmp_path / "split.json"
    path.write_text(json.dumps(_as_dict(_split())))
    assert ABSplit.load(path) == _split()


def test_router_stamps_the_arm_of_each_call() -> None:
    class Engine:
        def __init__(self, version: str) -> None:
            self.version = version

        def suggest(self, context: SuggestContext) -> SuggestResult:
            return SuggestResult(
                context.call_id,
                len(context.turns),
                (),
                None,
                self.version,
                context.tenant,
                LatencyBreakdown(0, 0, 0, 0, 0),
            )

    split = _split((0.5, 0.5))
    router = ABRouter(split, Engine)
    for i in range(50):
        result = router.suggest(SuggestContext(call_id=f"c{i}", turns=()))
        arm = split.assign(f"c{i}")
        assert result.arm == arm.name and result.model_version == arm.model


def test_wilson_and_newcombe_intervals_cover_the_truth() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        a = wilson(int(rng.binomial(400, 0.30)), 400)
        b = wilson(int(rng.binomial(400, 0.40)), 400)
        diff, low, high = newcombe(a, b)
        assert low <= diff <= high
        covered += low <= 0.10 <= high
    assert covered >= 180  # about 95 % of 200


def test_report_compares_arms_on_outcome_and_acceptance() -> None:
    rng = np.random.default_rng(0)
    records = []
    for i in range(600):
        arm = "control" if i % 2 else "treatment"
        rate, accept = (0.3, 0.2) if arm == "control" else (0.5, 0.4)
        shown = int(rng.integers(1, 6))
        records.append(
            CallRecord(
                f"c{i}", arm, bool(rng.random() < rate), shown, int(rng.binomial(shown, accept))
            )
        )
    control, treatment = ab_report(records, ["control", "treatment"])
    assert control.calls == treatment.calls == 300
    assert control.outcome_diff is None
    diff, low, high = treatment.outcome_diff
    assert 0.1 < diff < 0.3 and low > 0 and treatment.outcome_p < 0.001
    acc_diff, acc_low, acc_high = treatment.acceptance_diff
    assert acc_low < acc_diff < acc_high and acc_low > 0.1
    assert treatment.outcome_calls_needed == calls_per_arm(
        control.outcome.rate, treatment.outcome.rate
    )
    assert treatment.outcome_calls_needed < 300  # a 0.2 difference: 300 calls per arm suffice
    assert control.outcome_calls_needed is None


def test_calls_per_arm_gives_the_power_it_promises() -> None:
    """At the planned size, a two-proportion test detects the lift about 80 % of the time
    (simulated), and at half the size clearly less often."""
    from scipy.stats import norm

    assert calls_per_arm(0.10, 0.15) == 686  # Fleiss, without continuity correction
    assert calls_per_arm(0.3, 0.3) is None and calls_per_arm(0.0, 0.1) is None
    assert calls_per_arm(0.30, 0.32) > calls_per_arm(0.30, 0.34) > calls_per_arm(0.30, 0.40)
    rng = np.random.default_rng(0)

    def detected(n: int) -> float:
        control = rng.binomial(n, 0.30, 4000) / n
        treated = rng.binomial(n, 0.36, 4000) / n
        pooled = (control + treated) / 2
        z = (treated - control) / np.sqrt(2 * pooled * (1 - pooled) / n)
        return float((np.abs(z) > norm.ppf(0.975)).mean())

    needed = calls_per_arm(0.30, 0.36)
    assert needed is not None
    assert 0.77 <= detected(needed) <= 0.83
    assert detected(needed // 2) < 0.6


@pytest.mark.parametrize(
    "weights", [("NaN", 0.5), ("Infinity", 0.5), (float("nan"), 1.0), (-1.0, 2.0), (0.0, 0.0)]
)
def test_weights_that_are_not_finite_and_positive_are_refused(weights: tuple) -> None:
    """NaN sent every call to the last arm and Infinity to the first; both were accepted."""
    data = _as_dict(_split())
    for arm, weight in zip(data["arms"], weights, strict=True):
        arm["weight"] = weight
    with pytest.raises(ConfigError, match="weights must be finite numbers above 0"):
        ABSplit.from_dict(data)


def test_weights_are_checked_when_a_split_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    path.write_text(json.dumps(_as_dict(_split())).replace("0.9", "NaN"))
    with pytest.raises(ConfigError, match="'control' has weight nan"):
        ABSplit.load(path)


def test_acceptance_is_compared_before_any_outcome_arrives() -> None:
    records = [CallRecord(f"c{i}", "control", None, 5, 0) for i in range(50)] + [
        CallRecord(f"t{i}", "treatment", None, 5, 5) for i in range(50)
    ]
    control, treatment = ab_report(records, ["control", "treatment"])
    assert control.acceptance_diff is None and treatment.outcome_diff is None
    diff, low, high = treatment.acceptance_diff
    assert diff == 1.0 and low == high == 1.0


def _facts(call: str, arm: str | None, **extra: object) -> CallFacts:
    return CallFacts(call, served_arm=arm, served_model="t/v1" if arm else "", shown=1, **extra)


def test_only_the_experiments_calls_are_counted() -> None:
    """Suggestions without an arm (other tenants, no experiment) or from another tenant's model
    are left out, and each reason is counted."""
    data = _as_dict(_split((0.5, 0.5)))
    data["arms"][0]["model"], data["arms"][1]["model"] = "t/v1", "t"  # registry references
    split = ABSplit.from_dict(data)
    calls = (
        [_facts(f"c{i}", "control") for i in range(10)]
        + [_facts(f"t{i}", "treatment", accepted=1) for i in range(10)]
        + [_facts(f"other-{i}", None, accepted=1) for i in range(200)]
        + [replace(_facts(f"globex-{i}", "treatment"), served_model="globex/v9") for i in range(7)]
        + [CallFacts(f"db-{i}", success=True) for i in range(5)]  # an outcome, nothing else
    )
    result = experiment_records(split, calls, {})
    control, treatment = ab_report(result.records, ["control", "treatment"])
    assert (control.calls, treatment.calls) == (10, 10)
    assert (control.acceptance.rate, treatment.acceptance.rate) == (0.0, 1.0)
    assert sorted(n.split(" ")[0] for n in result.notes) == ["200", "5", "7"]


def test_an_agent_experiment_keeps_every_call_of_an_agent_in_its_recorded_arm() -> None:
    split = _split((0.5, 0.5), unit="agent")
    recorded = "treatment" if split.assign("x", "ag7").name == "control" else "control"
    calls = [
        CallFacts(f"call-{i}", agent_id="ag7", success=i % 2 == 0, from_outcome_file=True)
        for i in range(40)
    ] + [_facts("live-1", split.assign("x", "ag7").name, agent_id="ag7")]
    result = experiment_records(split, calls, {"ag7": recorded})
    assert {r.arm for r in result.records} == {recorded} and len(result.records) == 41
    assert any("another arm than the recorded assignment" in n for n in result.notes)
    hashed = experiment_records(split, calls[:40], {})
    assert {r.arm for r in hashed.records} == {split.assign("x", "ag7").name}


def test_an_assignment_to_an_arm_the_split_no_longer_has_is_left_out() -> None:
    result = experiment_records(_split(), [CallFacts("c1", shown=2)], {"c1": "old-arm"})
    assert result.records == [] and "no longer has" in result.notes[0]


def test_the_tenant_of_an_arms_model_comes_from_its_manifest_or_registry_reference(
    tmp_path: Path,
) -> None:
    from suggest.ab import model_tenant

    folder = tmp_path / "best"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"tenant": "acme", "version": "v3"}))
    assert model_tenant(str(folder)) == "acme"
    assert model_tenant("acme/20260101T000000Z") == model_tenant("acme") == "acme"
    assert model_tenant(str(tmp_path / "elsewhere")) is None  # a folder of another machine
    unknown = _as_dict(_split())
    unknown["arms"][0]["model"] = str(tmp_path / "elsewhere")
    assert ABSplit.from_dict(unknown).model_tenants() is None  # then no call is refused for it
