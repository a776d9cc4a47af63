"""Understanding and suggestion engine: entities, intents, the outcome-aware policy.

Plain typed Python, no asyncio; never imports ``voice`` or ``telephony``.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
