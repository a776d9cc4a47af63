"""Compare two models on the same conversations (the body of ``voice compare``).

Models may have different action spaces, so the shared yardstick is text: per agent turn, the
cosine of each model's top-1 suggestion with what the agent actually said, in the full MiniLM's
space for every model (``suggest.evaluate``: a model with another encoder, static or fewer
layers, is measured with that MiniLM). Each model's own next-action top-3 hit is compared too;
it is against each model's own actions, so it compares like with like only when both have the
same action space. Significance takes the conversation as the unit (turns of one conversation
share its topic and agent, so they are not independent): a Wilcoxon signed-rank test on the
per-conversation mean relevance differences, a bootstrap 95 % interval of the mean difference
that resamples whole conversations, and McNemar's exact test over conversations for the top-3
hits (``suggest.evaluate.clustered_sign_flip_p``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from suggest.errors import SuggestError
from suggest.evaluate import (
    EvaluationReport,
    TurnRecord,
    cluster_mean_ci,
    clustered_sign_flip_p,
)

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
    mean, interval, p_relevance = _relevance_test(turns, seed)
    p_top3 = clustered_sign_flip_p(
        [t.conversation for t in turns], [t.top3_a for t in turns], [t.top3_b for t in turns]
    )
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


def _relevance_test(
    turns: list[TurnDifference], seed: int
) -> tuple[float, tuple[float, float], float]:
    """Mean B - A relevance over turns, its 95 % interval and p, conversations as the unit.

    One conversation gives no interval (NaN) and no evidence (p = 1).
    """
    from scipy.stats import wilcoxon

    diffs = np.array([t.relevance_b - t.relevance_a for t in turns])
    mean = float(diffs.mean())
    if not np.any(diffs):
        return mean, (0.0, 0.0), 1.0
    conversations = [t.conversation for t in turns]
    low, high = cluster_mean_ci(diffs, conversations, seed)
    per_conversation: dict[str, list[float]] = {}
    for conversation, diff in zip(conversations, diffs, strict=True):
        per_conversation.setdefault(conversation, []).append(float(diff))
    means = np.array([np.mean(d) for d in per_conversation.values()])
    p = float(wilcoxon(means).pvalue) if np.count_nonzero(means) >= 2 else 1.0
    return mean, (low, high), p


def _verdict(mean_diff: float, p_value: float) -> str:
    if p_value >= SIGNIFICANCE:
        return f"no significant difference in suggestion relevance (p = {p_value:.3g})"
    better = "B" if mean_diff > 0 else "A"
    return (
        f"model {better} suggests closer to what agents said "
        f"(mean cosine difference {mean_diff:+.4f}, p = {p_value:.3g})"
    )
