"""An A/B split by agent is tested with the agent as the unit: calls of one agent share its skill,
so counting them as independent calls chance differences between a few agents significant."""

from __future__ import annotations

import numpy as np
import pytest

from suggest.ab import ABSplit, CallFacts, CallRecord, experiment_records
from suggest.ab_report import ab_report

pytestmark = pytest.mark.unit

ARMS = ["control", "treatment"]


def _agents(rng: np.random.Generator, rates: list[float], calls: int = 40) -> list[CallRecord]:
    """``calls`` calls per agent; the first half of the agents in control."""
    records = []
    for agent, rate in enumerate(rates):
        arm = ARMS[0] if agent < len(rates) // 2 else ARMS[1]
        records += [
            CallRecord(f"a{agent}c{i}", arm, bool(rng.random() < rate), 0, 0, f"a{agent}")
            for i in range(calls)
        ]
    return records


def test_agent_splits_keep_the_false_positive_rate_near_nominal() -> None:
    """Null: the arms do not differ, agents do (15-45 % success). Fisher over calls said
    'p < 0.05' in 17 % of experiments."""
    rng = np.random.default_rng(2)
    reps, significant = 100, 0
    for _ in range(reps):
        records = _agents(rng, list(rng.uniform(0.15, 0.45, 10)))
        treatment = ab_report(records, ARMS, unit="agent")[1]
        significant += treatment.outcome_p < 0.05
        assert treatment.test_unit == "agent"
    assert significant / reps <= 0.09


def test_one_agent_per_arm_is_never_significant() -> None:
    """Two agents, one per arm: 40 vs 0 successes is p ~ 1e-23 over calls, but which agent
    got which arm is the whole experiment: both assignments are as extreme (p = 1)."""
    records = [CallRecord(f"c{i}", "control", True, 0, 0, "ann") for i in range(40)]
    records += [CallRecord(f"t{i}", "treatment", False, 0, 0, "bob") for i in range(40)]
    by_call = ab_report(records, ARMS)[1]
    by_agent = ab_report(records, ARMS, unit="agent")[1]
    assert by_call.outcome_p is not None and by_call.outcome_p < 1e-10
    assert by_call.test_unit == "call"
    assert by_agent.outcome_p == 1.0
    assert by_agent.outcome_diff is not None and by_agent.outcome_diff[0] == -1.0
    assert np.isnan(by_agent.outcome_diff[1])  # one agent per arm: no interval


def test_a_real_difference_between_agent_arms_is_found() -> None:
    rng = np.random.default_rng(5)
    records = _agents(rng, [0.2] * 12 + [0.6] * 12)
    treatment = ab_report(records, ARMS, unit="agent")[1]
    diff, low, high = treatment.outcome_diff  # type: ignore[misc]
    assert treatment.outcome_p < 0.001 and low < diff < high and low > 0.2


def test_acceptance_of_an_agent_split_resamples_agents() -> None:
    """Agents who accept everything or nothing: over calls the interval is far too narrow."""
    records = []
    for agent in range(6):
        arm, accepts = ARMS[agent % 2], agent in (0, 1, 3)  # control 1 of 3 agents, treated 2 of 3
        records += [
            CallRecord(f"a{agent}c{i}", arm, None, 4, 4 if accepts else 0, f"a{agent}")
            for i in range(30)
        ]
    by_call = ab_report(records, ARMS)[1].acceptance_diff
    by_agent = ab_report(records, ARMS, unit="agent")[1].acceptance_diff
    assert by_call is not None and by_agent is not None
    assert by_call[0] == pytest.approx(by_agent[0]) == pytest.approx(1 / 3)
    assert by_agent[2] - by_agent[1] > 2 * (by_call[2] - by_call[1])


def test_experiment_records_carry_the_unit_the_split_assigned() -> None:
    split = ABSplit.from_dict(
        {
            "experiment": "e",
            "unit": "agent",
            "arms": [{"name": "control", "model": "t/v1"}, {"name": "treatment", "model": "t/v2"}],
        }
    )
    calls = [
        CallFacts("c1", agent_id="ann", served_arm="control", shown=1),
        CallFacts("c2", agent_id=None, served_arm="treatment", shown=1),
    ]
    records = experiment_records(split, calls, {}).records
    assert [(r.call_id, r.unit) for r in records] == [("c1", "ann"), ("c2", "c2")]


def test_the_printed_report_says_which_unit_its_tests_used(capsys: pytest.CaptureFixture[str]) -> None:
    from voice.cli.ab_cmd import _print_report

    rng = np.random.default_rng(1)
    _print_report(ab_report(_agents(rng, [0.3] * 6), ARMS, unit="agent"), "agent")
    out = capsys.readouterr().out
    assert "agents are the unit" in out
    _print_report(ab_report(_agents(rng, [0.3] * 6), ARMS), "call")
    assert "calls are the unit" in capsys.readouterr().out
