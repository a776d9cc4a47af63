"""Fit the outcome-aware policy, its baselines and the value model with scikit-learn.

- **Outcome-aware policy**: advantage-weighted behaviour cloning (AWR, Peng et al. 2019) over
  the discrete actions: a multinomial logistic regression whose rows are weighted by
  ``exp(A / beta)``, where A mixes the call's return against the value baseline and the change
  in predicted outcome the move caused (``advantages``); V(s) is a logistic model of
  P(success | state), cross-fitted over conversation folds so a row's own outcome never leaks
  into its baseline. Moves that preceded better-than-expected outcomes count more.
- **Behaviour cloning**: the same model without weights (imitate every agent).
- **Majority**: action frequencies.

Feature scaling is folded into the weights, so serving is ``x @ W.T + b`` on raw features.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from suggest.errors import TrainingError
from suggest.policy import LinearPolicy, OutcomeModel
from suggest.train.config import TrainConfig
from suggest.train.dataset import TrainingRows

MISSING_ACTION_LOGIT = -30.0
"""Bias of an action no training row took (possible on small data): never proposed."""


@dataclass(frozen=True)
class ExtraRows:
    """Rows added by feedback: features, actions and their sample weight."""

    features: np.ndarray
    actions: np.ndarray
    weight: float


@dataclass
class FittedPolicies:
    """Everything fitted here, ready for the model."""

    policy: LinearPolicy
    behaviour_cloning: LinearPolicy
    majority: np.ndarray
    outcome: OutcomeModel
    advantage_weights: np.ndarray
    """The AWR weight of every training row (for the record and tests)."""


def fit_policies(
    rows: TrainingRows, n_actions: int, config: TrainConfig, extra: ExtraRows | None = None
) -> FittedPolicies:
    """Fit AWR, behaviour cloning, majority and the value model on ``rows`` (+ feedback rows).

    Raises:
        TrainingError: all conversations share one outcome (nothing to learn from).
    """
    from sklearn.preprocessing import StandardScaler

    _check_outcomes(rows)
    scaler = StandardScaler().fit(rows.features)
    scaled = scaler.transform(rows.features).astype(np.float32)
    policy, weights = _fit_awr(scaled, scaler, rows, n_actions, config, extra)
    behaviour_cloning = _fit_softmax(scaled, rows.actions, None, n_actions, _bc_config(config))
    outcome = _fit_outcome(scaled, rows.success, config)
    majority = np.bincount(rows.actions, minlength=n_actions).astype(np.float32)
    return FittedPolicies(
        policy=_unscale_softmax(policy, scaler),
        behaviour_cloning=_unscale_softmax(behaviour_cloning, scaler),
        majority=majority / majority.sum(),
        outcome=_unscale_outcome(outcome, scaler),
        advantage_weights=weights.astype(np.float32),
    )


def fit_outcome_aware(rows: TrainingRows, n_actions: int, config: TrainConfig) -> LinearPolicy:
    """The AWR policy alone, as :func:`fit_policies` fits it (cross-validation's inner loop).

    Raises:
        TrainingError: all conversations share one outcome.
    """
    from sklearn.preprocessing import StandardScaler

    _check_outcomes(rows)
    scaler = StandardScaler().fit(rows.features)
    scaled = scaler.transform(rows.features).astype(np.float32)
    policy, _ = _fit_awr(scaled, scaler, rows, n_actions, config, None)
    return _unscale_softmax(policy, scaler)


def fit_behaviour_cloning(rows: TrainingRows, n_actions: int, config: TrainConfig) -> LinearPolicy:
    """Behaviour cloning alone, as :func:`fit_policies` fits it: it depends on C only, so
    cross-validation fits it once per C instead of once per AWR setting."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(rows.features)
    scaled = scaler.transform(rows.features).astype(np.float32)
    return _unscale_softmax(
        _fit_softmax(scaled, rows.actions, None, n_actions, _bc_config(config)), scaler
    )


def _check_outcomes(rows: TrainingRows) -> None:
    if len(np.unique(rows.success)) < 2:
        raise TrainingError(
            "every training conversation has the same outcome",
            hint="the policy learns from won vs lost calls; add both",
        )


def _bc_config(config: TrainConfig) -> TrainConfig:
    """``config`` with behaviour cloning's own C, when it has one."""
    if config.bc_regularization is None:
        return config
    return dataclasses.replace(config, regularization=config.bc_regularization)


def _fit_awr(
    scaled: np.ndarray,
    scaler: object,
    rows: TrainingRows,
    n_actions: int,
    config: TrainConfig,
    extra: ExtraRows | None,
) -> tuple[LinearPolicy, np.ndarray]:
    """The advantage-weighted softmax on scaled features (+ feedback rows) and its row weights."""
    value = _cross_fitted_value(scaled, rows, config)
    weights = np.clip(
        np.exp(advantages(rows, value, config.awr_lambda) / config.awr_temperature),
        0.0,
        config.awr_max_weight,
    )
    weights = weights / weights.mean()
    features, actions, sample_weight = scaled, rows.actions, weights
    if extra is not None and len(extra.actions):
        transform = scaler.transform  # type: ignore[attr-defined]
        features = np.vstack([scaled, transform(extra.features).astype(np.float32)])
        actions = np.concatenate([rows.actions, extra.actions])
        sample_weight = np.concatenate([weights, np.full(len(extra.actions), extra.weight)])
    return _fit_softmax(features, actions, sample_weight, n_actions, config), weights


def advantages(rows: TrainingRows, value: np.ndarray, lam: float) -> np.ndarray:
    """A_t = lam * (R - V(s_t)) + (1 - lam) * (V(s_next) - V(s_t)).

    ``s_next`` is the state before the same call's next agent turn — after the customer reacted
    to this move — so lam < 1 credits a move with the change it caused in the predicted outcome
    (a one-step, TD-style advantage); lam = 1 is the Monte-Carlo advantage of the whole call.
    Rows are in conversation and turn order (``replay``); the last move of a call uses R.
    """
    same_call_next = np.r_[rows.conversation[1:] == rows.conversation[:-1], False]
    following = np.where(same_call_next, np.r_[value[1:], 0.0], rows.reward)
    return lam * (rows.reward - value) + (1.0 - lam) * (following - value)


def _cross_fitted_value(
    features: np.ndarray, rows: TrainingRows, config: TrainConfig
) -> np.ndarray:
    """V(s) for every row from a model that did not see the row's conversation.

    A fold whose training side holds one outcome only (the tenant's few lost calls all fell into
    the held-out fold) cannot fit a classifier: its rows get that side's base rate instead.
    """
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GroupKFold

    folds = min(config.value_folds, len(np.unique(rows.conversation)))
    cv = GroupKFold(n_splits=folds)
    by_success = config.reward == "success"
    target = rows.success if by_success else rows.reward
    model = (
        LogisticRegression(C=config.regularization, max_iter=config.max_iter)
        if by_success
        else Ridge(alpha=1.0 / config.regularization)
    )
    order, predictions = [], []
    for train_index, valid_index in cv.split(features, groups=rows.conversation):
        seen = target[train_index]
        if by_success and len(np.unique(seen)) < 2:
            predictions.append(np.full(len(valid_index), np.mean(seen), features.dtype))
        else:
            fitted = _fitted(clone(model), features[train_index], seen)
            valid = features[valid_index]
            predictions.append(
                fitted.predict_proba(valid)[:, 1] if by_success else fitted.predict(valid)
            )
        order.append(valid_index)
    # assembled as cross_val_predict does (one concatenation, then back in row order), so the
    # values and their dtype are those of the models trained before this loop existed
    value = np.concatenate(predictions)
    return value[np.argsort(np.concatenate(order))]


def _fitted(model: Any, features: np.ndarray, target: np.ndarray, weights: Any = None) -> Any:
    """``model.fit(...)``; scikit-learn's refusal becomes a TrainingError.

    Raises:
        TrainingError: the fit is impossible (e.g. one class only on a fold, too few rows).
    """
    try:
        return model.fit(features, target, sample_weight=weights)
    except ValueError as error:
        raise TrainingError(
            f"fitting {type(model).__name__} on {len(target)} rows failed: {error}",
            hint="too few conversations, or too few of one outcome or action: add conversations "
            "(both won and lost), or fix --actions to fewer groups",
        ) from error


def _fit_softmax(
    features: np.ndarray,
    actions: np.ndarray,
    weights: np.ndarray | None,
    n_actions: int,
    config: TrainConfig,
) -> LinearPolicy:
    from sklearn.linear_model import LogisticRegression

    model = _fitted(
        LogisticRegression(C=config.regularization, max_iter=config.max_iter),
        features,
        actions,
        weights,
    )
    coef = np.zeros((n_actions, features.shape[1]), np.float32)
    bias = np.full(n_actions, MISSING_ACTION_LOGIT, np.float32)
    if len(model.classes_) == 2:  # sklearn stores one row for two classes: logit of the second
        coef[model.classes_[1]], bias[model.classes_[1]] = model.coef_[0], model.intercept_[0]
        coef[model.classes_[0]], bias[model.classes_[0]] = 0.0, 0.0
    else:
        coef[model.classes_] = model.coef_
        bias[model.classes_] = model.intercept_
    return LinearPolicy(coef, bias)


def _fit_outcome(features: np.ndarray, success: np.ndarray, config: TrainConfig) -> OutcomeModel:
    from sklearn.linear_model import LogisticRegression

    model = _fitted(
        LogisticRegression(C=config.regularization, max_iter=config.max_iter), features, success
    )
    return OutcomeModel(model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def _unscale_softmax(policy: LinearPolicy, scaler: object) -> LinearPolicy:
    """Weights for raw features: W' = W / scale, b' = b - W' . mean."""
    scale, mean = scaler.scale_, scaler.mean_  # type: ignore[attr-defined]
    weights = (policy.weights / scale).astype(np.float32)
    return LinearPolicy(weights, (policy.bias - weights @ mean).astype(np.float32))


def _unscale_outcome(outcome: OutcomeModel, scaler: object) -> OutcomeModel:
    scale, mean = scaler.scale_, scaler.mean_  # type: ignore[attr-defined]
    weights = (outcome.weights / scale).astype(np.float32)
    return OutcomeModel(weights, float(outcome.bias - weights @ mean))
