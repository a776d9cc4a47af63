"""Offline evaluation of a model on conversations (the body of ``voice evaluate``).

Every conversation is replayed turn by turn through the serving code (``CallState``, the policy,
``propose``); at each agent turn the model's view is compared with what the agent did:

- **next-action accuracy** (top-1/top-3) of the outcome-aware policy, behaviour cloning and the
  majority baseline, against the model's own action for the actual turn; reported on all turns
  and on turns of successful conversations (what the best agents did);
- **outcome discrimination**: per conversation, the mean log-likelihood ratio of the agent's
  actual actions under the outcome-aware policy vs behaviour cloning; ROC AUC for won vs lost
  with a 95 % bootstrap interval over conversations (won and lost resampled apart);
- **relevance**: cosine between the top-1 suggestion and the actual agent turn, against a fixed
  baseline that always suggests the training data's most common agent reply. Measured in the
  model's own space, or for a model whose encoder is not the full MiniLM (static, fewer layers)
  in that MiniLM's space (a ``yardstick``), so that relevance compares across models.

Turns of one conversation are not independent, so every test and interval takes the
conversation as its unit: the policy-vs-behaviour-cloning top-3 test is McNemar's exact test
over conversations (:func:`clustered_sign_flip_p`), the relevance interval a bootstrap over
conversations (:func:`cluster_mean_ci`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from suggest.engine import propose
from suggest.model import SuggestionModel
from suggest.state import CallState
from suggest.types import Conversation

EmbedTexts = Callable[[Sequence[str]], np.ndarray]
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class TurnRecord:
    """The model's view at one agent turn of one conversation."""

    conversation: str
    turn: int
    success: bool
    actual_text: str
    action: int
    """The model's action for the actual turn (nearest centroid)."""
    rank_policy: int
    """0-based rank of ``action`` under the outcome-aware policy."""
    rank_bc: int
    rank_majority: int
    logp_policy: float
    logp_bc: float
    suggestions: tuple[str, ...]
    suggestion_actions: tuple[int, ...]
    relevance: float
    """Cosine of the top-1 suggestion with the actual turn (0 when nothing was suggested)."""
    relevance_best: float
    """Best cosine among the top-k suggestions."""
    relevance_bc: float
    """Cosine of behaviour cloning's top-1, realised the same way (isolates the policy)."""
    relevance_baseline: float
    """Cosine of the fixed most-common reply with the actual turn."""
    bc_suggestion: str = ""
    """Behaviour cloning's top-1 suggestion (what ``relevance_bc`` scores)."""


@dataclass
class EvaluationReport:
    """Per-turn records and their summary."""

    turns: list[TurnRecord]
    conversations: int
    won: int
    model_version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    relevance_space: str = "own"
    """``own``: the model's encoder; ``reference MiniLM``: a yardstick's (see module docstring)."""

    def summary(self) -> dict[str, Any]:
        """Headline numbers (computed once)."""
        if not self.metrics:
            self.metrics = summarise(self.turns)
            if self.relevance_space != "own":  # MiniLM models keep their metrics byte for byte
                self.metrics["relevance_space"] = self.relevance_space
        return self.metrics

    def turn_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready per-turn records."""
        return [asdict(t) for t in self.turns]


def evaluate_model(
    model: SuggestionModel,
    conversations: Sequence[Conversation],
    *,
    embed_texts: EmbedTexts | None,
    encoder_dir: Path | None = None,
    known: dict[str, np.ndarray] | None = None,
    k: int = 3,
    yardstick: EmbedTexts | None = None,
) -> EvaluationReport:
    """Replay ``conversations`` through ``model`` (see module docstring).

    Embeddings come from ``known`` where present, else from ``embed_texts`` (or a fresh encoder
    over ``encoder_dir``), so evaluation right after training re-encodes nothing.
    ``yardstick``: embeds texts in the space relevance is measured in, for a model of another
    encoder than the full MiniLM (``suggest.train.encoders.yardstick_for``); None: its own.
    """
    baseline = model.manifest.get("baselines", {}).get("most_common_reply", "")
    vectors = _embeddings(
        [t.text for c in conversations for t in c.turns] + [baseline],
        embed_texts,
        encoder_dir,
        known,
    )
    records: list[TurnRecord] = []
    for conversation in conversations:
        records.extend(_replay(model, conversation, vectors, vectors[baseline], k))
    won = sum(c.outcome.success for c in conversations)
    if yardstick is None:
        return EvaluationReport(records, len(conversations), won, model.version)
    records = _relevance_in(yardstick, records, baseline)
    return EvaluationReport(
        records, len(conversations), won, model.version, relevance_space="reference MiniLM"
    )


def _relevance_in(
    yardstick: EmbedTexts, records: list[TurnRecord], baseline: str
) -> list[TurnRecord]:
    """The records with their relevance measured in the yardstick's space: the texts shown
    (suggestions, behaviour cloning's top-1, the baseline) against what the agent said."""
    texts = {baseline} | {r.actual_text for r in records} | {r.bc_suggestion for r in records}
    texts |= {text for r in records for text in r.suggestions}
    ordered = sorted(texts)
    vectors = dict(zip(ordered, yardstick(ordered), strict=True))
    measured = []
    for record in records:
        actual = vectors[record.actual_text]
        cosines = [float(vectors[text] @ actual) for text in record.suggestions]
        measured.append(
            replace(
                record,
                relevance=cosines[0] if cosines else 0.0,
                relevance_best=max(cosines, default=0.0),
                relevance_bc=float(vectors[record.bc_suggestion] @ actual)
                if record.bc_suggestion
                else 0.0,
                relevance_baseline=float(vectors[baseline] @ actual),
            )
        )
    return measured


def _embeddings(
    texts: list[str],
    embed_texts: EmbedTexts | None,
    encoder_dir: Path | None,
    known: dict[str, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    vectors = dict(known or {})
    missing = list(dict.fromkeys(t for t in texts if t not in vectors))
    if missing:
        if embed_texts is None:
            from suggest.encoder import load_encoder

            if encoder_dir is None:
                raise ValueError(
                    "evaluate_model needs embed_texts or encoder_dir for texts it does not know"
                )
            embed_texts = load_encoder(encoder_dir, parallel=2).encode
        vectors.update(zip(missing, embed_texts(missing), strict=True))
    return vectors


def _replay(
    model: SuggestionModel,
    conversation: Conversation,
    vectors: dict[str, np.ndarray],
    baseline: np.ndarray,
    k: int,
) -> list[TurnRecord]:
    vocabulary = model.vocabulary
    style = vocabulary.style_of(conversation.agent_id)
    state = CallState(model.specs)
    state.set_context(conversation.context)
    records = []
    for index, turn in enumerate(conversation.turns):
        actual = vectors[turn.text]
        if turn.role == "agent":
            features = state.features(vocabulary, style)[None, :]
            intent = state.last_intent if state.last_intent >= 0 else model.specs.n_intents
            policy = model.policy.probabilities(features, model.feedback_bias[intent][None, :])[0]
            bc = model.behaviour_cloning.probabilities(features)[0]
            action = int((vocabulary.action_centroids @ actual).argmax())
            chosen = propose(model, state, np.argsort(-policy), agent_id=conversation.agent_id, k=k)
            bc_top = propose(model, state, np.argsort(-bc), agent_id=conversation.agent_id, k=1)
            cosines = [float(model.bank.texts[r.exemplar] @ actual) for _, r in chosen]
            records.append(
                TurnRecord(
                    conversation=conversation.id,
                    turn=index,
                    success=conversation.outcome.success,
                    actual_text=turn.text,
                    action=action,
                    rank_policy=_rank(policy, action),
                    rank_bc=_rank(bc, action),
                    rank_majority=_rank(model.majority, action),
                    logp_policy=float(np.log(policy[action] + 1e-12)),
                    logp_bc=float(np.log(bc[action] + 1e-12)),
                    suggestions=tuple(r.text for _, r in chosen),
                    suggestion_actions=tuple(a for a, _ in chosen),
                    relevance=cosines[0] if cosines else 0.0,
                    relevance_best=max(cosines, default=0.0),
                    relevance_bc=float(model.bank.texts[bc_top[0][1].exemplar] @ actual)
                    if bc_top
                    else 0.0,
                    relevance_baseline=float(baseline @ actual),
                    bc_suggestion=bc_top[0][1].text if bc_top else "",
                )
            )
        entities = [(e.label, e.text) for e in turn.entities] if turn.entities is not None else []
        state.advance(turn.role, actual, vocabulary, entities)
    return records


def _rank(probabilities: np.ndarray, action: int) -> int:
    """How many actions score strictly higher (ties count in favour of the actual action)."""
    return int((probabilities > probabilities[action]).sum())


def summarise(turns: Sequence[TurnRecord], *, seed: int = 0) -> dict[str, Any]:
    """Accuracy, discrimination and relevance numbers of per-turn records."""
    if not turns:
        return {"agent_turns": 0}
    won = np.array([t.success for t in turns])
    out: dict[str, Any] = {"agent_turns": len(turns), "agent_turns_successful": int(won.sum())}
    for method in ("policy", "bc", "majority"):
        ranks = np.array([getattr(t, f"rank_{method}") for t in turns])
        out[f"top1_{method}"] = float((ranks < 1).mean())
        out[f"top3_{method}"] = float((ranks < 3).mean())
        out[f"top3_{method}_successful"] = (
            float((ranks[won] < 3).mean()) if won.any() else float("nan")
        )
    out["top3_policy_vs_bc_successful_p"] = _mcnemar([t for t in turns if t.success])
    out.update(_turns_needed([t for t in turns if t.success]))
    out.update(_discrimination(turns, seed))
    for name in ("relevance", "relevance_best", "relevance_bc", "relevance_baseline"):
        values = np.array([getattr(t, name) for t in turns])
        out[name] = float(values.mean())
    out["relevance_minus_baseline_ci95"] = cluster_mean_ci(
        np.array([t.relevance - t.relevance_baseline for t in turns]),
        [t.conversation for t in turns],
        seed,
    )
    return out


def _mcnemar(turns: Sequence[TurnRecord]) -> float:
    """Does the policy's top-3 hit differ from behaviour cloning's? McNemar's exact test with
    conversations as the unit (:func:`clustered_sign_flip_p`)."""
    return clustered_sign_flip_p(
        [t.conversation for t in turns],
        [t.rank_bc < 3 for t in turns],
        [t.rank_policy < 3 for t in turns],
    )


def clustered_sign_flip_p(
    clusters: Sequence[str], hits_a: Sequence[bool], hits_b: Sequence[bool]
) -> float:
    """Two-sided exact p of "A's and B's hit rates differ", with each cluster (a conversation)
    as the unit instead of each turn: turns of one conversation are not independent.

    Under the null, swapping A and B inside a conversation leaves the data as likely, so each
    conversation's difference (B's hits - A's hits) flips sign with probability 1/2; the sum's
    distribution over all 2^m sign patterns is counted exactly by convolution. When every
    discordant turn is in its own conversation this is McNemar's exact (binomial) test.
    """
    per_cluster: dict[str, int] = {}
    for cluster, a, b in zip(clusters, hits_a, hits_b, strict=True):
        per_cluster[cluster] = per_cluster.get(cluster, 0) + int(b) - int(a)
    weights = [abs(d) for d in per_cluster.values() if d]
    if not weights:
        return 1.0
    total = sum(weights)
    distribution = np.zeros(2 * total + 1)  # index: sum + total
    distribution[total] = 1.0
    for weight in weights:  # partial sums stay within +-total: np.roll never wraps mass around
        distribution = 0.5 * (np.roll(distribution, weight) + np.roll(distribution, -weight))
    observed = abs(sum(per_cluster.values()))
    extreme = np.abs(np.arange(-total, total + 1)) >= observed
    return float(min(1.0, distribution[extreme].sum()))


def _discordant(turns: Sequence[TurnRecord]) -> tuple[int, int]:
    """Turns whose actual move only the policy's top 3 holds, and only behaviour cloning's."""
    policy_only = sum(t.rank_policy < 3 <= t.rank_bc for t in turns)
    return policy_only, sum(t.rank_bc < 3 <= t.rank_policy for t in turns)


def _turns_needed(turns: Sequence[TurnRecord]) -> dict[str, Any]:
    """The discordant turns behind the McNemar test, and how many successful turns a test needs
    to detect a top-3 difference of the size observed (two-sided 5 %, power 80 %; Connor's normal
    approximation). Against the turns scored, it tells a tie from "too few turns to see one":
    on PersuasionForGood the policy and behaviour cloning disagree on only 2-4 % of turns.
    ``None``: the observed difference is zero.
    """
    from scipy.stats import norm

    policy_only, bc_only = _discordant(turns)
    out: dict[str, Any] = {
        "top3_successful_policy_only": policy_only,
        "top3_successful_bc_only": bc_only,
        "top3_successful_turns_needed": None,
    }
    if turns and policy_only != bc_only:
        discordant = (policy_only + bc_only) / len(turns)
        difference = (policy_only - bc_only) / len(turns)
        alpha, power = norm.ppf(0.975), norm.ppf(0.8)
        spread = alpha * np.sqrt(discordant) + power * np.sqrt(discordant - difference**2)
        out["top3_successful_turns_needed"] = int(np.ceil((spread / difference) ** 2))
    return out


def _discrimination(turns: Sequence[TurnRecord], seed: int) -> dict[str, Any]:
    """Conversation-level AUC of the policy/BC likelihood ratio, with a bootstrap 95 % CI."""
    from sklearn.metrics import roc_auc_score

    by_conversation: dict[str, list[TurnRecord]] = {}
    for t in turns:
        by_conversation.setdefault(t.conversation, []).append(t)
    scores = np.array(
        [np.mean([t.logp_policy - t.logp_bc for t in ts]) for ts in by_conversation.values()]
    )
    likelihood = np.array([np.mean([t.logp_policy for t in ts]) for ts in by_conversation.values()])
    labels = np.array([bool(ts[0].success) for ts in by_conversation.values()], dtype=bool)
    if len(np.unique(labels)) < 2:
        return {
            "auc": float("nan"),
            "auc_ci95": [float("nan"), float("nan")],
            "auc_likelihood": float("nan"),
        }

    return {
        "auc": float(roc_auc_score(labels, scores)),
        "auc_ci95": _stratified_auc_ci(scores[labels], scores[~labels], seed),
        "auc_likelihood": float(roc_auc_score(labels, likelihood)),
        "auc_conversations": int(len(labels)),
    }


def _stratified_auc_ci(won: np.ndarray, lost: np.ndarray, seed: int) -> list[float]:
    """95 % percentile bootstrap CI of the AUC, resampling won and lost conversations apart.

    Resampling all conversations together draws, with few lost ones, samples of one outcome that
    have no AUC (scoring them 0.5 pulled the interval toward 0.5); the AUC is a comparison of
    the two groups, so each keeps its size.
    """
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    samples = np.empty(BOOTSTRAP_RESAMPLES)
    pairs, offset = len(won) * len(lost), len(won) * (len(won) + 1) / 2
    for i in range(BOOTSTRAP_RESAMPLES):
        w = won[rng.integers(0, len(won), len(won))]
        x = lost[rng.integers(0, len(lost), len(lost))]
        # Mann-Whitney U from mid-ranks: P(won > lost) + P(tie) / 2, without the won x lost matrix.
        samples[i] = (rankdata(np.concatenate([w, x]))[: len(w)].sum() - offset) / pairs
    low, high = np.percentile(samples, [2.5, 97.5])
    return [float(low), float(high)]


def cluster_mean_ci(values: np.ndarray, clusters: Sequence[str], seed: int) -> list[float]:
    """95 % percentile bootstrap CI of ``values.mean()``, resampling whole clusters
    (conversations): turns of one conversation are not independent, and resampling them one by
    one makes the interval too narrow. NaN when there are fewer than 2 clusters."""
    index = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
    if len(index) < 2:
        return [float("nan"), float("nan")]
    member = np.array([index[c] for c in clusters])
    sums = np.bincount(member, weights=values, minlength=len(index))
    counts = np.bincount(member, minlength=len(index)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(index), (BOOTSTRAP_RESAMPLES, len(index)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]
