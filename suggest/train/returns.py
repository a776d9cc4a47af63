"""The return of a conversation, the R of the policy's advantages (``TrainConfig.reward``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from suggest.errors import TrainingError
from suggest.train.config import TrainConfig
from suggest.types import Conversation


def returns(chosen: Sequence[Conversation], config: TrainConfig) -> np.ndarray:
    """Per-conversation return in 0..1: success (0/1), or the value scaled by its range.

    The value return is ``(v - low) / (p95 - low)`` clipped to 0..1, where ``low`` is the smallest
    value or 0, whichever is lower: non-negative values are scaled by their 95th percentile alone
    (0 stays "earned nothing"), negative ones (refunds) keep their order instead of flipping.
    A call without a value takes the median value of calls with the same outcome that have one
    (a lost call without any such: 0), never its 0/1 success, which would sit on another scale
    than dollars. Data without any value falls back to the success return.

    Raises:
        TrainingError: values are unusable (won calls without a value and no won call with one,
            or every value equal).
    """
    success = np.array([float(c.outcome.success) for c in chosen], np.float32)
    if config.reward == "success" or all(c.outcome.value is None for c in chosen):
        return success
    values = _filled_values(chosen)
    low = min(0.0, float(values.min()))
    scale = float(np.percentile(values, 95)) - low
    if scale <= 0:
        raise TrainingError(
            f"--reward value: the {len(values)} conversations' values do not vary "
            f"(95th percentile {scale + low:g}, smallest {low:g})",
            hint="use --reward success, or export the calls' values (outcome.value)",
        )
    return np.clip((values - low) / scale, 0.0, 1.0)


def _filled_values(chosen: Sequence[Conversation]) -> np.ndarray:
    """Every conversation's value; a missing one is the median of its outcome's known values."""
    known: dict[bool, list[float]] = {True: [], False: []}
    for c in chosen:
        if c.outcome.value is not None:
            known[c.outcome.success].append(c.outcome.value)
    missing_won = sum(1 for c in chosen if c.outcome.success and c.outcome.value is None)
    if missing_won and not known[True]:
        raise TrainingError(
            f"--reward value: {missing_won} won conversations have no value and no won "
            "conversation has one to stand in",
            hint="use --reward success, or export the won calls' values (outcome.value)",
        )
    fill = {won: float(np.median(found)) if found else 0.0 for won, found in known.items()}
    return np.array(
        [
            c.outcome.value if c.outcome.value is not None else fill[c.outcome.success]
            for c in chosen
        ],
        np.float32,
    )
