"""Serving on the bundled (real) demo model: refill, rewritten histories, call-start facts,
A/B records and batch latency.

1. A DATE/TIME/MONEY slot is refilled only same kind for same kind: "How are you today?" never
   becomes "How are you last year?".
2. A history rewritten before the trail is rebuilt even when the turn just before the trail
   repeats (the fingerprint chains every consumed turn).
3. A call-start fact past float32's range is left out at ingress, refused by the engine, and
   can no longer turn the scores into NaN.
4. The live router records each call's A/B arm at call start (a failed write is logged).
5. Two requests of one call in a batch report the pass they waited for.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from suggest.ab import ABSplit, CallFacts, experiment_records
from suggest.engine import InvalidContextError, SuggestionEngine
from suggest.nlu.types import Entity
from suggest.realise import Slot, refill
from suggest.state import CallState, context_block
from suggest.types import SuggestContext, Turn

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def engine(bundled_suggestion_model: Path) -> SuggestionEngine:
    return SuggestionEngine.load(bundled_suggestion_model)


def _entity(text: str, label: str, words: str) -> Entity:
    start = text.index(words)
    return Entity(label, words, start, start + len(words), words)


# 1. ------------------------------------------------------------------------------------------


def test_a_relative_date_of_the_call_never_replaces_a_script_word(engine: SuggestionEngine) -> None:
    bank = engine.model.bank
    dated = [x for x in bank.exemplars if any(s.label in ("DATE", "TIME") for s in x.slots)]
    words = {x.text[s.start : s.end].casefold() for x in dated for s in x.slots}
    assert {"today", "daily", "a great day"} <= words  # what NER tags in agents' script lines
    relative = {"DATE": "last year", "TIME": "tonight", "MONEY": "some money"}
    for exemplar in dated:
        if not any(s.label in ("PERSON", "PHONE", "EMAIL") for s in exemplar.slots):
            assert refill(exemplar.text, exemplar.slots, relative) == exemplar.text

    said = "I'm good. I gave some money to a food bank last year, so I already do my part."
    turns = (Turn("agent", "Hello! How are you doing?"),
             Turn("customer", said, entities=(_entity(said, "DATE", "last year"),)))
    result = engine.suggest(SuggestContext("date-call", turns, k=len(engine.model.actions)))
    assert result.suggestions and not any("last year" in s.text for s in result.suggestions)
    assert any("today" in s.text for s in result.suggestions)  # the script's word stands


def test_a_specific_value_still_refills_a_specific_slot_and_amounts_come_from_the_customer(
    engine: SuggestionEngine,
) -> None:
    exemplar = next(x for x in engine.model.bank.exemplars
                    if [x.text[s.start : s.end] for s in x.slots if s.label == "DATE"] == ["2017"])
    shown = refill(exemplar.text, exemplar.slots, {"DATE": "March 2019"})
    assert "March 2019" in shown and "2017" not in shown

    amount = next(x for x in engine.model.bank.exemplars
                  if [x.text[s.start : s.end] for s in x.slots if s.label == "MONEY"] == ["$1"])
    assert "$20" in refill(amount.text, amount.slots, {"MONEY": "$20"})
    assert refill(amount.text, amount.slots, {"MONEY": "a few cents"}) == amount.text
    assert "a dollar" in refill(amount.text, amount.slots, {"MONEY": "a dollar"})

    # Whisper writes "9 a.m.": its "a" is no article (the rule once read the time as vague).
    line = "I can call you back at 3 p.m. on Tuesday."
    slots = (Slot("TIME", line.index("3 p.m."), line.index("3 p.m.") + 6),)
    assert refill(line, slots, {"TIME": "9 a.m."}) == "I can call you back at 9 a.m. on Tuesday."
    assert refill(line, slots, {"TIME": "10:30 a.m."}) == "I can call you back at 10:30 a.m. on Tuesday."
    assert refill(line, slots, {"TIME": "tonight"}) == line

    vocabulary = engine.model.vocabulary
    state = CallState(engine.model.specs)
    embedding = np.zeros(engine.model.specs.embedding_dim, np.float32)
    state.advance("agent", embedding, vocabulary, [("MONEY", "$2")])
    assert "MONEY" not in state.refill_values and state.entity_values["MONEY"] == "$2"
    state.advance("customer", embedding, vocabulary, [("MONEY", "$20")])
    assert state.refill_values["MONEY"] == "$20"


# 2. ------------------------------------------------------------------------------------------

_A, _C = (lambda t: Turn("agent", t)), (lambda t: Turn("customer", t))
_HISTORY = [
    _A("Hi, thanks for taking the time to chat today."), _C("Hi, sure."), _C("Okay."), _C("Okay."),
    _A("Have you heard of Save the Children?"), _C("No, what is it?"),
    _A("It is a charity that helps children in developing countries."), _C("That sounds nice."),
    _A("Would you consider donating some of your task payment?"), _C("How much would you suggest?"),
    _A("Even fifty cents would help a lot."), _C("Let me think about it."),
]


def test_a_turn_inserted_before_the_trail_next_to_repeated_turns_rebuilds_the_call(
    bundled_suggestion_model: Path,
) -> None:
    said = "My name is Maria and I already give $20 every month to UNICEF."
    late = Turn("customer", said, entities=(_entity(said, "PERSON", "Maria"), _entity(said, "MONEY", "$20")))
    rewritten = (_HISTORY[0], late, *_HISTORY[1:], _A("That's very generous of you!"), _C("Thanks, I try."))

    warm = SuggestionEngine.load(bundled_suggestion_model)
    warm.suggest(SuggestContext("call", tuple(_HISTORY)))
    answer = warm.suggest(SuggestContext("call", rewritten))
    cold = SuggestionEngine.load(bundled_suggestion_model)
    expected = cold.suggest(SuggestContext("call", rewritten))

    assert answer.latency.turns_encoded == len(rewritten)  # rebuilt, not replayed from the trail
    assert warm._calls["call"][0].refill_values == cold._calls["call"][0].refill_values
    assert [(s.text, s.score) for s in answer.suggestions] == [(s.text, s.score) for s in expected.suggestions]
    # A plain extension still costs one embedding, and so does the next turn after the rebuild.
    longer = (*rewritten, _A("Would you like to donate today?"))
    assert warm.suggest(SuggestContext("call", longer)).latency.turns_encoded == 1


# 3. ------------------------------------------------------------------------------------------


def test_a_fact_past_float32_is_left_out_at_ingress_and_refused_by_the_engine(
    engine: SuggestionEngine, caplog: pytest.LogCaptureFixture
) -> None:
    from telephony.far_end import call_context

    with caplog.at_level(logging.WARNING, logger="telephony.far_end"):
        assert call_context({"context.tier": "1e39", "context.big": 10**400, "context.ok": "3e38"}) == {"ok": 3e38}
    assert "beyond" in caplog.text

    from pydantic import ValidationError

    from telephony.webrtc.signaling import OfferRequest

    assert OfferRequest(sdp="v=0", context={"tier": 3e38}).context == {"tier": 3e38}
    with pytest.raises(ValidationError, match="tier"):  # the WebRTC offer's JSON: a 422
        OfferRequest(sdp="v=0", context={"tier": 1e39})

    turns = (_A("Hi! Have you heard of Save the Children?"), _C("No, what is that?"))
    for bad in (1e39, -1e300, 10**400, math.inf, math.nan, "2", True, None):
        with pytest.raises(InvalidContextError, match="call-start fact 'tier'"):
            engine.suggest(SuggestContext(f"c-{bad}", turns, context={"tier": bad}))  # type: ignore[dict-item]
    assert engine.suggest(SuggestContext("c-ok", turns, context={"tier": 3e38})).suggestions


def test_huge_features_never_make_the_scores_nan(engine: SuggestionEngine) -> None:
    block = context_block(("tier", "campaign"), {"tier": 1e39, "campaign": math.nan})
    assert np.isfinite(block).all() and block[2:].tolist() == [1.0, 0.0]

    model = engine.model
    features = np.zeros((2, model.specs.n_features), np.float32)
    features[0, :] = np.finfo(np.float32).max  # every logit overflows
    features[1, 0] = 1.0
    probabilities = model.policy.probabilities(features, model.feedback_bias[[0, 0]])
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    json.dumps(probabilities.tolist(), allow_nan=False)


# 4. ------------------------------------------------------------------------------------------

_V1, _V2 = "20260101T000000Z", "20260102T000000Z"


def _ab_router(bundled: Path, tmp_path: Path) -> Any:
    from voice.config import ServerConfig
    from voice.live.suggestions import SuggestionRouter

    root = tmp_path / "models"
    for version in (_V1, _V2):
        target = root / "acme" / version
        shutil.copytree(bundled, target)
        manifest = json.loads((target / "manifest.json").read_text())
        manifest.update(tenant="acme", version=version)
        (target / "manifest.json").write_text(json.dumps(manifest))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"experiment": "acme-exp", "unit": "call", "arms": [
        {"name": "control", "model": f"acme/{_V1}"}, {"name": "treatment", "model": f"acme/{_V2}"}]}))
    return SuggestionRouter.load(ServerConfig(models_root=str(root), ab_split=str(split)))


def test_the_live_router_records_each_calls_arm_at_call_start(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    from voice.frames import CallStartedFrame
    from voice.store import Store
    from voice.store.feedback import FeedbackStore

    router = _ab_router(bundled_suggestion_model, tmp_path)
    writer = ThreadPoolExecutor(1, "db-writer")
    served: dict[str, str] = {}
    try:
        with Store.open(f"sqlite:///{tmp_path / 'n.db'}") as store:
            router.record_assignments(FeedbackStore(store), writer)
            for i in range(10):
                started = CallStartedFrame(call_id=f"acme-{i}", tenant="acme")
                _, processor = router.for_call(started)
                assert processor is not None and processor.arm is not None
                served[started.call_id] = processor.arm
            writer.shutdown(wait=True)
            recorded = FeedbackStore(store).assignments("acme-exp")
    finally:
        router.close()
    assert recorded == served and set(served.values()) == {"control", "treatment"}

    # The report now counts a call with an outcome whether or not its suggestions were shown.
    split = ABSplit.load(tmp_path / "split.json")
    calls = [CallFacts(c, tenant="acme", success=True, shown=0, from_outcome_file=False) for c in served]
    experiment = experiment_records(split, calls, recorded)
    assert len(experiment.records) == len(served) and not experiment.notes


def test_a_failed_assignment_write_is_logged_and_the_call_goes_on(
    bundled_suggestion_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from voice.errors import StorageError
    from voice.frames import CallStartedFrame

    class DownDatabase:
        def assign(self, *_args: object) -> str:
            raise StorageError("database is down")

    router = _ab_router(bundled_suggestion_model, tmp_path)
    writer = ThreadPoolExecutor(1, "db-writer")
    try:
        router.record_assignments(DownDatabase(), writer)
        with caplog.at_level(logging.ERROR, logger="voice.live.suggestions"):
            _, processor = router.for_call(CallStartedFrame(call_id="acme-down", tenant="acme"))
            writer.shutdown(wait=True)
        assert processor is not None and processor.arm is not None
        assert "not recorded" in caplog.text and "database is down" in caplog.text
        writer = ThreadPoolExecutor(1)
        writer.shutdown()
        router.record_assignments(DownDatabase(), writer)  # a writer already shut down
        assert router.for_call(CallStartedFrame(call_id="acme-late", tenant="acme"))[1] is not None
    finally:
        router.close()


# 5. ------------------------------------------------------------------------------------------


class _SlowEncoder:
    """The model's encoder, 50 ms slower per pass."""

    def __init__(self, real: Any) -> None:
        self.real, self.spec, self.dim = real, real.spec, real.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.05)
        return self.real.encode(texts)


def test_two_requests_of_one_call_in_a_batch_report_the_pass_they_waited_for(
    engine: SuggestionEngine,
) -> None:
    slow = SuggestionEngine(engine.model, _SlowEncoder(engine.encoder), engine.config)  # type: ignore[arg-type]
    first = (_A("Hi, how are you?"), _C("Fine."))
    second = (*first, _A("Have you heard of Save the Children?"))
    began = time.perf_counter()
    results = slow.suggest_batch([SuggestContext("same", first), SuggestContext("same", second)],
                                 queue_ms=[5.0, 5.0])
    wall = (time.perf_counter() - began) * 1e3
    one, two = (r.latency for r in results)
    assert two.queue_ms >= 5.0 + 50.0  # it waited for the first request's pass
    # It waited for no pass: its own wait plus only the batch's checks, less than one 50 ms pass
    # (the rest of that is margin for a loaded core; the checks alone take well under 1 ms).
    assert 5.0 <= one.queue_ms < 5.0 + 50.0
    for latency in (one, two):  # both are delivered when the batch is: after both passes
        assert 5.0 + 100.0 <= latency.total_ms <= 5.0 + wall + 1.0


def test_the_live_server_wires_the_router_to_its_store_and_database_writer(
    bundled_suggestion_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import voice.batch.engines
    from voice.config import ServerConfig
    from voice.frames import CallStartedFrame
    from voice.live.asr_runtime import AsrRuntime
    from voice.live.services import LiveServices
    from voice.store.feedback import FeedbackStore

    _ab_router(bundled_suggestion_model, tmp_path).close()  # publishes the models and the split
    monkeypatch.setattr(AsrRuntime, "load", classmethod(lambda cls, config: object()))
    monkeypatch.setattr(voice.batch.engines, "entity_extractor", lambda: None)
    config = ServerConfig(data_dir=str(tmp_path / "data"), models_root=str(tmp_path / "models"),
                          ab_split=str(tmp_path / "split.json"), sip_port=-1)
    services = LiveServices.load(config)
    try:
        _, processor = services.suggestions.for_call(CallStartedFrame(call_id="acme-wired", tenant="acme"))
        services.db_executor.shutdown(wait=True)
        assert FeedbackStore(services.store).assignments("acme-exp") == {"acme-wired": processor.arm}
    finally:
        services.suggestions.close()
        services.store.close()
