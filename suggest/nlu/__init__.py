"""Language understanding of call text: entities and PII redaction.

Plain typed Python on spaCy; no asyncio, never imports ``voice`` or ``telephony``. Names are
exported lazily: importing the plain ``Entity`` record must not load spaCy (about 1 s).
"""

from typing import Any

_EXPORTS = {
    "REDACTED_LABELS": "suggest.nlu.entities",
    "EntityExtractor": "suggest.nlu.entities",
    "Entity": "suggest.nlu.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'suggest.nlu' has no attribute {name!r}")
