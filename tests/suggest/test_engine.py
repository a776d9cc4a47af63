"""A real model trained on a PersuasionForGood slice: behaviour of the engine end to end.

One session fixture trains two small models (plain, and with agent feedback) on 120 shared
conversations with the real MiniLM encoder; every assertion is checked against what that
model learned from the data, not against hard-coded answers.
"""

from __future__ import annotations

import dataclasses
import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from suggest.batching import MicroBatcher
from suggest.data.format import write_conversations
from suggest.data.importers import import_persuasionforgood
from suggest.engine import SuggestionEngine
from suggest.feedback import FeedbackRecord
from suggest.model import load_model, save_model
from suggest.nlu.types import Entity
from suggest.realise import PERSONAL_LABELS
from suggest.train.config import TrainConfig
from suggest.train.pipeline import TrainResult, train
from suggest.types import Conversation, SuggestContext, Turn

pytestmark = pytest.mark.model

SLICE = 120
TENANT = "pfg"
OBJECTION = "Sorry, I can't afford to donate anything right now, money is really tight for me."


@pytest.fixture(scope="session")
def conversations(shared_data: Path) -> list[Conversation]:
    report = import_persuasionforgood(
        shared_data / "dialogues" / "persuasionforgood", tenant=TENANT
    )
    return sorted(report.conversations, key=lambda c: c.id)[:SLICE]


@pytest.fixture(scope="session")
def data_file(conversations: list[Conversation], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "pfg.jsonl"
    write_conversations(path, conversations)
    return path


@pytest.fixture(scope="session")
def trained(
    conversations: list[Conversation], tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    config = TrainConfig(tenant=TENANT, min_conversations=20)
    return train(
        conversations, config, tmp_path_factory.mktemp("models") / "plain", cache_dir=_cache()
    )


@pytest.fixture(scope="session")
def engine(trained: TrainResult) -> SuggestionEngine:
    return SuggestionEngine.load(trained.directory)


def _cache() -> Path:
    import os

    return Path(os.environ.get("NEXTLINE_CACHE") or Path.home() / ".cache" / "nextline")


def _objection_call() -> tuple[Turn, ...]:
    return (
        Turn("agent", "Hi there! Have you heard of the charity Save the Children?"),
        Turn("customer", "Yes, I have heard of them."),
        Turn("agent", "Would you be willing to donate part of your task payment to them today?"),
        Turn("customer", OBJECTION),
    )


def test_training_finds_actions_and_intents_and_beats_the_majority_baseline(
    trained: TrainResult,
) -> None:
    metrics = trained.model.manifest["metrics"]
    assert (
        metrics["actions"]["k"] in TrainConfig().actions.k_grid
        and metrics["actions"]["coverage"] > 0.6
    )
    assert metrics["intents"]["k"] in TrainConfig().intents.k_grid
    heldout = metrics["heldout"]
    assert heldout["top3_policy"] > heldout["top3_majority"] + 0.05
    assert heldout["relevance"] > heldout["relevance_baseline"]
    assert all(info.name and info.keywords and info.medoid for info in trained.model.actions)
    assert (
        trained.model.manifest["training"]["conversations"] < SLICE
    )  # the held-out side was left out


def test_an_obvious_objection_gets_the_action_successful_agents_used(
    engine: SuggestionEngine,
) -> None:
    result = engine.suggest(SuggestContext(call_id="objection", turns=_objection_call(), k=3))
    engine.end_call("objection")
    assert result.intent is not None and len(result.suggestions) == 3
    assert (
        engine.classify_intents([OBJECTION])[0].id == result.intent.id
    )  # the live classifier agrees
    why = engine.model.why
    row = result.intent.id
    # What won calls did after this intent, according to the training data itself.
    answered = np.argsort(-why.won[row])[:3]
    assert why.won[row].sum() > 0
    assert {s.action_id for s in result.suggestions} & set(answered.tolist())
    assert all(0.0 < s.score <= 1.0 and s.why and s.text for s in result.suggestions)
    assert [s.score for s in result.suggestions] == sorted(
        (s.score for s in result.suggestions), reverse=True
    )
    assert result.model_version == engine.model_version and result.latency.turns_encoded == 4


def test_entities_of_the_call_are_refilled_and_personal_ones_never_copied(
    engine: SuggestionEngine,
) -> None:
    bank = engine.model.bank
    with_money = [
        i for i, e in enumerate(bank.exemplars) if any(s.label == "MONEY" for s in e.slots)
    ]
    assert with_money, "the slice has exemplars that mention amounts"
    index = with_money[0]
    exemplar = bank.exemplars[index]
    realised = bank.realise(exemplar.action, bank.contexts[index], None, {"MONEY": "$1.75"}, None)
    assert realised is not None and realised.exemplar == index and "$1.75" in realised.text
    for index, e in enumerate(bank.exemplars):
        if any(
            slot.label in PERSONAL_LABELS for slot in e.slots
        ):  # never used without the call's value
            chosen = bank.realise(e.action, bank.contexts[index], None, {}, None)
            assert chosen is None or chosen.exemplar != index
    # Through the engine: entities carried by the context's turns reach the call state.
    text = "I could give $1.75 I guess."
    turns = (
        *_objection_call()[:3],
        Turn("customer", text, entities=(Entity("MONEY", "$1.75", 13, 18, "1.75 USD"),)),
    )
    engine.suggest(SuggestContext(call_id="money", turns=turns))
    state, _lock = engine._calls["money"]
    assert state.entity_values == {"MONEY": "$1.75"}
    engine.end_call("money")


def test_registry_round_trip_is_byte_stable(trained: TrainResult, tmp_path: Path) -> None:
    model = load_model(trained.directory)
    copy = tmp_path / "copy"
    save_model(model, copy, trained.directory / "encoder")
    names = sorted(
        p.relative_to(trained.directory).as_posix()
        for p in trained.directory.rglob("*")
        if p.is_file()
    )
    assert names == sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(trained.directory, copy, names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(names)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["architecture"] == {"module": "suggest.engine", "class": "SuggestionEngine"}
    assert {"data_sha256", "split"} <= manifest["training"].keys() and manifest["created"]
    assert not list(trained.directory.rglob("*.pkl")) and not list(trained.directory.rglob("*.pt"))


def test_long_calls_encode_one_turn_per_suggestion_and_rebuild_on_a_rewritten_history(
    engine: SuggestionEngine,
    conversations: list[Conversation],
) -> None:
    turns = [t for c in conversations[:8] for t in c.turns][:120]
    for n in range(1, len(turns) + 1):
        result = engine.suggest(SuggestContext(call_id="long", turns=tuple(turns[:n])))
        assert result.latency.turns_encoded == 1 and result.turn_index == n
    state, _lock = engine._calls["long"]
    assert state.summary.shape == (engine.model.specs.embedding_dim,) and state.turns == 120
    rewritten = (*turns[:50], Turn("customer", "Something else entirely."))
    assert (
        engine.suggest(SuggestContext(call_id="long", turns=rewritten)).latency.turns_encoded == 51
    )
    engine.end_call("long")


def test_the_micro_batcher_gives_the_same_suggestions_as_direct_calls(
    engine: SuggestionEngine,
) -> None:
    contexts = [
        SuggestContext(call_id=f"b{i}", turns=_objection_call()[: 1 + i % 4]) for i in range(12)
    ]
    direct = [[s.text for s in engine.suggest(c).suggestions] for c in contexts]
    for c in contexts:
        engine.end_call(c.call_id)
    with MicroBatcher(engine, max_batch=8, max_wait_ms=20) as batcher:
        futures = [batcher.submit(c) for c in contexts]
        batched = [f.result(60) for f in futures]
    assert [[s.text for s in r.suggestions] for r in batched] == direct
    assert max(r.latency.batch_size for r in batched) > 1


def test_dismissed_feedback_sinks_an_action_and_accepted_raises_another(
    engine: SuggestionEngine,
    conversations: list[Conversation],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    call = _objection_call()
    before = engine.suggest(SuggestContext(call_id="fb", turns=call, k=3))
    engine.end_call("fb")
    top, runner_up = before.suggestions[0], before.suggestions[1]
    records = []
    for i in range(30):
        records.append(
            FeedbackRecord(f"d{i}", f"call-{i}", "dismissed", top.text, context=call, tenant=TENANT)
        )
        records.append(
            FeedbackRecord(
                f"a{i}", f"call-{i}", "accepted", runner_up.text, context=call, tenant=TENANT
            )
        )
    config = TrainConfig(tenant=TENANT, min_conversations=20, evaluate_heldout=False)
    retrained = train(
        conversations,
        config,
        tmp_path_factory.mktemp("models") / "feedback",
        cache_dir=_cache(),
        feedback=records,
    )
    assert retrained.model.manifest["training"]["feedback"] == {"used": 60, "skipped": 0}
    after = SuggestionEngine.load(retrained.directory).suggest(
        SuggestContext(call_id="fb", turns=call, k=3)
    )
    ranked = [s.action_id for s in after.suggestions]
    assert ranked[0] == runner_up.action_id
    assert top.action_id not in ranked[:1]


def test_cli_evaluate_suggest_and_compare(
    trained: TrainResult, data_file: Path, tmp_path: Path
) -> None:
    from voice.cli import cli

    runner = CliRunner()
    report = tmp_path / "reports" / "eval.json"  # --out folders are made, not a traceback
    result = runner.invoke(
        cli,
        [
            "evaluate",
            "--model",
            str(trained.directory),
            "--data",
            str(data_file),
            "--out",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    written = json.loads(report.read_text())
    metrics = written["metrics"]
    assert metrics["top3_policy"] == pytest.approx(
        trained.model.manifest["metrics"]["heldout"]["top3_policy"]
    )
    # the turns behind McNemar's test: their difference is the top-3 difference itself
    won = [t for t in written["turns"] if t["success"]]
    policy_only, bc_only = metrics["top3_successful_policy_only"], metrics["top3_successful_bc_only"]
    assert policy_only == sum(t["rank_policy"] < 3 <= t["rank_bc"] for t in won)
    assert (policy_only - bc_only) / len(won) == pytest.approx(
        metrics["top3_policy_successful"] - metrics["top3_bc_successful"]
    )
    needed = metrics["top3_successful_turns_needed"]
    assert (needed is None) == (policy_only == bc_only)
    assert needed is None or needed > (policy_only + bc_only)  # a smaller test cannot see it
    replay = tmp_path / "qa" / "replay.jsonl"
    one = tmp_path / "one.jsonl"
    one.write_text(data_file.read_text().splitlines()[0] + "\n")
    result = runner.invoke(
        cli,
        [
            "suggest",
            "--model",
            str(trained.directory),
            "--dialogues",
            str(one),
            "--out",
            str(replay),
            "--k",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in replay.read_text().splitlines()]
    first = json.loads(one.read_text())
    assert [r["turn"] for r in rows] == [
        i for i, t in enumerate(first["turns"]) if t["role"] == "agent"
    ]
    assert all(
        len(r["suggestions"]) == 2 and -1 <= r["top1_similarity"] <= 1 and r["actual"] for r in rows
    )
    result = runner.invoke(
        cli,
        [
            "compare",
            "--model",
            str(trained.directory),
            "--model",
            str(trained.directory),
            "--data",
            str(one),
            "--split",
            "all",
            "--out",
            str(tmp_path / "compare" / "ab.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "no significant difference" in result.output
    assert json.loads((tmp_path / "compare" / "ab.json").read_text())["turns"]


def test_bad_contexts_are_typed_errors(engine: SuggestionEngine) -> None:
    from suggest.engine import InvalidContextError

    with pytest.raises(InvalidContextError, match="role"):
        engine.suggest(
            SuggestContext(
                call_id="bad", turns=(dataclasses.replace(Turn("agent", "x"), role="bot"),)
            )
        )  # type: ignore[arg-type]
    empty = engine.suggest(SuggestContext(call_id="empty", turns=()))
    assert empty.suggestions and empty.intent is None  # an opening line before anyone spoke


def test_a_model_trained_with_context_reads_the_same_names_when_serving(
    conversations: list[Conversation],
    trained: TrainResult,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with_context = [  # a CRM-like fact, missing for every fourth call
        dataclasses.replace(c, context={"tier": float(i % 3)} if i % 4 != 3 else {})
        for i, c in enumerate(conversations)
    ]
    config = TrainConfig(tenant=TENANT, min_conversations=20, evaluate_heldout=False)
    result = train(
        with_context, config, tmp_path_factory.mktemp("models") / "context", cache_dir=_cache()
    )
    assert result.model.specs.context_names == ("tier",)
    manifest = json.loads((result.directory / "manifest.json").read_text())
    assert manifest["specs"]["context_names"] == ["tier"]
    plain = json.loads((trained.directory / "manifest.json").read_text())
    assert "context_names" not in plain["specs"]  # a model without context: manifest unchanged
    copy = tmp_path_factory.mktemp("copy")
    save_model(load_model(result.directory), copy, result.directory / "encoder")
    names = sorted([p.name for p in result.directory.glob("*.json")] + ["weights.safetensors"])
    assert sorted(filecmp.cmpfiles(result.directory, copy, names, shallow=False)[0]) == names
    engine = SuggestionEngine.load(result.directory)
    model = engine.model
    for tier, expected in ((2.0, [2.0, 1.0]), (None, [0.0, 0.0])):
        context = {"tier": tier, "not_trained": 5.0} if tier is not None else {}
        served = engine.suggest(
            SuggestContext(call_id="ctx", turns=_objection_call(), context=context, k=3)
        )
        state, _lock = engine._calls["ctx"]
        features = state.features(model.vocabulary, model.vocabulary.style_of(None))
        assert features[-2:].tolist() == expected  # the value, then its presence bit
        intent = state.last_intent if state.last_intent >= 0 else model.specs.n_intents
        policy = model.policy.probabilities(features[None, :], model.feedback_bias[intent][None, :])
        assert [s.score for s in served.suggestions] == pytest.approx(
            [float(policy[0][s.action_id]) for s in served.suggestions], abs=1e-6
        )
    engine.end_call("ctx")


def test_a_new_model_appears_whole_in_the_registry(
    conversations: list[Conversation], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training writes a hidden folder of its own (never listed or served) and renames it when
    done; the version's reservation is given back."""
    from suggest.registry import ModelRegistry
    from suggest.train import publish

    target = ModelRegistry(tmp_path).new_version("pfg")
    writes: list[tuple[Path, list[str]]] = []
    original = publish.save_model

    def watched(model: object, directory: Path, encoder_dir: Path) -> None:
        writes.append((directory, [e.version for e in ModelRegistry(tmp_path).versions("pfg")]))
        original(model, directory, encoder_dir)  # type: ignore[arg-type]

    monkeypatch.setattr(publish, "save_model", watched)
    config = TrainConfig(tenant="pfg", min_conversations=20, evaluate_heldout=False)
    result = train(conversations[:40], config, target, cache_dir=_cache())
    assert writes and all(d.name.startswith(f".{target.name}.") for d, _ in writes)
    assert all(listed == [] for _, listed in writes)  # invisible while being written
    assert result.directory == target and (target / "manifest.json").is_file()
    assert [e.version for e in ModelRegistry(tmp_path).versions("pfg")] == [target.name]
    assert not (tmp_path / "pfg" / f".{target.name}.partial").exists()
    assert sorted(p.name for p in (tmp_path / "pfg").iterdir()) == [target.name]
