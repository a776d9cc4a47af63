"""What a streaming transcriber asks a model for: one decode request, and the decoder over Whisper.

Split from :mod:`asr.streaming` so that batched backends (``asr.batched``, ``asr.torch_backend``)
depend on the request type only, not on the streaming policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from asr.types import AsrOptions, Word

__all__ = ["SAMPLE_RATE", "DecodeRequest", "TurnDecoder", "WhisperLike", "WhisperTurnDecoder"]

SAMPLE_RATE = 16000
"""Rate of the audio the transcriber takes (Whisper's)."""


@dataclass(frozen=True)
class DecodeRequest:
    """One decode to run: a stretch of audio plus what the decoder needs to know."""

    audio: np.ndarray
    """Float32 mono 16 kHz samples."""
    offset: float
    """Stream time of ``audio[0]``; the decoder returns times relative to it."""
    prompt: str | None
    """Earlier text shown to the decoder as context."""
    final: bool
    """True for a closed turn's final pass (decode carefully), False for a partial."""
    turn: int
    """Turn number within the stream (stale results are recognised by it)."""
    seq: int = 0
    """Partial request number within the turn."""
    pause_start: float | None = None
    """Stream time at which the VAD pause covering the end of ``audio`` began, if any."""
    context: float = 0.0
    """Seconds at the start of ``audio`` that are only context (earlier speech, not
    contiguous with the rest): their words are dropped. ``offset`` is chosen so that the
    times after the context are right."""

    @property
    def end(self) -> float:
        """Stream time just after the last sample."""
        return self.offset + len(self.audio) / SAMPLE_RATE


class TurnDecoder(Protocol):
    """What the transcriber needs from an ASR model: words with times for pieces of audio."""

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        """Words of each request's audio, times relative to the request's first sample."""
        ...


class WhisperTurnDecoder:
    """:class:`TurnDecoder` over an ``asr.WhisperEngine``; greedy partials and finals by default.

    The live server passes ``final=AsrOptions(beam_size=5)``: measured over the 128 SpokenWOZ
    turns as the live path decodes them, beam-5 finals 25.0 % WER against greedy 28.3 %
    (offline 24.3 %) for a third more decode time (docs/results/streaming.md).
    """

    def __init__(
        self,
        engine: WhisperLike,
        *,
        partial: AsrOptions = AsrOptions(beam_size=1),  # noqa: B008 - frozen
        final: AsrOptions = AsrOptions(beam_size=1),  # noqa: B008 - frozen
        around: Callable[[bool], AbstractContextManager[None]] | None = None,
    ) -> None:
        """``around(final)`` is entered around each decode, e.g. ``asr.live.trimmed_to`` a shorter
        encoder window for partials (``voice.live.asr_runtime``)."""
        self.engine = engine
        self.around = around
        self.partial_options = partial
        """Options of partial decodes."""
        self.final_options = final
        """Options of the final pass."""

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        """Decode each request in turn (on CPU, batching streams does not pay; see module doc)."""
        out = []
        for request in requests:
            options = self.final_options if request.final else self.partial_options
            with self.around(request.final) if self.around else nullcontext():
                result = self.engine.transcribe_turn(request.audio, options, prompt=request.prompt)
            out.append(list(result.words))
        return out


class WhisperLike(Protocol):
    """The part of ``asr.WhisperEngine`` the decoder uses."""

    def transcribe_turn(
        self, audio: np.ndarray, options: AsrOptions = ..., *, prompt: str | None = None
    ) -> _HasWords: ...


class _HasWords(Protocol):
    @property
    def words(self) -> tuple[Word, ...]: ...
