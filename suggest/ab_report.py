"""A/B report: arms compared on call outcome and suggestion acceptance.

Wilson intervals per arm and, against the first (control) arm, a Newcombe interval for the
difference plus Fisher's exact test for outcomes and a bootstrap over calls for acceptance
(suggestions of one call are not independent). With unit ``agent`` the tests take the agent as
their unit instead (a bootstrap over agents, a permutation test over agents): calls of one agent
share its skill. :func:`calls_per_arm` says how long an experiment must run: the calls each arm
needs to detect a success-rate difference (the one observed, or a lift one plans for; it assumes
independent calls, so with unit ``agent`` it is a lower bound). The experiment's calls come from
:func:`suggest.ab.experiment_records`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from suggest.ab import CallRecord, Unit

UNIT_RESAMPLES = 2000
"""Bootstrap resamples of the intervals over agents (unit ``agent``)."""
UNIT_PERMUTATIONS = 10_000
"""Random re-assignments of agents to arms when there are too many to try them all."""


@dataclass(frozen=True)
class Proportion:
    """A rate with its 95 % Wilson interval."""

    successes: int
    total: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class ArmReport:
    """One arm's numbers, and (for non-control arms) their difference to control."""

    arm: str
    calls: int
    outcome: Proportion
    acceptance: Proportion
    outcome_diff: tuple[float, float, float] | None = None
    """(difference, low, high) of the success rate vs control, 95 %: Newcombe (unit ``call``),
    or a bootstrap over agents (unit ``agent``)."""
    outcome_p: float | None = None
    """Fisher's exact test over calls (unit ``call``), or a permutation test over agents."""
    acceptance_diff: tuple[float, float, float] | None = None
    """(difference, low, high) of the acceptance rate vs control, 95 % bootstrap over calls
    (unit ``call``) or agents (unit ``agent``)."""
    test_unit: Unit = "call"
    """What the tests and intervals resample: the split's unit of randomisation."""
    outcome_calls_needed: int | None = None
    """Judged calls per arm a test needs to detect the observed success-rate difference
    (:func:`calls_per_arm`); None when there is no difference."""


def wilson(successes: int, total: int) -> Proportion:
    """Rate and 95 % Wilson interval (scipy's binomtest)."""
    from scipy.stats import binomtest

    if total == 0:
        return Proportion(0, 0, float("nan"), float("nan"), float("nan"))
    interval = binomtest(successes, total).proportion_ci(confidence_level=0.95, method="wilson")
    return Proportion(
        successes, total, successes / total, float(interval.low), float(interval.high)
    )


def newcombe(a: Proportion, b: Proportion) -> tuple[float, float, float]:
    """b - a with Newcombe's hybrid score interval (method 10) from the two Wilson intervals."""
    diff = b.rate - a.rate
    low = diff - float(np.sqrt((b.rate - b.low) ** 2 + (a.high - a.rate) ** 2))
    high = diff + float(np.sqrt((b.high - b.rate) ** 2 + (a.rate - a.low) ** 2))
    return diff, low, high


def calls_per_arm(
    control_rate: float, treated_rate: float, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Calls per arm for a two-sided test at ``alpha`` to detect ``treated_rate`` against
    ``control_rate`` with probability ``power`` (two proportions, normal approximation without
    continuity correction, as in Fleiss). None: the rates are equal (or not rates).

    10 % vs 15 % needs 686 calls per arm; a 2-point lift on a 30 % close rate needs 8,394.
    """
    from scipy.stats import norm

    if not (0 < control_rate < 1 and 0 < treated_rate < 1) or control_rate == treated_rate:
        return None
    pooled = (control_rate + treated_rate) / 2
    spread = norm.ppf(1 - alpha / 2) * np.sqrt(2 * pooled * (1 - pooled)) + norm.ppf(
        power
    ) * np.sqrt(control_rate * (1 - control_rate) + treated_rate * (1 - treated_rate))
    return int(np.ceil((spread / (treated_rate - control_rate)) ** 2))


def ab_report(
    records: Sequence[CallRecord], arms: Sequence[str], *, seed: int = 0, unit: Unit = "call"
) -> list[ArmReport]:
    """Per-arm outcome and acceptance, each non-first arm compared with the first (control).

    The acceptance comparison is made as soon as both arms have suggestions shown; the outcome
    comparison once both have judged calls. ``unit`` is the split's: with ``agent``, whole agents
    were randomised, and calls of one agent share its skill, so the tests resample agents
    (``CallRecord.unit``), not calls; counting calls as independent would call chance
    differences between a few agents significant.
    """
    by_arm = {arm: [r for r in records if r.arm == arm] for arm in arms}
    reports: list[ArmReport] = []
    control: ArmReport | None = None
    for arm in arms:
        calls = by_arm[arm]
        judged = [r for r in calls if r.success is not None]
        report = ArmReport(
            arm=arm,
            calls=len(calls),
            outcome=wilson(sum(bool(r.success) for r in judged), len(judged)),
            acceptance=wilson(sum(r.accepted for r in calls), sum(r.shown for r in calls)),
            test_unit=unit,
        )
        if control is None:
            control = report
        else:
            # Acceptance needs no outcomes: it is compared from the first suggestions on.
            report = replace(
                report,
                acceptance_diff=_acceptance_diff(by_arm[control.arm], calls, seed, unit),
            )
            if report.outcome.total and control.outcome.total:
                report = (
                    _with_outcome_comparison(report, control)
                    if unit == "call"
                    else _with_agent_outcome_comparison(report, by_arm[control.arm], calls, seed)
                )
        reports.append(report)
    return reports


def _with_outcome_comparison(report: ArmReport, control: ArmReport) -> ArmReport:
    from scipy.stats import fisher_exact

    table = [
        [report.outcome.successes, report.outcome.total - report.outcome.successes],
        [control.outcome.successes, control.outcome.total - control.outcome.successes],
    ]
    return replace(
        report,
        outcome_diff=newcombe(control.outcome, report.outcome),
        outcome_p=float(fisher_exact(table).pvalue),
        outcome_calls_needed=calls_per_arm(control.outcome.rate, report.outcome.rate),
    )


def _units(
    records: Sequence[CallRecord],
    numerator: Callable[[CallRecord], float],
    denominator: Callable[[CallRecord], float],
) -> np.ndarray:
    """Per unit (agent, or call when none is recorded): [sum of numerator, sum of denominator],
    units with a zero denominator left out."""
    totals: dict[str, list[float]] = {}
    for record in records:
        pair = totals.setdefault(record.unit or record.call_id, [0.0, 0.0])
        pair[0] += numerator(record)
        pair[1] += denominator(record)
    found = np.array([pair for pair in totals.values() if pair[1] > 0], dtype=float)
    return found.reshape(-1, 2)


def _with_agent_outcome_comparison(
    report: ArmReport, control: Sequence[CallRecord], treated: Sequence[CallRecord], seed: int
) -> ArmReport:
    """The success-rate difference with agents as the unit: a bootstrap over each arm's agents
    for the interval, a permutation of agents between the arms for p."""

    def success(r: CallRecord) -> float:
        return float(bool(r.success))

    def judged(r: CallRecord) -> float:
        return float(r.success is not None)

    first, second = _units(control, success, judged), _units(treated, success, judged)
    diff = _ratio(second) - _ratio(first)
    low, high = _unit_bootstrap(first, second, seed)
    return replace(
        report,
        outcome_diff=(diff, low, high),
        outcome_p=_unit_permutation_p(first, second, seed),
        outcome_calls_needed=calls_per_arm(_ratio(first), _ratio(second)),
    )


def _ratio(units: np.ndarray) -> float:
    """Pooled rate of units' [numerator, denominator] rows."""
    return float(units[:, 0].sum() / units[:, 1].sum())


def _unit_bootstrap(first: np.ndarray, second: np.ndarray, seed: int) -> tuple[float, float]:
    """95 % percentile interval of the pooled-rate difference, each arm's units resampled apart
    (NaN when an arm has fewer than 2 units)."""
    if len(first) < 2 or len(second) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # how often each unit is drawn in each resample: (resamples, units) @ (units, 2)
    a = rng.multinomial(len(first), np.full(len(first), 1 / len(first)), UNIT_RESAMPLES) @ first
    b = rng.multinomial(len(second), np.full(len(second), 1 / len(second)), UNIT_RESAMPLES) @ second
    differences = b[:, 0] / b[:, 1] - a[:, 0] / a[:, 1]
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def _unit_permutation_p(first: np.ndarray, second: np.ndarray, seed: int) -> float:
    """Two-sided p of the pooled-rate difference under re-randomisation of the units between the
    arms (as the split randomised them): exact over every assignment when there are at most
    ``UNIT_PERMUTATIONS`` of them, else over that many random ones."""
    units = np.vstack([first, second])
    n, k = len(units), len(second)
    exact = math.comb(n, k) <= UNIT_PERMUTATIONS
    if exact:
        treated = np.array(
            [units[list(combo)].sum(axis=0) for combo in itertools.combinations(range(n), k)]
        )
    else:
        rng = np.random.default_rng(seed)
        treated = np.array(
            [units[rng.permutation(n)[:k]].sum(axis=0) for _ in range(UNIT_PERMUTATIONS)]
        )
    rest = units.sum(axis=0) - treated
    differences = treated[:, 0] / treated[:, 1] - rest[:, 0] / rest[:, 1]
    observed = abs(_ratio(second) - _ratio(first))
    extreme = int((np.abs(differences) >= observed - 1e-12).sum())  # ties count, as in Fisher's
    return extreme / len(differences) if exact else (extreme + 1) / (len(differences) + 1)


def _acceptance_diff(
    control: Sequence[CallRecord], treated: Sequence[CallRecord], seed: int, unit: Unit = "call"
) -> tuple[float, float, float] | None:
    """Acceptance-rate difference and its 95 % bootstrap interval over calls or agents."""

    def accepted(r: CallRecord) -> float:
        return float(r.accepted)

    def shown(r: CallRecord) -> float:
        return float(r.shown)

    if unit == "call":  # every call its own unit
        control = [replace(r, unit="") for r in control]
        treated = [replace(r, unit="") for r in treated]
    first, second = _units(control, accepted, shown), _units(treated, accepted, shown)
    if len(first) < 2 or len(second) < 2:
        return None
    if unit == "call":
        return _call_bootstrap(first, second, seed)
    low, high = _unit_bootstrap(first, second, seed)
    return _ratio(second) - _ratio(first), low, high


def _call_bootstrap(
    first: np.ndarray, second: np.ndarray, seed: int
) -> tuple[float, float, float]:
    """The calls' acceptance difference with scipy's bootstrap, as the reports have had it."""
    from scipy.stats import bootstrap

    units = np.vstack([first, second])

    def difference(a: np.ndarray, b: np.ndarray) -> float:
        return _ratio(units[b]) - _ratio(units[a])

    a_index = np.arange(len(first))
    b_index = np.arange(len(first), len(units))
    result = bootstrap(
        (a_index, b_index),
        difference,
        vectorized=False,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (
        difference(a_index, b_index),
        float(result.confidence_interval.low),
        float(result.confidence_interval.high),
    )
