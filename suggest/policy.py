"""The policy's inference side: linear scores over the discrete actions, and "why" statistics.

Training (``suggest.train.policy_fit``) fits scikit-learn models and folds their feature scaling
into plain weight matrices, so serving is one matrix product per batch and needs no sklearn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearPolicy:
    """Softmax policy: ``p(a | x) = softmax(x @ weights.T + bias)``."""

    weights: np.ndarray
    """(n_actions, n_features) float32."""
    bias: np.ndarray
    """(n_actions,) float32."""

    def logits(self, features: np.ndarray) -> np.ndarray:
        """(n, n_actions) unnormalised log-probabilities."""
        return features @ self.weights.T + self.bias

    def probabilities(
        self, features: np.ndarray, extra_logits: np.ndarray | None = None
    ) -> np.ndarray:
        """(n, n_actions) action probabilities; ``extra_logits`` (e.g. feedback bias) are added."""
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is handled below
            scores = self.logits(features)
            if extra_logits is not None:
                scores = scores + extra_logits
        if not np.isfinite(scores).all():
            # A huge feature (a call-start fact near float32's limit) overflows a logit: inf - inf
            # would make every probability NaN, which strict JSON cannot carry to the console.
            limit = np.finfo(scores.dtype).max
            scores = np.nan_to_num(scores, nan=0.0, posinf=limit, neginf=-limit)
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class OutcomeModel:
    """Logistic model of P(success | state): the value baseline of advantage weighting."""

    weights: np.ndarray
    """(n_features,) float32."""
    bias: float

    def probability(self, features: np.ndarray) -> np.ndarray:
        """(n,) probability that the call ends in success from this state."""
        return 1.0 / (1.0 + np.exp(-(features @ self.weights + self.bias)))


MIN_SUPPORT = 3
"""Won calls an (intent, action) pair needs before "why" quotes its own rate."""


@dataclass(frozen=True)
class WhyStats:
    """How often successful (and unsuccessful) agents answered each intent with each action.

    Row ``n_intents`` is "no customer turn yet" (the opening). Counts are conversations, not
    turns: a call that answered a price objection twice with the same move counts once.
    """

    won: np.ndarray
    """(n_intents + 1, n_actions) won conversations with action after intent."""
    lost: np.ndarray
    won_total: np.ndarray
    """(n_intents + 1,) won conversations in which an agent answered that intent at all."""
    lost_total: np.ndarray
    won_any: np.ndarray
    """(n_actions,) won conversations in which the action was made at all."""
    lost_any: np.ndarray
    calls: np.ndarray
    """(2,) won and lost conversations."""

    def explain(self, intent: int, action: int, intent_name: str, action_name: str) -> str:
        """A one-line reason ("successful agents answered 'price' with this in 41 % of won calls").

        Pairs seen in fewer than ``MIN_SUPPORT`` won calls fall back to how often the move
        appears in won vs lost calls at all.
        """
        row = intent if intent >= 0 else len(self.won) - 1
        if self.won[row, action] >= MIN_SUPPORT and self.won_total[row] > 0:
            won = 100.0 * self.won[row, action] / self.won_total[row]
            after = "opened with this" if intent < 0 else f"answered '{intent_name}' with this"
            versus = (
                f" (vs {100.0 * self.lost[row, action] / self.lost_total[row]:.0f} % of lost calls)"
                if self.lost_total[row]
                else ""
            )
            return f"successful agents {after} ({action_name}) in {won:.0f} % of won calls{versus}"
        won_calls, lost_calls = float(self.calls[0]), float(self.calls[1])
        if won_calls == 0:
            return f"'{action_name}' is what the outcome-aware policy ranks highest here"
        versus = (
            f" (vs {100.0 * self.lost_any[action] / lost_calls:.0f} % of lost calls)"
            if lost_calls
            else ""
        )
        share = 100.0 * self.won_any[action] / won_calls
        made = f"successful agents made this move ({action_name})"
        return f"{made} in {share:.0f} % of won calls{versus}"
