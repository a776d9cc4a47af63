"""The static encoder (``--encoder static``): distilled from MiniLM, trained and served together.

Trains a small model on the same PersuasionForGood slice as ``test_engine`` with the static
encoder and checks what makes it usable in place of MiniLM: its vectors are unit length and do
not depend on their batch, they agree with MiniLM's on which turns are alike (the fitted map),
the model round-trips through the engine with its own encoder, and a model cannot be served with
another model's encoder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from suggest.data.importers import import_persuasionforgood
from suggest.encoder import StaticSentenceEncoder, load_encoder
from suggest.engine import SuggestionEngine
from suggest.errors import ModelFormatError
from suggest.train.config import TrainConfig
from suggest.train.pipeline import TrainResult, train
from suggest.types import Conversation, SuggestContext, Turn

pytestmark = pytest.mark.model

SLICE = 120


def _cache() -> Path:
    import os

    return Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline")


@pytest.fixture(scope="module")
def conversations(shared_data: Path) -> list[Conversation]:
    report = import_persuasionforgood(shared_data / "dialogues" / "persuasionforgood", tenant="pfg")
    return sorted(report.conversations, key=lambda c: c.id)[:SLICE]


@pytest.fixture(scope="module")
def static_model(conversations: list[Conversation], tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    config = TrainConfig(tenant="pfg", min_conversations=20, encoder="static", static_dims=128)
    return train(conversations, config, tmp_path_factory.mktemp("models") / "static", cache_dir=_cache())


def test_static_vectors_are_unit_length_batch_independent_and_close_to_minilm(
    static_model: TrainResult, conversations: list[Conversation]
) -> None:
    encoder = load_encoder(static_model.directory / "encoder")
    assert isinstance(encoder, StaticSentenceEncoder) and encoder.spec.kind == "static"
    texts = [t.text for c in conversations[-10:] for t in c.turns][:60]
    vectors = encoder.encode(texts)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.allclose(encoder.encode(texts[:1])[0], vectors[0], atol=1e-6)
    # the fitted map puts the vectors in MiniLM's space: pairwise similarities rank alike
    from scipy.stats import spearmanr

    from suggest.encoder.export import ensure_encoder

    minilm = load_encoder(ensure_encoder(_cache()))
    reference = minilm.encode(texts)
    upper = np.triu_indices(len(texts), 1)
    rho = spearmanr((vectors @ vectors.T)[upper], (reference @ reference.T)[upper]).statistic
    assert rho > 0.5, rho


def test_a_static_model_chooses_k_in_minilm_space(static_model: TrainResult) -> None:
    """The 0.5 coverage threshold belongs to MiniLM's space: K is chosen there, and the static
    space's own threshold covers the same share of agent turns."""
    for space in ("actions", "intents"):
        metrics = static_model.model.manifest["metrics"][space]
        assert metrics["coverage_space"] == "reference MiniLM"
        assert metrics["threshold"] != 0.5
        assert abs(metrics["coverage"] - metrics["coverage_by_k"][str(metrics["k"])]) < 0.1, metrics


def test_a_static_model_s_relevance_is_measured_in_minilm_space(
    static_model: TrainResult, conversations: list[Conversation]
) -> None:
    """Relevance of models with different encoders compares only on one yardstick: MiniLM's."""
    from suggest.data.split import select
    from suggest.encoder.export import ensure_encoder
    from suggest.evaluate import evaluate_model
    from suggest.train.encoders import yardstick_for

    model = static_model.model
    assert model.manifest["metrics"]["heldout"]["relevance_space"] == "reference MiniLM"
    heldout = select(conversations, "test")[:3]
    yardstick = yardstick_for(model.manifest["parameters"], _cache())
    assert yardstick is not None
    encoder_dir = static_model.directory / "encoder"
    own = evaluate_model(model, heldout, embed_texts=None, encoder_dir=encoder_dir)
    measured = evaluate_model(
        model, heldout, embed_texts=None, encoder_dir=encoder_dir, yardstick=yardstick
    )
    assert [r.suggestions for r in measured.turns] == [r.suggestions for r in own.turns]
    assert "relevance_space" not in own.summary()
    minilm = load_encoder(ensure_encoder(_cache()))
    record = measured.turns[0]
    actual, shown = minilm.encode([record.actual_text, record.suggestions[0]])
    assert record.relevance == pytest.approx(float(shown @ actual), abs=1e-5)
    assert record.relevance != pytest.approx(own.turns[0].relevance, abs=1e-3)


def test_a_static_model_serves_suggestions_and_refuses_a_foreign_encoder(
    static_model: TrainResult, tmp_path: Path
) -> None:
    engine = SuggestionEngine.load(static_model.directory)
    context = SuggestContext(call_id="c", turns=(
        Turn("agent", "Hi there! Have you heard of the charity Save the Children?"),
        Turn("customer", "Sorry, I can't afford to donate anything right now, money is really tight."),
    ), k=3)
    result = engine.suggest(context)
    assert 1 <= len(result.suggestions) <= 3
    assert all(s.text.strip() for s in result.suggestions)
    assert result.latency.total_ms < 100

    foreign = tmp_path / "foreign"
    shutil.copytree(static_model.directory, foreign)
    from suggest.encoder.export import ensure_encoder

    shutil.rmtree(foreign / "encoder")
    shutil.copytree(ensure_encoder(_cache()), foreign / "encoder")
    with pytest.raises(ModelFormatError):
        SuggestionEngine.load(foreign)


def test_only_the_full_minilm_is_its_own_clustering_reference() -> None:
    """Fewer MiniLM layers (like the static encoder) choose K in the full int8 MiniLM's space."""
    from suggest.encoder.export import ensure_encoder
    from suggest.train.encoders import reference_embedder

    assert reference_embedder(TrainConfig(), _cache()) is None
    assert reference_embedder(TrainConfig(encoder_quantization="none"), _cache()) is None
    embed = reference_embedder(TrainConfig(encoder_layers=3), _cache())
    assert embed is not None
    texts = ["Would you like to donate part of your payment?", "I can't afford it right now."]
    full = load_encoder(ensure_encoder(_cache())).encode(texts)
    assert np.allclose(embed(texts), full, atol=1e-5)


def test_qa_replay_of_a_static_model_scores_in_minilm_space(
    static_model: TrainResult, conversations: list[Conversation], tmp_path: Path
) -> None:
    import json

    from click.testing import CliRunner

    from suggest.data.format import write_conversations
    from suggest.encoder.export import ensure_encoder
    from voice.cli import cli

    dialogues, out = tmp_path / "one.jsonl", tmp_path / "qa.jsonl"
    write_conversations(dialogues, conversations[-1:])
    result = CliRunner().invoke(
        cli, ["suggest", "--model", str(static_model.directory), "--dialogues", str(dialogues),
              "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text().splitlines()[0])
    minilm = load_encoder(ensure_encoder(_cache()))
    actual, shown = minilm.encode([row["actual"], row["suggestions"][0]["text"]])
    assert row["top1_similarity"] == pytest.approx(float(shown @ actual), abs=2e-4)


def test_the_qa_page_scores_a_static_model_in_minilm_space_without_caching_call_texts(
    static_model: TrainResult, conversations: list[Conversation], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server's QA review (voice.batch.review) marks similarities at MiniLM's 0.6 / 0.4, so a
    static model is scored with MiniLM too; a call's texts never enter the embedding cache."""
    from suggest.encoder.cache import EmbeddingCache
    from suggest.encoder.export import ensure_encoder
    from voice.batch.review import ReviewTurn, load_reviewer

    reviewer = load_reviewer(static_model.directory)
    cached: list[str] = []
    monkeypatch.setattr(EmbeddingCache, "embed", lambda self, texts, encode: cached.extend(texts))
    call = conversations[-1]
    turns = [ReviewTurn(t.role, t.text, float(i), float(i) + 1) for i, t in enumerate(call.turns[:6])]
    results = reviewer._batch_suggest(reviewer.engine, turns, k=2, agent_id=None, tenant="pfg", call_id="c1")
    index, suggestions = results[0]
    minilm = load_encoder(ensure_encoder(_cache()))
    actual, shown = minilm.encode([turns[index].text, suggestions[0]["text"]])
    assert suggestions[0]["similarity"] == pytest.approx(float(shown @ actual), abs=2e-4)
    assert cached == []


def test_a_cheaper_space_places_its_own_repeat_threshold(
    static_model: TrainResult, conversations: list[Conversation]
) -> None:
    """MiniLM's REPEAT_COSINE (0.92) marks an exemplar as a repeat of the agent's last turn. The
    static space crowds turns together, so its threshold is placed where it marks the same share
    of an agent's consecutive turns as MiniLM's does; with too few repeats to place it, none."""
    import dataclasses

    from suggest.realise import REPEAT_COSINE
    from suggest.train.encoders import MIN_REPEATS, reference_embedder, repeat_cosine_in_own_space

    encoder = load_encoder(static_model.directory / "encoder")
    reference = reference_embedder(TrainConfig(encoder="static"), _cache())
    assert reference is not None

    def vectors(chosen: list[Conversation]) -> dict[str, np.ndarray]:
        texts = sorted({t.text for c in chosen for t in c.turns})
        return dict(zip(texts, encoder.encode(texts), strict=True))

    assert repeat_cosine_in_own_space(conversations, vectors(conversations), reference) is None
    assert static_model.model.bank.repeat_cosine == REPEAT_COSINE  # the slice repeats too little

    # Real conversations, some ending with the agent saying their last turn again (case and end
    # punctuation aside): the repeats the filter is for.
    def said_again(c: Conversation) -> Conversation:
        last = [t for t in c.turns if t.role == "agent"][-1].text
        return dataclasses.replace(c, turns=(*c.turns, Turn("agent", last.lower().rstrip(".!? "))))

    chosen = [said_again(c) for c in conversations[: 2 * MIN_REPEATS]] + conversations[
        2 * MIN_REPEATS :
    ]
    own = vectors(chosen)
    threshold = repeat_cosine_in_own_space(chosen, own, reference)
    assert threshold is not None and REPEAT_COSINE < threshold < 1.0
    pairs = [
        (a.text, b.text)
        for c in chosen
        for a, b in zip(
            [t for t in c.turns if t.role == "agent"],
            [t for t in c.turns if t.role == "agent"][1:],
            strict=False,
        )
    ]
    firsts, seconds = zip(*pairs, strict=True)
    reference_share = np.mean(
        np.sum(reference(list(firsts)) * reference(list(seconds)), 1) >= REPEAT_COSINE
    )
    own_share = np.mean([own[a] @ own[b] >= threshold for a, b in pairs])
    assert abs(own_share - reference_share) <= 1.5 / len(pairs)
