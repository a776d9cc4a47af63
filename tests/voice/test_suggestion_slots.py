"""Loaded suggestion models are counted per call: one that no new call would get is unloaded
(engine dropped, micro-batcher stopped) once its last call has ended, never before."""

from __future__ import annotations

import asyncio
import gc
import shutil
import threading
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from suggest.registry import ModelRegistry
from suggest.types import SuggestContext, Turn
from voice.config import ServerConfig
from voice.frames import CallEndedFrame, CallStartedFrame
from voice.live.suggestions import SuggestionRouter

pytestmark = pytest.mark.model

VERSIONS = ("20260101T000000Z", "20260201T000000Z", "20260301T000000Z", "20260401T000000Z")


def _started(tenant: str, call_id: str) -> CallStartedFrame:
    return CallStartedFrame(call_id=call_id, tenant=tenant, legs={"agent": "agent", "customer": "customer"})


def _context(call_id: str) -> SuggestContext:
    return SuggestContext(call_id=call_id, k=2, turns=(
        Turn("agent", "Hi! Would you consider donating to Save the Children today?"),
        Turn("customer", "I don't know, money is really tight for me right now."),
    ))


def _end(processor: Any, started: CallStartedFrame) -> None:
    """The call ends as in the live pipeline: its CallEndedFrame, then the pipeline's close."""

    async def run() -> None:
        await processor.process_frame(started)
        await processor.process_frame(CallEndedFrame(call_id=started.call_id))
        await processor.close()

    asyncio.run(run())


def _settle(router: SuggestionRouter) -> None:
    """Wait for the loader thread: loads, and closes of unloaded models, run there in order."""
    router._loader.submit(lambda: None).result(timeout=60)


def _batcher_threads() -> int:
    return sum(t.name.startswith("suggest-batcher") for t in threading.enumerate())


def test_promotions_with_no_calls_leave_only_the_served_models_loaded(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path)
    for version in VERSIONS:
        shutil.copytree(bundled_suggestion_model, tmp_path / "acme" / version)
    shutil.copytree(bundled_suggestion_model, tmp_path / "globex" / VERSIONS[0])
    before = _batcher_threads()
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path)))
    engines: list[weakref.ref[Any]] = []
    try:
        started = _started("globex", "g1")
        _, processor = router.for_call(started)
        assert processor is not None
        processor.service.submit(_context("g1")).result(timeout=60)
        _end(processor, started)
        for i, version in enumerate(VERSIONS):
            registry.promote("acme", version)  # nightly training, promoted
            started = _started("acme", f"c{i}")
            classify, processor = router.for_call(started)  # the previous model until this one loads
            assert processor is not None and classify is not None
            processor.service.submit(_context(f"c{i}")).result(timeout=60)
            _end(processor, started)
            served = router._slot(str(tmp_path / "acme" / version))
            engines.append(weakref.ref(served.ready.result(timeout=60).engine))
            del classify, processor, served  # what the ended call's pipeline held
            _settle(router)
            assert set(router._slots) == {str(tmp_path / "acme" / version), str(tmp_path / "globex" / VERSIONS[0])}
            assert _batcher_threads() - before == 2 * 2  # two workers per loaded model
        gc.collect()
        assert [ref() is None for ref in engines] == [True, True, True, False]  # the old ones are freed
    finally:
        router.close()
    assert _batcher_threads() == before


def test_a_call_keeps_its_model_through_a_promotion_until_it_ends(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    old, new = (tmp_path / "acme" / v for v in VERSIONS[:2])
    shutil.copytree(bundled_suggestion_model, old)
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path)))
    try:
        early = _started("acme", "early")
        _, on_old = router.for_call(early)
        assert on_old is not None and on_old.service.model_dir == str(old)
        assert on_old.service.submit(_context("early")).result(timeout=60).suggestions

        shutil.copytree(bundled_suggestion_model, new)
        ModelRegistry(tmp_path).promote("acme", VERSIONS[1])
        meanwhile = _started("acme", "meanwhile")
        _, while_loading = router.for_call(meanwhile)  # the old model while the new one loads
        assert while_loading is not None and while_loading.service.model_dir == str(old)
        router._slot(str(new)).ready.result(timeout=60)
        _end(while_loading, meanwhile)
        late = _started("acme", "late")
        _, on_new = router.for_call(late)
        assert on_new is not None and on_new.service.model_dir == str(new)
        _settle(router)
        assert str(old) in router._slots  # the early call is still on it
        assert on_old.service.submit(_context("early")).result(timeout=60).suggestions
        old_batcher = on_old.service.ready.result().batcher

        # The early call ends while the late call's suggestions are in flight on the new model.
        in_flight: list[Future[Any]] = [on_new.service.submit(_context(f"late-{i}")) for i in range(40)]
        _end(on_old, early)
        in_flight += [on_new.service.submit(_context(f"late-{i}")) for i in range(40, 80)]
        _settle(router)
        assert all(f.result(timeout=60).suggestions for f in in_flight)
        assert set(router._slots) == {str(new)} and old_batcher._closed
        assert on_old.service.active == 0  # ended twice (frame, then pipeline close), released once
        _end(on_new, late)
        assert set(router._slots) == {str(new)}  # still the tenant's served model
    finally:
        router.close()


def test_ab_arms_and_the_configured_model_stay_loaded_without_calls(
    bundled_suggestion_model: Path, tmp_path: Path
) -> None:
    import json

    arms = [tmp_path / "acme" / v for v in VERSIONS[:2]]
    for arm in arms:
        shutil.copytree(bundled_suggestion_model, arm)
    globex = [tmp_path / "globex" / v for v in VERSIONS[:2]]
    shutil.copytree(bundled_suggestion_model, globex[0])
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"experiment": "e1", "unit": "call", "arms": [
        {"name": "control", "model": f"acme/{VERSIONS[0]}"}, {"name": "treatment", "model": f"acme/{VERSIONS[1]}"}]}))
    router = SuggestionRouter.load(ServerConfig(models_root=str(tmp_path), ab_split=str(split)))
    try:
        for call_id, tenant in [("a1", "acme"), ("a2", "acme"), ("g1", "globex")]:
            _, processor = router.for_call(_started(tenant, call_id))
            assert processor is not None
            processor.service.submit(_context(call_id)).result(timeout=60)
            _end(processor, _started(tenant, call_id))
        shutil.copytree(bundled_suggestion_model, globex[1])  # globex's newer training
        _, processor = router.for_call(_started("globex", "g2"))
        router._slot(str(globex[1])).ready.result(timeout=60)
        assert processor is not None
        _end(processor, _started("globex", "g2"))
        _settle(router)
        assert set(router._slots) == {*map(str, arms), str(globex[1])}
    finally:
        router.close()

    single = SuggestionRouter.load(ServerConfig(suggest_model=str(arms[0])))
    try:
        started = _started("acme", "s1")
        _, processor = single.for_call(started)
        assert processor is not None
        _end(processor, started)
        _settle(single)
        assert set(single._slots) == {str(arms[0])} and single._slots[str(arms[0])].serving()
    finally:
        single.close()


def test_a_pipeline_closed_before_its_call_started_still_releases_its_model() -> None:
    """An earlier processor that fails on CallStartedFrame (or a pipeline that fails to build)
    must not leave the call's hold on a model for the life of the process."""
    from voice.processors.suggest import SuggestProcessor

    released: list[str] = []
    processor = SuggestProcessor(service=None, end_call=released.append)  # type: ignore[arg-type]
    asyncio.run(processor.close())
    assert released == [""]
