"""Speaker diarization and speaker embeddings (pyannote.audio): plain typed Python, no asyncio.

Names are exported lazily so that ``import diarize`` does not import torch and pyannote.
"""

import os
from typing import Any

# Offline only, and no telemetry: pyannote 4 reports usage to otel.pyannote.ai unless told not to.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

_EXPORTS = {
    "Diarizer": "diarize.pipeline",
    "OfflineSpeakerDiarization": "diarize.pipeline",
    "SpeakerEmbedder": "diarize.embedding",
    "Diarization": "diarize.types",
    "DiarizationOptions": "diarize.types",
    "SpeakerTurn": "diarize.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diarize' has no attribute {name!r}")
