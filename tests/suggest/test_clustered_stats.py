"""`voice evaluate` and `voice compare` take the conversation, not the turn, as the unit of their
tests and intervals: turns of one conversation share its topic and agent.

Hermetic: per-turn records are synthetic.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import binomtest

from suggest.compare import compare_reports
from suggest.evaluate import EvaluationReport, TurnRecord, _discrimination, _mcnemar

pytestmark = pytest.mark.unit


def _record(
    conversation: str,
    turn: int,
    *,
    relevance: float = 0.0,
    rank_policy: int = 0,
    rank_bc: int = 0,
    success: bool = True,
    logp_policy: float = 0.0,
) -> TurnRecord:
    return TurnRecord(
        conversation=conversation,
        turn=turn,
        success=success,
        actual_text="x",
        action=0,
        rank_policy=rank_policy,
        rank_bc=rank_bc,
        rank_majority=0,
        logp_policy=logp_policy,
        logp_bc=0.0,
        suggestions=("s",),
        suggestion_actions=(0,),
        relevance=relevance,
        relevance_best=relevance,
        relevance_bc=0.0,
        relevance_baseline=0.0,
    )


def test_with_one_discordant_turn_per_conversation_it_is_mcnemar_s_exact_test() -> None:
    from suggest.evaluate import clustered_sign_flip_p

    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 30))
        b_only = int(rng.integers(0, n + 1))
        hits_a = [i >= b_only for i in range(n)]
        hits_b = [not h for h in hits_a]
        clusters = [f"c{i}" for i in range(n)]
        expected = binomtest(b_only, n).pvalue
        assert clustered_sign_flip_p(clusters, hits_a, hits_b) == pytest.approx(expected, abs=1e-12)
    assert clustered_sign_flip_p(["a", "b"], [True, False], [True, False]) == 1.0


def test_many_discordant_turns_of_one_conversation_are_no_evidence() -> None:
    """Ten turns of one conversation where only the policy hits: an exact McNemar over turns
    says p = 0.002; with one conversation nothing can be told apart from chance."""
    turns = [_record("c0", t, rank_policy=0, rank_bc=5) for t in range(10)]
    turns += [_record(f"c{i}", 0) for i in range(1, 30)]
    assert _mcnemar(turns) == 1.0
    report = EvaluationReport(turns, 30, 30, "m").summary()
    assert report["top3_policy_vs_bc_successful_p"] == 1.0
    assert report["top3_successful_policy_only"] == 10  # the counts stay per turn


def _pair(effects: list[float], turns: int, rng: np.random.Generator) -> tuple[EvaluationReport, EvaluationReport]:
    a, b = [], []
    for c, effect in enumerate(effects):
        for t in range(turns):
            base = float(rng.uniform(0.2, 0.6))
            a.append(_record(f"c{c}", t, relevance=base))
            b.append(_record(f"c{c}", t, relevance=base + effect + float(rng.normal(0, 0.02))))
    n = len(effects)
    return EvaluationReport(a, n, n, "A"), EvaluationReport(b, n, n, "B")


def test_compare_s_false_positive_rate_stays_near_nominal_with_clustered_turns() -> None:
    """Null: A and B are equally good on average, each conversation favours one of them by a
    random amount shared by its turns. Over turns, 'significant' came out 64 % of the time."""
    rng = np.random.default_rng(1)
    significant = 0
    reps = 60
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(reps):
            a, b = _pair(list(rng.normal(0, 0.05, 12)), 20, rng)
            significant += compare_reports(a, b).relevance_p < 0.05
    assert significant / reps <= 0.12


def test_compare_still_finds_a_real_difference_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(4)
    a, b = _pair([0.05 + float(rng.normal(0, 0.01)) for _ in range(15)], 10, rng)
    comparison = compare_reports(a, b)
    assert comparison.relevance_p < 0.01 and "model B" in comparison.verdict
    low, high = comparison.relevance_diff_ci95
    assert low < comparison.relevance_diff < high and low > 0


def test_compare_with_one_conversation_gives_no_interval_and_no_verdict() -> None:
    a, b = _pair([0.1], 20, np.random.default_rng(5))
    comparison = compare_reports(a, b)
    assert comparison.relevance_p == 1.0 and np.isnan(comparison.relevance_diff_ci95[0])
    assert "no significant difference" in comparison.verdict


def test_the_cluster_interval_is_wider_than_one_over_turns_when_turns_share_an_effect() -> None:
    from suggest.evaluate import cluster_mean_ci

    rng = np.random.default_rng(6)
    effects = rng.normal(0, 0.1, 10)
    values = np.repeat(effects, 30) + rng.normal(0, 0.01, 300)
    clusters = [f"c{i}" for i in np.repeat(np.arange(10), 30)]
    low, high = cluster_mean_ci(values, clusters, 0)
    assert low < values.mean() < high
    assert high - low > 0.08  # about 4 standard errors of 10 conversation means of sd 0.1
    assert np.isnan(cluster_mean_ci(values[:30], clusters[:30], 0)[0])


def test_the_auc_interval_is_not_pulled_toward_one_half_by_one_outcome_resamples() -> None:
    """18 won and 2 lost conversations separated perfectly: a resample of won calls only has
    no AUC, and scoring it 0.5 put the interval's low end far below the AUC of 1."""
    turns = [_record(f"w{i}", 0, logp_policy=1.0 + i * 0.01) for i in range(18)]
    turns += [_record(f"l{i}", 0, success=False, logp_policy=-1.0 - i * 0.01) for i in range(2)]
    found = _discrimination(turns, 0)
    assert found["auc"] == 1.0 and found["auc_ci95"] == [1.0, 1.0]
    assert found["auc_conversations"] == 20


def test_the_auc_interval_brackets_the_auc_on_overlapping_scores() -> None:
    rng = np.random.default_rng(7)
    turns = [_record(f"w{i}", 0, logp_policy=float(rng.normal(0.5, 1))) for i in range(40)]
    turns += [
        _record(f"l{i}", 0, success=False, logp_policy=float(rng.normal(0, 1))) for i in range(10)
    ]
    found = _discrimination(turns, 0)
    low, high = found["auc_ci95"]
    assert 0 <= low < found["auc"] < high <= 1
