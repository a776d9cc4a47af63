"""Which suggestion model serves a call: one model, the tenant's promoted (else newest) model in a
registry, or an A/B arm.

Each model is loaded once per process, off the event loop, and served by one micro-batcher shared
by all its calls (concurrent requests from many calls become one batched embedding pass). A model
that cannot be loaded costs its calls their suggestions, never the calls themselves.

A tenant's new model (a promotion, or a newer training) takes over the tenant's calls once it has
loaded; until then, and for good if it cannot be loaded, new calls keep the model the tenant was
served before in this process, so a model change never leaves agents without suggestions.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice.config import ServerConfig
from voice.frames import CallStartedFrame
from voice.processor import FrameProcessor

log = logging.getLogger(__name__)


LOAD_RETRY_SECONDS = 60.0
"""A model that failed to load is tried again after this long (an operator may have fixed it)."""
INTENT_WAIT_SECONDS = 5.0
"""How long a customer turn's intent waits for its model to finish loading (then: none)."""


class _ModelSlot:
    """One model directory, loaded once in the background and shared by every call it serves.

    Loading (about a second) never runs on the event loop: a call that starts meanwhile gets its
    suggestions as soon as the model is ready, and a model that cannot be loaded gives its calls
    an error per suggestion (shown, logged) instead of failing them.
    """

    def __init__(self, model_dir: str, loader: ThreadPoolExecutor) -> None:
        self.model_dir = model_dir
        self.started = time.monotonic()
        self.fallback_logged = False
        self.ready: Future[_Served] = loader.submit(self._load)
        self.ready.add_done_callback(self._report)

    def _load(self) -> _Served:
        from suggest.batching import MicroBatcher
        from suggest.engine import SuggestionEngine

        engine = SuggestionEngine.load(self.model_dir)
        return _Served(engine, MicroBatcher(engine))

    def _report(self, ready: Future[_Served]) -> None:
        if ready.exception() is not None:
            log.error("suggestion model %s cannot be loaded (%s); its calls go on without suggestions",
                      self.model_dir, ready.exception())

    def failed(self) -> bool:
        """Loading finished with an error."""
        return self.ready.done() and self.ready.exception() is not None

    def serving(self) -> bool:
        """Loaded and ready."""
        return self.ready.done() and self.ready.exception() is None

    def submit(self, context: Any) -> Future[Any]:
        """The processor's ``SuggestionService``: queued on the model's micro-batcher once loaded."""
        if self.ready.done() and not self.failed():
            return self.ready.result().batcher.submit(context)
        answer: Future[Any] = Future()

        def when_ready(ready: Future[_Served]) -> None:
            try:
                _chain(ready.result().batcher.submit(context), answer)
            except Exception as exc:  # noqa: BLE001 - the load failed: this suggestion fails, the call goes on
                answer.set_exception(exc)

        self.ready.add_done_callback(when_ready)
        return answer

    def classify(self, text: str) -> tuple[str, float] | None:
        """The customer turn's intent (on an NLU worker thread); None while the model is unusable."""
        try:
            engine = self.ready.result(timeout=INTENT_WAIT_SECONDS).engine
        except Exception:  # noqa: BLE001 - still loading or failed: the turn goes on without an intent
            return None
        predictions = engine.classify_intents([text])
        return (predictions[0].name, predictions[0].confidence) if predictions else None

    def end_call(self, call_id: str) -> None:
        """Forget an ended call's state in the engine, which keeps it per call id until told
        (``SuggestionEngine.end_call``). measured: about 7.5 KB for a three-turn call with the
        bundled model, kept for up to ``EngineConfig.max_calls`` (10,000) ended calls per model."""
        if self.serving():
            self.ready.result().engine.end_call(call_id)

    def close(self) -> None:
        """Stop the micro-batcher (if the model ever loaded)."""
        if self.ready.done() and not self.failed():
            self.ready.result().batcher.close()


def _chain(source: Future[Any], target: Future[Any]) -> None:
    def copy(done: Future[Any]) -> None:
        if done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)


@dataclass
class _Served:
    engine: Any
    batcher: Any


@dataclass
class SuggestionRouter:
    """Per-call choice of model (tenant and A/B arm) over shared engines loaded in the background."""

    config: ServerConfig
    registry: Any = None
    split: Any = None
    _slots: dict[str, _ModelSlot] = field(default_factory=dict)
    _arm_models: dict[str, str] = field(default_factory=dict)
    """A/B arm -> the model directory it serves, resolved once when the router is loaded."""
    _tenant_models: dict[str, list[str]] = field(default_factory=dict)
    """tenant -> the model directories its calls asked for, oldest first (for a change of model)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loader: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "model-load"))

    @classmethod
    def load(cls, config: ServerConfig) -> SuggestionRouter:
        """Prepare the router; a single configured model (or every A/B arm) is loaded now, and a
        broken one stops the start-up with its error (a tenant's registry models load on demand).
        """
        from suggest.ab import ABSplit
        from suggest.registry import ModelRegistry

        registry = ModelRegistry(Path(config.models_root)) if config.models_root else ModelRegistry()
        split = ABSplit.load(Path(config.ab_split)) if config.ab_split else None
        router = cls(config, registry, split)
        for arm in split.arms if split else []:
            # Pinned at start: an arm naming a tenant would otherwise follow every new training or
            # promotion, changing one arm's model in the middle of the experiment.
            router._arm_models[arm.name] = str(registry.resolve(arm.model))
            log.info("A/B arm %s serves %s", arm.name, router._arm_models[arm.name])
        for model in [*router._arm_models.values(), *(
                [str(registry.resolve(config.suggest_model))] if config.suggest_model else [])]:
            router._slot(model).ready.result()
        return router

    def choose(self, started: CallStartedFrame) -> tuple[str | None, str | None]:
        """(model directory, arm name) for a call, or (None, None) when its tenant has no model.

        A tenant's model is the one promoted with ``voice registry promote``, else its newest.
        """
        if self.split is not None:
            arm = self.split.assign(started.call_id, started.agent_id)
            return self._arm_models.get(arm.name) or str(self.registry.resolve(arm.model)), arm.name
        if self.config.suggest_model:
            return str(self.registry.resolve(self.config.suggest_model)), None
        try:  # the tenant comes from the far end: a registry name only, never a path
            return str(self.registry.served(started.tenant)), None
        except Exception:  # noqa: BLE001 - a tenant without a model simply gets no suggestions
            return None, None

    def for_call(self, started: CallStartedFrame) -> tuple[Any, FrameProcessor | None]:
        """The call's customer-intent classifier and suggestion processor (None, None when no model
        serves its tenant); the model is resolved once per call."""
        from voice.processors.suggest import SuggestProcessor

        model, arm = self.choose(started)
        if model is None:
            return None, None
        slot = self._slot(model)
        if arm is None and not self.config.suggest_model:
            slot = self._tenant_slot(started.tenant, slot)
        return slot.classify, SuggestProcessor(service=slot, arm=arm, end_call=slot.end_call)

    def _tenant_slot(self, tenant: str, wanted: _ModelSlot) -> _ModelSlot:
        """The tenant's wanted model once it has loaded; meanwhile, or if it cannot be loaded, the
        newest model that served the tenant before (a model change never leaves calls without
        suggestions; with none, the calls wait for the wanted model).
        """
        with self._lock:
            seen = self._tenant_models.setdefault(tenant, [])
            if wanted.model_dir in seen:
                seen.remove(wanted.model_dir)
            seen.append(wanted.model_dir)
            if wanted.serving():
                return wanted
            earlier = [self._slots[m] for m in reversed(seen[:-1]) if m in self._slots]
            previous = next((slot for slot in earlier if slot.serving()), None)
        if previous is None:
            return wanted
        if wanted.failed() and not wanted.fallback_logged:
            wanted.fallback_logged = True
            log.warning("tenant %s: %s cannot be served; its calls keep %s", tenant, wanted.model_dir,
                        previous.model_dir)
        return previous

    def _slot(self, model: str) -> _ModelSlot:
        with self._lock:
            slot = self._slots.get(model)
            if slot is None or (slot.failed() and time.monotonic() - slot.started > LOAD_RETRY_SECONDS):
                slot = self._slots[model] = _ModelSlot(model, self._loader)
            return slot

    def close(self) -> None:
        """Stop every micro-batcher and the loader."""
        self._loader.shutdown(wait=True)
        for slot in self._slots.values():
            slot.close()
