"""Cross-stream batched decoding: many streams' turns in one encoder pass and one generate call.

For CUDA, where one request leaves the GPU mostly idle. faster-whisper's own
``BatchedInferencePipeline`` batches the VAD chunks of *one* recording and shows every chunk the
same prompt; here every request is a different stream with its own prompt and options, so the
batch is built directly on CTranslate2 (``Whisper.encode`` on the stacked features,
``Whisper.generate`` with one prompt per request, ``Whisper.align`` through faster-whisper's
``add_word_timestamps`` for the word times).

CTranslate2 needs the start-of-transcript token at the same position in every prompt of a
batch, so prompts are cut to their last ``PROMPT_TOKENS`` tokens and requests are grouped by
prompt length (in steady state nearly every prompt is that long: one group).

Each request is decoded as one window without timestamp tokens (turns are short); requests
longer than one window, and any whose text looks like a repetition loop, fall back to
``WhisperEngine.transcribe_turn`` (the loop-guarded single-stream path). Requests with different
options (greedy partials, beam-search finals) go in separate generate calls.

On CPU this path is correct but does not pay (measured: docs/results/streaming.md); use
:class:`asr.streaming.WhisperTurnDecoder` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from asr.engine import SAMPLE_RATE, WINDOW_SECONDS, WhisperEngine
from asr.loops import loops_under
from asr.turn_decoding import DecodeRequest, WhisperTurnDecoder
from asr.types import AsrOptions, Word
from asr.words import from_pieces

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["PROMPT_TOKENS", "BatchedWhisperDecoder"]

PROMPT_TOKENS = 32
"""Prompt tokens kept per request (about 130 characters of earlier text)."""

_PREPEND = "\"'“¿([{-"  # faster-whisper's defaults for attaching punctuation to words
_APPEND = "\"'.。,，!！?？:：”)]}、"


class BatchedWhisperDecoder(WhisperTurnDecoder):
    """:class:`asr.streaming.TurnDecoder` that decodes a list of requests as one batch."""

    def __init__(
        self,
        engine: WhisperEngine,
        *,
        partial: AsrOptions = AsrOptions(beam_size=1),  # noqa: B008 - frozen
        final: AsrOptions = AsrOptions(beam_size=1),  # noqa: B008 - frozen
    ) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        super().__init__(engine, partial=partial, final=final)
        self.engine: WhisperEngine = engine
        model = self._model
        self._tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
            language=final.language or "en",
        )  # fmt: skip
        self._suppress = get_suppressed_tokens(self._tokenizer, (-1,))

    @property
    def _model(self) -> WhisperModel:
        return self.engine._model  # the engine owns the one loaded model

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        """Words of every request (relative times), decoded in as few model calls as possible."""
        out: list[list[Word] | None] = [None] * len(requests)
        groups: dict[tuple[bool, int], list[int]] = {}
        prompts = [self._prompt(r.prompt) for r in requests]
        for i, request in enumerate(requests):
            if len(request.audio) > WINDOW_SECONDS * SAMPLE_RATE:
                out[i] = self._single(request)
            elif len(request.audio):
                groups.setdefault((request.final, len(prompts[i])), []).append(i)
            else:
                out[i] = []
        for (final, _), indices in groups.items():
            options = self.final_options if final else self.partial_options
            batch = [requests[i] for i in indices]
            words = self._batch(batch, [prompts[i] for i in indices], options)
            for i, w in zip(indices, words, strict=True):
                out[i] = w if w is not None else self._single(requests[i])
        return [w if w is not None else [] for w in out]

    def _single(self, request: DecodeRequest) -> list[Word]:
        options = self.final_options if request.final else self.partial_options
        result = self.engine.transcribe_turn(request.audio, options, prompt=request.prompt)
        return list(result.words)

    def _batch(
        self, requests: Sequence[DecodeRequest], prompts: list[list[int]], options: AsrOptions
    ) -> list[list[Word] | None]:
        """One encode + generate (+ align) for ``requests``; ``None`` marks a looping result."""
        from faster_whisper.audio import pad_or_trim

        model, tokenizer = self._model, self._tokenizer
        extractor = model.feature_extractor
        frames = [len(r.audio) // extractor.hop_length for r in requests]
        features = np.stack([pad_or_trim(extractor(r.audio)) for r in requests])
        encoded = model.encode(features)
        results = model.model.generate(
            encoded,
            prompts,
            beam_size=options.beam_size,
            max_length=model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )
        segments, sizes, keep = [], [], []
        for result, size in zip(results, frames, strict=True):
            tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
            if _is_silence(result, len(tokens), options):
                tokens = []
            text = tokenizer.decode(tokens)
            keep.append(not loops_under(text, options))
            seconds = size / model.frames_per_second
            segments.append([dict(seek=0, start=0.0, end=seconds, tokens=tokens, text=text)])
            sizes.append(size)
        if options.word_timestamps:
            model.add_word_timestamps(
                segments, tokenizer, encoded, sizes, _PREPEND, _APPEND, last_speech_timestamp=0.0
            )
        return [
            _words(segment[0]) if ok else None for segment, ok in zip(segments, keep, strict=True)
        ]

    def _prompt(self, text: str | None) -> list[int]:
        previous = self._tokenizer.encode(" " + text.strip())[-PROMPT_TOKENS:] if text else []
        return list(self._model.get_prompt(self._tokenizer, previous, without_timestamps=True))


def _is_silence(result: Any, length: int, options: AsrOptions) -> bool:
    """Whisper's no-speech rule: high no-speech probability and a low average log-probability."""
    avg_logprob = result.scores[0] * length / (length + 1) if length else -np.inf
    return bool(
        result.no_speech_prob > options.no_speech_threshold
        and avg_logprob < options.log_prob_threshold
    )


def _words(segment: dict[str, Any]) -> list[Word]:
    """Our words from faster-whisper's aligned pieces, as :func:`asr.engine._to_segment` makes
    them (an attached piece keeps ``leading_space=False``; punctuation-only pieces are no words)."""
    return from_pieces(
        (w["word"], float(w["start"]), float(w["end"]), float(w["probability"]))
        for w in segment.get("words", [])
    )
