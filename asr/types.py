"""Data in and out of the ASR engine: options, words, segments, transcriptions, errors.

Plain frozen dataclasses with no behaviour beyond small views, so the pipeline can turn them into
frames and the evaluation can compare them without importing faster-whisper.
"""

from __future__ import annotations

from dataclasses import dataclass


class AsrError(Exception):
    """Base of the engine's errors: a message plus a hint saying what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class AsrInputError(AsrError):
    """The audio or the speech regions handed to the engine are not in the expected form."""


@dataclass(frozen=True)
class AsrOptions:
    """How to decode; recorded in every :class:`Transcription`.

    Decoding is always greedy-deterministic (temperature 0, never sampling), so the same audio
    gives the same text on every run; repetition loops are caught and re-decoded instead.
    """

    language: str | None = "en"
    """Spoken language code; ``None`` lets Whisper detect it (slower; English-only models
    ignore it)."""

    beam_size: int = 5
    """Beam width; 1 is greedy (fastest, for live partials), 5 is Whisper's batch default."""

    word_timestamps: bool = True
    """Align each word to the audio (cross-attention + DTW); needed for speaker attribution."""

    initial_prompt: str | None = None
    """Text shown to the decoder as if it preceded the audio (vocabulary, names, prior turn)."""

    condition_on_previous_text: bool = False
    """Prompt each 30 s window with the previous window's text. Off by default: a looping
    window then poisons every later one (measured on the telephone sample, see
    docs/results/asr_loops.md); when on, the prompt is dropped for a window that looped."""

    loop_compression_ratio: float = 2.4
    """A window whose text gzip-compresses better than this is a repetition loop (Whisper's own
    threshold for its temperature fallback)."""

    loop_ngram_size: int = 3
    """Word n-gram length used by the second loop test (repeated phrases within a window)."""

    loop_ngram_repeats: int = 4
    """A window in which one ``loop_ngram_size``-gram occurs this often is a repetition loop.
    Legitimate speech rarely repeats a 3-word phrase 4 times in 30 s; loops repeat it 8+ times."""

    loop_repetition_penalty: float = 1.1
    """Penalty on already generated tokens when a looping window is re-decoded (1 = none).
    measured (base, telephone sample, docs/results/asr_loops.md): 1.3 garbled the re-decoded
    text (42.5 % WER), 1.1 did not (16.1 %, as good as the best decoder there)."""

    loop_no_repeat_ngram_size: int = 4
    """When re-decoding a looping window, forbid repeating any token n-gram of this size."""

    no_speech_threshold: float = 0.6
    """With a low log-probability (below ``log_prob_threshold``), a window whose no-speech
    probability exceeds this is skipped as silence."""

    log_prob_threshold: float = -1.0
    """Average token log-probability under which a window may be treated as silence."""

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise AsrInputError(f"beam_size must be >= 1, not {self.beam_size}", hint="use 1 or 5")
        if self.loop_ngram_size < 1 or self.loop_ngram_repeats < 2:
            raise AsrInputError(
                "loop_ngram_size must be >= 1 and loop_ngram_repeats >= 2",
                hint="the defaults (3, 4) catch real loops without flagging normal speech",
            )


@dataclass(frozen=True)
class Word:
    """One recognised word; times in seconds of the caller's audio."""

    text: str
    start: float
    end: float
    probability: float
    leading_space: bool = True
    """Whether Whisper wrote the word with a leading space. False for a piece attached to the
    word before it (".m." after "p", "-Fi." after "Wi"): ``asr.words.join_words`` then writes
    no space between them."""


@dataclass(frozen=True)
class Segment:
    """A stretch of decoded text with its words and Whisper's confidence figures."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass(frozen=True)
class Transcription:
    """The engine's result for one piece of audio, with the options that produced it."""

    segments: tuple[Segment, ...]
    language: str
    duration: float
    """Length of the audio handed in, in seconds (not only the decoded speech)."""
    options: AsrOptions
    loops_redecoded: int = 0
    """How many 30 s windows looped and were decoded again with the anti-loop settings."""

    @property
    def text(self) -> str:
        """All segment texts joined with single spaces."""
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def words(self) -> tuple[Word, ...]:
        """All words in time order."""
        return tuple(w for s in self.segments for w in s.words)
