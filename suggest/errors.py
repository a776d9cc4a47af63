"""Typed errors of the suggestion engine; each says what went wrong and what to do (``hint``).

Mirrors ``voice.errors`` without importing it (engines never import ``voice``): the CLI prints
``str(error)``, which carries the hint.
"""

from __future__ import annotations


class SuggestError(Exception):
    """Base of every error raised by ``suggest``."""

    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class DataFormatError(SuggestError):
    """An input file (conversation JSONL, dataset, outcomes CSV, feedback) cannot be read at all."""


class ModelFormatError(SuggestError):
    """A model directory is incomplete, corrupt, or written by an unknown schema version."""


class TrainingError(SuggestError):
    """The training data cannot produce a model (too few conversations, one outcome only, ...)."""


class LicenseError(SuggestError):
    """The data carries a license that forbids the requested use (e.g. non-commercial sets)."""


class ConfigError(SuggestError):
    """An option or configuration file (A/B split, engine config) is invalid."""
