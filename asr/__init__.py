"""Speech recognition engine (faster-whisper): plain typed Python, no asyncio, no frames."""

import os

# No model hub is reachable at run time: make every HF library fail fast instead of trying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from asr.engine import WhisperEngine  # noqa: E402 - after the offline switches above
from asr.types import AsrError, AsrInputError, AsrOptions, Segment, Transcription, Word  # noqa: E402

__all__ = [
    "AsrError",
    "AsrInputError",
    "AsrOptions",
    "Segment",
    "Transcription",
    "WhisperEngine",
    "Word",
]
