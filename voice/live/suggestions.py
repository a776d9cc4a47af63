"""Which suggestion model serves a call: one model, the tenant's newest in a registry, or an A/B arm.

Each model is loaded once per process and served by one micro-batcher shared by all its calls
(concurrent requests from many calls become one batched embedding pass).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice.config import ServerConfig
from voice.frames import CallStartedFrame
from voice.processor import FrameProcessor


@dataclass
class _Served:
    engine: Any
    batcher: Any


@dataclass
class SuggestionRouter:
    """Per-call choice of model (tenant and A/B arm) over lazily loaded, shared engines."""

    config: ServerConfig
    registry: Any = None
    split: Any = None
    _served: dict[str, _Served] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, config: ServerConfig) -> SuggestionRouter:
        """Prepare the router; a single configured model (or every A/B arm) is loaded now."""
        from suggest.ab import ABSplit
        from suggest.registry import ModelRegistry

        registry = ModelRegistry(Path(config.models_root)) if config.models_root else ModelRegistry()
        split = ABSplit.load(Path(config.ab_split)) if config.ab_split else None
        router = cls(config, registry, split)
        for reference in ([a.model for a in split.arms] if split else []) + (
                [config.suggest_model] if config.suggest_model else []):
            router._serve(str(registry.resolve(reference)))
        return router

    def choose(self, started: CallStartedFrame) -> tuple[str | None, str | None]:
        """(model directory, arm name) for a call, or (None, None) when its tenant has no model."""
        if self.split is not None:
            arm = self.split.assign(started.call_id, started.agent_id)
            return str(self.registry.resolve(arm.model)), arm.name
        if self.config.suggest_model:
            return str(self.registry.resolve(self.config.suggest_model)), None
        try:
            return str(self.registry.resolve(started.tenant)), None
        except Exception:  # noqa: BLE001 - a tenant without a model simply gets no suggestions
            return None, None

    def processor_for(self, started: CallStartedFrame) -> FrameProcessor | None:
        """The call's suggestion processor (None when no model serves its tenant)."""
        from voice.processors.suggest import SuggestProcessor

        model, arm = self.choose(started)
        if model is None:
            return None
        return SuggestProcessor(service=self._serve(model).batcher, arm=arm)

    def intent_fn(self, started: CallStartedFrame) -> Any:
        """Customer-intent classifier of the call's model (None without a model)."""
        model, _ = self.choose(started)
        if model is None:
            return None
        engine = self._serve(model).engine

        def classify(text: str) -> tuple[str, float] | None:
            predictions = engine.classify_intents([text])
            return (predictions[0].name, predictions[0].confidence) if predictions else None

        return classify

    def _serve(self, model: str) -> _Served:
        from suggest.batching import MicroBatcher
        from suggest.engine import SuggestionEngine

        with self._lock:
            if model not in self._served:
                engine = SuggestionEngine.load(model)
                self._served[model] = _Served(engine, MicroBatcher(engine))
            return self._served[model]

    def close(self) -> None:
        """Stop every micro-batcher."""
        for served in self._served.values():
            served.batcher.close()
