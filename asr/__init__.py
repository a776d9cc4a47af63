"""Speech recognition engine (faster-whisper): plain typed Python, no asyncio, no frames."""

import os

# No model hub is reachable at run time: make every HF library fail fast instead of trying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
