"""Typed errors of the diarization engine; each says what went wrong and what to do about it.

``diarize`` never imports ``voice`` (engines are independent), so it has its own small
hierarchy, shaped like ``voice.errors.VoiceError`` (message plus ``hint``, ``retryable``).
``ModelNotFoundError`` for missing weights lives in :mod:`diarize.models`.
"""

from __future__ import annotations


class DiarizationError(Exception):
    """Base of the errors raised by ``diarize``."""

    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidAudioError(DiarizationError, ValueError):
    """The samples handed to the engine are not mono float audio the models can use."""


class InvalidOptionsError(DiarizationError, ValueError):
    """Speaker-count options contradict each other (e.g. min_speakers > max_speakers)."""


class PipelineLoadError(DiarizationError):
    """A pipeline directory or its config.yaml could not be turned into a diarization pipeline."""


class AnnotationFormatError(DiarizationError, ValueError):
    """An RTTM or UEM file has a line that does not follow the format."""
