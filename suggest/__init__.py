"""Understanding and suggestion engine: entities, intents, the outcome-aware policy.

Plain typed Python, no asyncio; never imports ``voice`` or ``telephony``. The public names
below are imported lazily, so ``import suggest`` stays cheap (no onnxruntime, no sklearn).
"""

import os
from importlib import import_module
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_EXPORTS = {
    "SuggestionEngine": "suggest.engine",
    "EngineConfig": "suggest.engine",
    "MicroBatcher": "suggest.batching",
    "SuggestContext": "suggest.types",
    "SuggestResult": "suggest.types",
    "Suggestion": "suggest.types",
    "Turn": "suggest.types",
    "Conversation": "suggest.types",
    "Outcome": "suggest.types",
    "TrainConfig": "suggest.train.config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'suggest' has no attribute {name!r}")
