"""Which model serves a tenant's calls (promoted, else newest), loaded off the event loop; a model
that cannot be loaded costs its calls their suggestions, never the calls."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from suggest.errors import ModelFormatError
from suggest.registry import ModelRegistry, staging_dir
from suggest.types import SuggestContext, Turn
from voice.config import ServerConfig
from voice.frames import CallStartedFrame
from voice.live.suggestions import SuggestionRouter

pytestmark = pytest.mark.model
COVERED = "Sorry, I can't afford to donate anything right now, money is really tight for me."
"""A customer turn the bundled model's intents cover (cosine 0.79 to its nearest, threshold 0.5)."""


@pytest.fixture
def bundled(bundled_suggestion_model: Path) -> Path:
    return bundled_suggestion_model


def _started(tenant: str, call_id: str = "c1") -> CallStartedFrame:
    return CallStartedFrame(call_id=call_id, tenant=tenant, legs={"agent": "agent", "customer": "customer"})


def _context(call_id: str) -> SuggestContext:
    return SuggestContext(call_id=call_id, turns=(
        Turn("agent", "Hi! Would you consider donating to Save the Children today?"),
        Turn("customer", "I don't know, money is really tight for me right now."),
    ), k=2)


def test_a_tenant_is_served_its_promoted_model_else_its_newest(bundled: Path, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    for version in ("20260101T000000Z", "20260201T000000Z"):
        shutil.copytree(bundled, tmp_path / "acme" / version)
    half_written = staging_dir(tmp_path / "acme" / "20260301T000000Z")
    shutil.copytree(bundled, half_written)  # a training still running: never listed or served
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path)))
    try:
        assert [e.version for e in registry.versions("acme")] == ["20260101T000000Z", "20260201T000000Z"]
        assert router.choose(_started("acme"))[0] == str(tmp_path / "acme" / "20260201T000000Z")
        assert router.choose(_started("nobody")) == (None, None)

        result = CliRunner().invoke(_cli(), ["registry", "promote", "acme/20260101T000000Z",
                                             "--models", str(tmp_path)])
        assert result.exit_code == 0 and "acme now serves 20260101T000000Z" in result.output
        assert router.choose(_started("acme"))[0] == str(tmp_path / "acme" / "20260101T000000Z")
        listing = CliRunner().invoke(_cli(), ["registry", "list", "acme", "--models", str(tmp_path)]).output
        assert "* 20260101T000000Z" in listing and "  20260201T000000Z" in listing
        with pytest.raises(ModelFormatError):
            registry.promote("acme", "20260301T000000Z")  # not a published version

        classify, processor = router.for_call(_started("acme"))
        assert processor is not None and classify is not None
        answer = processor.service.submit(_context("c1")).result(timeout=60)
        assert answer.suggestions and all(s.text for s in answer.suggestions)
        intent = classify(COVERED)
        assert intent is not None and isinstance(intent[0], str)
        assert router.for_call(_started("nobody")) == (None, None)

        (tmp_path / "acme" / "CURRENT").unlink()
        old = tmp_path / "acme" / "20251201T000000Z"
        old.mkdir()
        (old / "manifest.json").write_text('{"schema_version": 0}')  # a model of an older release
        assert router.choose(_started("acme"))[0] == str(tmp_path / "acme" / "20260201T000000Z")
        listing = CliRunner().invoke(_cli(), ["registry", "list", "acme", "--models", str(tmp_path)]).output
        assert "20251201T000000Z" in listing and "cannot be served" in listing
        assert "* 20260201T000000Z" in listing
    finally:
        router.close()


def test_a_broken_model_costs_suggestions_not_the_call(
    bundled: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "acme" / "20260101T000000Z"
    shutil.copytree(bundled, broken)
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])  # truncated: its digest no longer matches
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path)))
    try:
        with caplog.at_level(logging.ERROR):
            classify, processor = router.for_call(_started("acme"))  # the call is built all the same
            assert processor is not None and classify is not None
            with pytest.raises(ModelFormatError):
                processor.service.submit(_context("c2")).result(timeout=60)
            assert classify(COVERED) is None
        assert any("cannot be loaded" in r.message for r in caplog.records)
        refused = CliRunner().invoke(_cli(), ["registry", "promote", "acme/20260101T000000Z",
                                              "--models", str(tmp_path)])
        assert refused.exit_code != 0 and "digest" in refused.output  # never promoted
        assert ModelRegistry(tmp_path).promoted("acme") is None
    finally:
        router.close()


def test_a_tenant_keeps_its_model_while_a_new_one_loads_or_if_it_cannot(
    bundled: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, broken = (tmp_path / "acme" / v for v in (
        "20260101T000000Z", "20260201T000000Z", "20260301T000000Z"))
    shutil.copytree(bundled, first)
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path)))
    loader_busy = threading.Event()
    try:
        _, processor = router.for_call(_started("acme", "c1"))
        assert processor is not None and processor.service.submit(_context("c1")).result(timeout=60).suggestions
        assert processor.service.model_dir == str(first)

        router._loader.submit(loader_busy.wait)  # the new model's load cannot start yet
        shutil.copytree(bundled, second)
        _, meanwhile = router.for_call(_started("acme", "c2"))
        assert meanwhile is not None and meanwhile.service.model_dir == str(first)
        assert meanwhile.service.submit(_context("c2")).result(timeout=60).suggestions
        loader_busy.set()
        router._slot(str(second)).ready.result(timeout=60)
        _, after = router.for_call(_started("acme", "c3"))
        assert after is not None and after.service.model_dir == str(second)

        shutil.copytree(bundled, broken)
        weights = broken / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:-64])
        assert router._slot(str(broken)).ready.exception(timeout=60) is not None
        with caplog.at_level(logging.WARNING):
            classify, kept = router.for_call(_started("acme", "c4"))
            router.for_call(_started("acme", "c5"))
        assert kept is not None and kept.service.model_dir == str(second)
        assert kept.service.submit(_context("c4")).result(timeout=60).suggestions
        assert classify(COVERED) is not None
        warnings = [r for r in caplog.records if "cannot be served" in r.message]
        assert len(warnings) == 1 and str(broken) in warnings[0].message  # once, not per call
    finally:
        loader_busy.set()
        router.close()


def _cli():  # noqa: ANN202 - click group
    from voice.cli import cli

    return cli


def test_an_ab_arm_keeps_the_model_it_started_with(bundled: Path, tmp_path: Path) -> None:
    import json

    shutil.copytree(bundled, tmp_path / "acme" / "20260101T000000Z")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"experiment": "e1", "unit": "call", "arms": [
        {"name": "control", "model": "acme", "weight": 1.0},  # names the tenant, not a version
    ]}))
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path), ab_split=str(split)))
    try:
        assert router.choose(_started("acme", "c1")) == (str(tmp_path / "acme" / "20260101T000000Z"), "control")
        shutil.copytree(bundled, tmp_path / "acme" / "20260201T000000Z")  # a newer training mid-experiment
        assert ModelRegistry(tmp_path).served("acme").name == "20260201T000000Z"
        assert router.choose(_started("acme", "c2")) == (str(tmp_path / "acme" / "20260101T000000Z"), "control")
    finally:
        router.close()


def test_the_intent_shown_is_none_where_no_intent_covers_the_turn(bundled: Path, tmp_path: Path) -> None:
    """Off-topic, mask-only and empty turns got confident-looking intents on the agent's screen;
    the policy still reads the nearest intent of every turn."""
    from suggest.engine import SuggestionEngine

    shutil.copytree(bundled, tmp_path / "acme" / "v1")
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path)))
    engine = SuggestionEngine.load(tmp_path / "acme" / "v1")
    try:
        classify, _ = router.for_call(_started("acme"))
        assert classify is not None
        off_topic = ["I want to cancel my order", "رقم هاتفي"]
        for text in ["", "   ", "[PHONE]", "!!!", "\N{GRINNING FACE}", *off_topic]:
            assert classify(text) is None, text
        threshold = engine.intent_threshold
        assert threshold == engine.model.manifest["metrics"]["intents"]["threshold"]
        assert all(p.confidence < threshold for p in engine.classify_intents(off_topic))  # what the model says
        nearest = engine.classify_intents([COVERED])[0]
        assert classify(COVERED) == (nearest.name, nearest.confidence) and nearest.confidence >= threshold

        turns = (Turn("agent", "Hi! Would you consider donating?"), Turn("customer", off_topic[0]))
        state_intent = engine.suggest(SuggestContext(call_id="c-off", turns=turns, k=1)).intent
        assert state_intent is not None  # the policy's features are unchanged: the nearest intent
        assert state_intent.id == engine.classify_intents(off_topic[:1])[0].id
    finally:
        router.close()
