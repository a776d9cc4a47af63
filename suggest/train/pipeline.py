"""``train``: conversations in, a model directory out (the body of ``voice train``)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from suggest.clusters import ClusterSet, discover
from suggest.data.format import data_hash, without_blank_turns
from suggest.data.importers import NONCOMMERCIAL_LICENSE
from suggest.data.split import HELDOUT_FRACTION, SPLIT_SALT, select
from suggest.encoder import SentenceEncoder, load_encoder
from suggest.errors import LicenseError, TrainingError
from suggest.feedback import FeedbackRecord
from suggest.model import SuggestionModel, save_model
from suggest.realise import NEVER_REFILLED, Exemplar, ExemplarBank, Slot
from suggest.specs import Specifications
from suggest.state import Vocabulary
from suggest.train.config import TrainConfig
from suggest.train.dataset import (
    TrainingRows,
    agent_styles,
    conversation_actions,
    replay,
    why_statistics,
)
from suggest.train.encoders import (
    prepare_encoder,
    reference_embedder,
    repeat_cosine_in_own_space,
)
from suggest.train.feedback_rows import FeedbackSignal, feedback_signal, feedback_texts
from suggest.train.policy_fit import fit_policies
from suggest.train.publish import discarded_on_failure, publish, save_out_of_sight
from suggest.train.returns import returns
from suggest.train.texts import EntityTuple, embed_all, entity_lookup, extract_all
from suggest.train.tuning import TuningGrid, TuningResult, tune
from suggest.types import Conversation, Turn

CONSTANT_MIN_CONVERSATIONS = 3
CONSTANT_SHARE = 0.01
"""An entity value in agents' turns of >= max(3, 1 %) conversations is a tenant constant."""

Hook = Callable[[str], None]
"""Progress callback: receives a short description of the step that starts."""


@dataclass
class TrainResult:
    """A trained model, where it was written and what it cost."""

    directory: Path
    model: SuggestionModel
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    """Process CPU time (all threads): on a contended machine, wall time overstates the cost."""


def train(
    conversations: Sequence[Conversation],
    config: TrainConfig,
    out_dir: Path,
    *,
    cache_dir: Path,
    feedback: Sequence[FeedbackRecord] = (),
    hook: Hook | None = None,
) -> TrainResult:
    """Train a model on ``conversations`` (filtered to the tenant and split) into ``out_dir``.

    Raises:
        TrainingError: too few conversations (or distinct turn texts), one outcome only, no
            conversation of the tenant, or ``out_dir`` published by another run meanwhile.
        LicenseError: non-commercial data without ``allow_noncommercial``.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    in_place = out_dir.exists()  # decided now: a folder appearing meanwhile is another run's
    timings: dict[str, float] = {}
    say = hook or (lambda _step: None)

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 3)

    chosen = _chosen(conversations, config)
    encoder_dir = prepare_encoder(config, cache_dir, [t.text for c in chosen for t in c.turns], say)
    encoder = load_encoder(encoder_dir, parallel=2)
    lap("encoder")
    say(f"embedding {sum(len(c.turns) for c in chosen)} turns")
    texts = [t.text for c in chosen for t in c.turns] + feedback_texts(feedback)
    vectors = embed_all(texts, encoder, cache_dir)
    lap("embed")
    extracted = _entities(chosen, config, cache_dir, say)
    lap("entities")
    say("clustering actions and intents")
    # The full MiniLM when this encoder has another space: K is chosen there, relevance scored.
    reference = reference_embedder(config, cache_dir)
    actions, intents = discover_spaces(chosen, vectors, config, reference=reference)
    lap("cluster")
    model, signal, config, tuning = _fit(
        chosen, vectors, extracted, actions, intents, encoder, config, feedback, say, lap
    )
    model.manifest = _manifest(conversations, chosen, config, actions, intents, signal, out_dir.name)
    if tuning is not None:
        model.manifest["tuning"] = tuning.to_dict()
    repeat = repeat_cosine_in_own_space(chosen, vectors, reference) if reference else None
    if repeat is not None:  # MiniLM models keep REPEAT_COSINE (and their manifests as they were)
        model.bank.repeat_cosine = model.manifest["repeat_cosine"] = repeat
    work = save_out_of_sight(model, out_dir, encoder_dir, in_place=in_place)
    with discarded_on_failure(work if work != out_dir else None):
        lap("save")
        if config.evaluate_heldout and config.split == "train":
            say("evaluating on the held-out split")
            _record_heldout(model, conversations, config, work, encoder_dir, vectors, reference)
            lap("evaluate")
    if work != out_dir:
        publish(work, out_dir)
    return TrainResult(
        out_dir, model, time.perf_counter() - started, timings, time.process_time() - cpu_started
    )


def _entities(
    chosen: Sequence[Conversation], config: TrainConfig, cache_dir: Path, say: Hook
) -> dict[str, list[EntityTuple]]:
    """Entities of every turn (cached), or none when ``config.entities`` is off."""
    if not config.entities:
        return {}
    say("extracting entities")
    return extract_all([t for c in chosen for t in c.turns], cache_dir)


def _chosen(conversations: Sequence[Conversation], config: TrainConfig) -> list[Conversation]:
    tenants = Counter(c.tenant for c in conversations)
    if config.tenant not in tenants:
        raise TrainingError(
            f"no conversation of tenant {config.tenant!r}",
            hint=f"tenants in the data: {dict(tenants)}",
        )
    own, blank = _without_blank_turns([c for c in conversations if c.tenant == config.tenant])
    chosen = select(own, config.split)
    if len(chosen) < config.min_conversations:
        raise TrainingError(
            f"{len(chosen)} conversations of tenant {config.tenant!r} on the {config.split!r} "
            f"side; training needs {config.min_conversations}"
            + (f" ({blank} more have only empty turns)" if blank else ""),
            hint=_more_conversations_hint(config),
        )
    if len({c.outcome.success for c in chosen}) < 2:  # checked before minutes of embedding
        verdict = "won" if chosen[0].outcome.success else "lost"
        raise TrainingError(
            f"all {len(chosen)} conversations of tenant {config.tenant!r} on the "
            f"{config.split!r} side are {verdict}",
            hint="the policy learns from won vs lost calls: export both (check the outcomes' "
            "success column)",
        )
    distinct = len({t.text for c in chosen for t in c.turns})
    if distinct < config.projection_dim:  # the state's PCA needs that many distinct texts
        raise TrainingError(
            f"the {len(chosen)} conversations of tenant {config.tenant!r} have only {distinct} "
            f"distinct turn texts; training needs at least {config.projection_dim}",
            hint="the turns look empty or templated: check that the export carries what was "
            "said (ASR finals), then add conversations",
        )
    if not config.allow_noncommercial and any(
        c.meta.get("license") == NONCOMMERCIAL_LICENSE for c in chosen
    ):
        raise LicenseError(
            "the data includes CC BY-NC conversations (Deal or No Deal)",
            hint="internal evaluation only: pass --allow-noncommercial and never ship the model",
        )
    return chosen


def _without_blank_turns(
    conversations: Sequence[Conversation],
) -> tuple[list[Conversation], int]:
    """The conversations without whitespace-only turns (which would become empty actions,
    exemplars and baselines), those left with no turn dropped; and how many were dropped.

    ``read_conversations`` already drops such turns (with a note); this covers callers that build
    conversations themselves.
    """
    kept = [without_blank_turns(c)[0] for c in conversations]
    return [c for c in kept if c.turns], sum(1 for c in kept if not c.turns)


def _more_conversations_hint(config: TrainConfig) -> str:
    """What to do about too few conversations, with the options ``voice train`` has."""
    if config.split == "all":
        return f"add conversations: at least {config.min_conversations}"
    # about HELDOUT_FRACTION of the conversations are held out for the evaluation
    needed = math.ceil(config.min_conversations / (1 - HELDOUT_FRACTION))
    return (
        f"add conversations (about {needed} in all, as {HELDOUT_FRACTION:.0%} are held out), or "
        "train on every conversation with --split all (then nothing is held out to score it)"
    )


def discover_spaces(
    chosen: Sequence[Conversation],
    vectors: dict[str, np.ndarray],
    config: TrainConfig,
    *,
    reference: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> tuple[ClusterSet, ClusterSet]:
    """Actions and intents; ``reference``: see ``suggest.clusters.discover``."""
    agent = [t.text for c in chosen for t in c.turns if t.role == "agent"]
    customer = [t.text for c in chosen for t in c.turns if t.role == "customer"]
    if not agent or not customer:
        raise TrainingError("the conversations need both agent and customer turns")
    actions = discover(
        np.stack([vectors[t] for t in agent]), agent, config.actions, reference=reference
    )
    intents = discover(
        np.stack([vectors[t] for t in customer]), customer, config.intents, reference=reference
    )
    return actions, intents


def prepare_rows(
    chosen: Sequence[Conversation],
    vectors: dict[str, np.ndarray],
    extracted: dict[str, list[EntityTuple]],
    actions: ClusterSet,
    intents: ClusterSet,
    dim: int,
    config: TrainConfig,
) -> tuple[Vocabulary, TrainingRows]:
    """The state vocabulary (PCA, styles) and the training rows of ``chosen``."""
    from sklearn.decomposition import PCA

    labels = sorted(
        {e[0] for found in extracted.values() for e in found}
        | {e.label for c in chosen for t in c.turns for e in (t.entities or ())}
    )
    specs = Specifications(
        embedding_dim=dim,
        projection_dim=min(config.projection_dim, dim),
        n_actions=actions.k,
        n_intents=intents.k,
        entity_labels=tuple(labels),
        context_names=tuple(sorted({n for c in chosen for n in c.context}))
        if config.context
        else (),
    )
    pca = PCA(specs.projection_dim, random_state=config.seed).fit(np.stack(list(vectors.values())))
    embed, entities = vectors.__getitem__, entity_lookup(extracted)
    partial = Vocabulary(
        specs,
        actions.centroids,
        intents.centroids,
        pca.components_.T.astype(np.float32),
        pca.mean_.astype(np.float32),
        {},
        np.zeros(specs.n_actions, np.float32),
    )
    per_conversation = conversation_actions(chosen, embed, partial)
    styles, global_style, loo = agent_styles(
        chosen, per_conversation, specs.n_actions, specs.style_prior
    )
    vocabulary = Vocabulary(
        specs,
        actions.centroids,
        intents.centroids,
        partial.projection,
        partial.projection_mean,
        styles,
        global_style,
    )
    return vocabulary, replay(chosen, returns(chosen, config), embed, entities, vocabulary, loo)


def _fit(
    chosen: Sequence[Conversation],
    vectors: dict[str, np.ndarray],
    extracted: dict[str, list[EntityTuple]],
    actions: ClusterSet,
    intents: ClusterSet,
    encoder: SentenceEncoder,
    config: TrainConfig,
    feedback: Sequence[FeedbackRecord],
    say: Hook,
    lap: Callable[[str], None],
) -> tuple[SuggestionModel, FeedbackSignal, TrainConfig, TuningResult | None]:
    """The model, the feedback signal, and the config it was fitted with (tuned when asked)."""
    say("replaying conversations into states")
    vocabulary, rows = prepare_rows(
        chosen, vectors, extracted, actions, intents, encoder.dim, config
    )
    specs = vocabulary.specs
    lap("replay")
    tuning = None
    if config.tune:
        grid = TuningGrid()
        say(f"tuning the policy: {len(grid.settings())} settings x {grid.folds} folds")
        tuning = tune(rows, chosen, specs.n_actions, config, returns, grid)
        config = tuning.apply(config)
        lap("tune")
    signal = feedback_signal(
        feedback,
        chosen,
        vocabulary,
        vectors.__getitem__,
        entity_lookup(extracted),
        config.feedback_weight,
        config.feedback_prior,
    )
    say(f"fitting the policy on {len(rows.actions)} agent turns")
    fitted = fit_policies(rows, specs.n_actions, config, signal.rows)
    lap("fit")
    model = SuggestionModel(
        specs=specs,
        vocabulary=vocabulary,
        actions=actions.infos,
        intents=intents.infos,
        policy=fitted.policy,
        behaviour_cloning=fitted.behaviour_cloning,
        majority=fitted.majority,
        outcome=fitted.outcome,
        feedback_bias=signal.bias,
        why=why_statistics(rows, specs.n_intents, specs.n_actions),
        bank=_exemplar_bank(chosen, rows, vectors, extracted, actions, config),
        encoder=encoder.spec,
    )
    return model, signal, config, tuning


def _exemplar_bank(
    chosen: Sequence[Conversation],
    rows: TrainingRows,
    vectors: dict[str, np.ndarray],
    extracted: dict[str, list[EntityTuple]],
    actions: ClusterSet,
    config: TrainConfig,
) -> ExemplarBank:
    """Covered agent turns of successful conversations, most typical first, capped per action."""
    texts = [chosen[c].turns[t].text for c, t in zip(rows.conversation, rows.turn, strict=True)]
    text_vectors = (
        np.stack([vectors[t] for t in texts])
        if texts
        else np.zeros((0, actions.centroids.shape[1]), np.float32)
    )
    typicality = (
        (text_vectors @ actions.centroids.T)[np.arange(len(texts)), rows.actions]
        if texts
        else np.zeros(0)
    )
    constants = _tenant_constants(chosen, extracted)
    built = {
        i: _exemplar(chosen, rows, i, extracted, constants)
        for i in np.flatnonzero(rows.success & (typicality >= actions.threshold)).tolist()
    }
    # A turn whose personal slot no live call can refill (a card number, an SSN, a name NER found
    # outside an address) could only ever show that customer's data: it is no exemplar, and the
    # next most typical turn of its action takes its place under the cap.
    servable = np.zeros(len(texts), dtype=bool)
    servable[[i for i, e in built.items() if e.personal_needs() is not None]] = True
    keep: list[int] = []
    for action in range(actions.k):
        members = np.flatnonzero(servable & (rows.actions == action))
        keep.extend(
            members[np.argsort(-typicality[members], kind="stable")][
                : config.max_exemplars_per_action
            ].tolist()
        )
    keep.sort()
    exemplars = [built[i] for i in keep]
    return ExemplarBank(exemplars, rows.contexts[keep], text_vectors[keep], actions.k)


def _exemplar(
    chosen: Sequence[Conversation],
    rows: TrainingRows,
    i: int,
    extracted: dict[str, list[EntityTuple]],
    constants: set[tuple[str, str]],
) -> Exemplar:
    """Training row ``i`` as an exemplar; the tenant's constant entity values are no slots."""
    conversation = chosen[rows.conversation[i]]
    turn = conversation.turns[rows.turn[i]]
    return Exemplar(
        action=int(rows.actions[i]),
        text=turn.text,
        slots=tuple(
            Slot(label, start, end)
            for label, text, start, end in _entities_of(turn, extracted)
            if (label, text.lower()) not in constants
        ),
        agent_id=conversation.agent_id,
        source=f"{conversation.id}#{rows.turn[i]}",
    )


def _entities_of(
    turn: Turn, extracted: dict[str, list[EntityTuple]]
) -> list[tuple[str, str, int, int]]:
    if turn.entities is not None:
        return [(e.label, e.text, e.start, e.end) for e in turn.entities]
    return [(e[0], e[1], e[2], e[3]) for e in extracted.get(turn.text, ())]


def _tenant_constants(
    chosen: Sequence[Conversation], extracted: dict[str, list[EntityTuple]]
) -> set[tuple[str, str]]:
    """Entity values agents use across many conversations: part of the script, not slots.

    "Save the Children" (even when NER calls "Children" a PERSON) recurs in hundreds of calls; a
    customer's name or order number does not. Only conversation-specific values are refilled.
    A card number or SSN is never script, however often it recurs (a shared test card).
    """
    seen: Counter[tuple[str, str]] = Counter()
    for conversation in chosen:
        values = {
            (label, text.lower())
            for turn in conversation.turns
            if turn.role == "agent"
            for label, text, _start, _end in _entities_of(turn, extracted)
            if label not in NEVER_REFILLED
        }
        seen.update(values)
    limit = max(CONSTANT_MIN_CONVERSATIONS, CONSTANT_SHARE * len(chosen))
    return {value for value, count in seen.items() if count >= limit}


def _manifest(
    conversations: Sequence[Conversation],
    chosen: Sequence[Conversation],
    config: TrainConfig,
    actions: ClusterSet,
    intents: ClusterSet,
    signal: FeedbackSignal,
    version_name: str,
) -> dict[str, Any]:
    agent_texts = Counter(t.text.strip() for c in chosen for t in c.turns if t.role == "agent")
    licenses = sorted({c.meta.get("license", "unknown") for c in chosen})
    return {
        "tenant": config.tenant,
        "version": version_name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": _library_versions(),
        "training": {
            "data_sha256": data_hash(chosen),
            "conversations": len(chosen),
            "successful": sum(c.outcome.success for c in chosen),
            "agent_turns": sum(1 for c in chosen for t in c.turns if t.role == "agent"),
            "split": config.split,
            "heldout_fraction": HELDOUT_FRACTION,
            "split_salt": SPLIT_SALT,
            "licenses": licenses,
            "noncommercial": NONCOMMERCIAL_LICENSE in licenses,
            "sources": dict(Counter(c.meta.get("source", "unknown") for c in chosen)),
            "feedback": {"used": signal.used, "skipped": signal.skipped},
        },
        "parameters": config.to_dict(),
        "metrics": {"actions": _space_metrics(actions), "intents": _space_metrics(intents)},
        "baselines": {"most_common_reply": agent_texts.most_common(1)[0][0] if agent_texts else ""},
    }


def _space_metrics(clusters: ClusterSet) -> dict[str, Any]:
    metrics = {
        "k": clusters.k,
        "coverage": clusters.coverage,
        "threshold": clusters.threshold,
        "coverage_by_k": {str(k): v for k, v in clusters.coverage_by_k.items()},
    }
    if clusters.coverage_space != "own space":  # MiniLM models keep their manifests byte for byte
        metrics["coverage_space"] = clusters.coverage_space
    return metrics


def _library_versions() -> dict[str, str]:
    found = {}
    for package in (
        "nextline",
        "numpy",
        "scikit-learn",
        "onnxruntime",
        "tokenizers",
        "safetensors",
        "torch",
        "transformers",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found


def _record_heldout(
    model: SuggestionModel,
    conversations: Sequence[Conversation],
    config: TrainConfig,
    out_dir: Path,
    encoder_dir: Path,
    vectors: dict[str, np.ndarray],
    yardstick: Callable[[Sequence[str]], np.ndarray] | None,
) -> None:
    """Evaluate on the held-out side and store the metrics in the manifest (rewritten)."""
    from suggest.evaluate import evaluate_model

    own, _ = _without_blank_turns([c for c in conversations if c.tenant == config.tenant])
    heldout = select(own, "test")
    if not heldout:
        return
    report = evaluate_model(
        model,
        heldout,
        embed_texts=None,
        encoder_dir=encoder_dir,
        known=vectors,
        yardstick=yardstick,
    )
    model.manifest["metrics"]["heldout"] = report.summary()
    save_model(model, out_dir, encoder_dir)
