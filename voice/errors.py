"""Typed errors of the pipeline. Leaf module: imports nothing from the project.

Every error says what went wrong and what to do about it (``hint``); ``retryable`` tells a
caller's policy whether trying again can help (a busy worker) or not (a corrupt file).
"""

from __future__ import annotations


class VoiceError(Exception):
    """Base of all errors raised by the ``voice`` package."""

    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class AudioDecodeError(VoiceError):
    """A file is empty, truncated, not audio, or in a format that needs explicit parameters."""


class ConfigError(VoiceError):
    """An option or configuration value is invalid."""


class StorageError(VoiceError):
    """The database could not be reached or migrated."""

    retryable = True
