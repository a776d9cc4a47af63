"""Speaker diarization and speaker embeddings (pyannote.audio): plain typed Python, no asyncio."""

import os

# Offline only, and no telemetry: pyannote 4 reports usage to otel.pyannote.ai unless told not to.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
