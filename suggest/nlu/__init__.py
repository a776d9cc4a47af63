"""Language understanding of call text: entities and PII redaction (intents come later).

Plain typed Python on spaCy; no asyncio, never imports ``voice`` or ``telephony``.
"""

from suggest.nlu.entities import REDACTED_LABELS, EntityExtractor
from suggest.nlu.types import Entity

__all__ = ["REDACTED_LABELS", "Entity", "EntityExtractor"]
