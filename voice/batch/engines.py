"""Models loaded once per process and shared by every file the process transcribes."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asr import WhisperEngine
    from diarize.pipeline import Diarizer
    from suggest.nlu.entities import EntityExtractor

_lock = threading.Lock()


@functools.cache
def whisper_engine(model: str, device: str, cpu_threads: int = 0) -> WhisperEngine:
    """The Whisper engine for ``model`` (loaded on first use in this process)."""
    from asr import WhisperEngine

    with _lock:
        return WhisperEngine.load(model, device=device, cpu_threads=cpu_threads)


@functools.cache
def diarizer(pipeline: str, device: str) -> Diarizer:
    """The diarization pipeline (loaded on first use in this process)."""
    from diarize.pipeline import Diarizer

    with _lock:
        return Diarizer.load(pipeline, device="cpu" if device == "auto" else device)


@functools.cache
def entity_extractor() -> EntityExtractor:
    """The entity extractor (spaCy + patterns), loaded on first use in this process."""
    from suggest.nlu.entities import EntityExtractor

    with _lock:
        return EntityExtractor.load()
