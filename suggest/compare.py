"""Compare two models on the same conversations (the body of ``voice compare``).

Models may have different action spaces, so the shared yardstick is text: per agent turn, the
cosine of each model's top-1 suggestion with what the agent actually said, in the full MiniLM's
space for every model (``suggest.evaluate``: a model with another encoder, static or fewer
layers, is measured with that MiniLM). Each model's own next-action top-3 hit is compared too;
it is against each model's own actions, so it compares like with like only when both have the
same action space. Significance: Wilcoxon signed-rank test and a paired bootstrap 95 % interval
for the relevance difference; exact McNemar for the top-3 hits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from suggest.errors import SuggestError
from suggest.evaluate import EvaluationReport, TurnRecord

SIGNIFICANCE = 0.05


class NothingToCompareError(SuggestError):
    """The two evaluations share no agent turn, so no difference can be tested."""


@dataclass(frozen=True)
class TurnDifference:
    """One agent turn seen by both models."""

    conversation: str
    turn: int
    actual_text: str
    suggestion_a: str
    suggestion_b: str
    relevance_a: float
    relevance_b: float
    top3_a: bool
    top3_b: bool


@dataclass
class Comparison:
    """Side-by-side metrics, per-turn differences and the verdict."""

    metrics_a: dict[str, Any]
    metrics_b: dict[str, Any]
    turns: list[TurnDifference]
    relevance_diff: float
    """mean(B - A) of top-1 relevance."""
    relevance_diff_ci95: tuple[float, float]
    relevance_p: float
    top3_p: float
    verdict: str


def compare_reports(a: EvaluationReport, b: EvaluationReport, *, seed: int = 0) -> Comparison:
    """Pair the two reports' turns and test the differences.

    Raises:
        NothingToCompareError: the reports have no agent turn in common.
    """
    from scipy.stats import bootstrap, wilcoxon

    by_key_b = {(t.conversation, t.turn): t for t in b.turns}
    pairs: list[tuple[TurnRecord, TurnRecord]] = [
        (t, by_key_b[(t.conversation, t.turn)])
        for t in a.turns
        if (t.conversation, t.turn) in by_key_b
    ]
    if not pairs:  # a test on nothing would read as "no significant difference (p = 1)"
        raise NothingToCompareError(
            f"{a.model_version} ({len(a.turns)} turns) and {b.model_version} "
            f"({len(b.turns)} turns) were scored on no common agent turn",
            hint="compare two models of one tenant on that tenant's conversations",
        )
    turns = [
        TurnDifference(
            conversation=x.conversation,
            turn=x.turn,
            actual_text=x.actual_text,
            suggestion_a=x.suggestions[0] if x.suggestions else "",
            suggestion_b=y.suggestions[0] if y.suggestions else "",
            relevance_a=x.relevance,
            relevance_b=y.relevance,
            top3_a=x.rank_policy < 3,
            top3_b=y.rank_policy < 3,
        )
        for x, y in pairs
    ]
    diffs = np.array([t.relevance_b - t.relevance_a for t in turns])
    if len(diffs) < 2 or not np.any(diffs):
        mean, interval, p_relevance = float(diffs.mean()) if len(diffs) else 0.0, (0.0, 0.0), 1.0
    else:
        mean = float(diffs.mean())
        ci = bootstrap(
            (diffs,),
            np.mean,
            n_resamples=2000,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
        interval, p_relevance = (float(ci.low), float(ci.high)), float(wilcoxon(diffs).pvalue)
    p_top3 = _mcnemar([t.top3_a for t in turns], [t.top3_b for t in turns])
    return Comparison(
        a.summary(),
        b.summary(),
        turns,
        mean,
        interval,
        p_relevance,
        p_top3,
        _verdict(mean, p_relevance),
    )


def _mcnemar(hits_a: list[bool], hits_b: list[bool]) -> float:
    from scipy.stats import binomtest

    only_a = sum(x and not y for x, y in zip(hits_a, hits_b, strict=True))
    only_b = sum(y and not x for x, y in zip(hits_a, hits_b, strict=True))
    return float(binomtest(only_b, only_a + only_b).pvalue) if only_a + only_b else 1.0


def _verdict(mean_diff: float, p_value: float) -> str:
    if p_value >= SIGNIFICANCE:
        return f"no significant difference in suggestion relevance (p = {p_value:.3g})"
    better = "B" if mean_diff > 0 else "A"
    return (
        f"model {better} suggests closer to what agents said "
        f"(mean cosine difference {mean_diff:+.4f}, p = {p_value:.3g})"
    )
