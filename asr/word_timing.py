"""Whisper tokens and word timing for the torch backend: tokenizer, batched DTW, word assembly.

Word times follow faster-whisper 1.2.1 (``find_alignment`` over CTranslate2's
``WhisperReplica::align``, then ``add_word_timestamps``): the text is run through the decoder once
more, teacher-forced after ``<|startoftranscript|><|notimestamps|>`` (no prompt); the
cross-attention logits of the model's alignment heads are soft-maxed over the clip's own frames,
normalised over the token axis, median-filtered (width 7, reflected edges) along time, averaged
over heads, and aligned by dynamic time warping; a word starts at the frame where the path enters
its first token. Then: long words at sentence ends are clipped to twice the median word length,
punctuation is merged into neighbouring words, and the first word after a long silence is
clipped as faster-whisper does for a window that starts at 0 s.

The DTW runs batched on the model's device: each cost row is one cumulative-minimum scan
(``cost[i, j] = S[j] + cummin_k(a[k] - S[k-1])`` with ``S`` the prefix sums of the row and ``a``
the best of the two cells above), and the back-trace visits one row per step. It is the same
recurrence and tie-breaking as Whisper's ``dtw_cpu`` (diagonal, then up, then left).
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from asr.types import Word
from asr.words import from_pieces

__all__ = ["WhisperTokens", "dtw_jumps", "timed_words"]

TOKENS_PER_SECOND = 50
"""Encoder frames per second (the second convolution halves the 100 mel frames per second)."""
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
_SENTENCE_END = ".。!！?？"
_MEDIAN_WIDTH = 7


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: printable stand-in character -> byte."""
    visible = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(visible)
    extra = 0
    for byte in range(256):
        if byte not in visible:
            visible.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(visible, chars, strict=True)}


class WhisperTokens:
    """Whisper's special tokens, prompt building and word splitting over a ``tokenizer.json``.

    Text decoding uses a byte table built from the vocabulary (no per-call tokenizer round trip:
    word splitting decodes every token of every request).
    """

    def __init__(self, tokenizer_json: str, *, multilingual: bool, language: str = "en") -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        spec = json.loads(tokenizer_json)
        self._special = {t["content"]: int(t["id"]) for t in spec.get("added_tokens", [])}
        decoder = _byte_decoder()
        vocab: dict[str, int] = spec["model"]["vocab"]
        self._bytes: dict[int, bytes] = {
            i: bytes(decoder[c] for c in token) for token, i in vocab.items() if i < self.eot
        }
        self.multilingual = multilingual
        self.language = language
        """Language code of the prompts (English-only models ignore it)."""

    def special(self, token: str) -> int:
        """Id of a special token such as ``<|notimestamps|>``.

        Raises:
            KeyError: the model has no such token.
        """
        return self._special[token]

    @cached_property
    def eot(self) -> int:
        """``<|endoftext|>``: ids at or above it are not text."""
        return self.special("<|endoftext|>")

    @cached_property
    def sot(self) -> int:
        """``<|startoftranscript|>``."""
        return self.special("<|startoftranscript|>")

    @cached_property
    def no_timestamps(self) -> int:
        """``<|notimestamps|>``."""
        return self.special("<|notimestamps|>")

    @cached_property
    def no_speech(self) -> int:
        """``<|nospeech|>`` (``<|nocaptions|>`` in older vocabularies)."""
        return self._special.get("<|nospeech|>", self._special.get("<|nocaptions|>", -1))

    @cached_property
    def sot_sequence(self) -> list[int]:
        """``<|startoftranscript|>`` (+ language and task for multilingual models)."""
        if not self.multilingual:
            return [self.sot]
        return [self.sot, self.special(f"<|{self.language}|>"), self.special("<|transcribe|>")]

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of the text tokens among ``tokens``."""
        raw = b"".join(self._bytes.get(t, b"") for t in tokens if t < self.eot)
        return raw.decode("utf-8", errors="replace")

    def prompt(self, previous: str | None, max_previous: int) -> list[int]:
        """``[<|startofprev|> previous...] sot_sequence <|notimestamps|>`` (faster-whisper's
        ``get_prompt`` without timestamps), keeping the last ``max_previous`` previous tokens."""
        tokens: list[int] = []
        if previous and previous.strip() and max_previous > 0:
            tokens = [
                self.special("<|startofprev|>"),
                *self.encode(" " + previous.strip())[-max_previous:],
            ]
        return [*tokens, *self.sot_sequence, self.no_timestamps]

    @cached_property
    def suppressed(self) -> list[int]:
        """faster-whisper's ``get_suppressed_tokens(tokenizer, [-1])``: non-speech symbols and
        the task/control tokens."""
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + sorted(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        for name in (
            "<|transcribe|>",
            "<|translate|>",
            "<|startoftranscript|>",
            "<|startofprev|>",
            "<|startoflm|>",
        ):
            result.add(self._special[name])
        if self.no_speech >= 0:
            result.add(self.no_speech)
        return sorted(result)

    def split_words(self, tokens: Sequence[int]) -> tuple[list[str], list[list[int]]]:
        """faster-whisper's ``split_tokens_on_spaces``: tokens grouped into words (a word starts
        at a token beginning with a space, at punctuation, and at special tokens)."""
        words: list[str] = []
        groups: list[list[int]] = []
        for text, group in zip(*self._split_unicode(tokens), strict=True):
            special = group[0] >= self.eot
            if special or text.startswith(" ") or text.strip() in string.punctuation or not words:
                words.append(text)
                groups.append(group)
            else:
                words[-1] += text
                groups[-1].extend(group)
        return words, groups

    def _split_unicode(self, tokens: Sequence[int]) -> tuple[list[str], list[list[int]]]:
        texts: list[str] = []
        groups: list[list[int]] = []
        pending: list[int] = []
        raw = b""
        for token in tokens:
            pending.append(token)
            if token >= self.eot:
                texts.append("<|special|>")
                groups.append(pending)
                pending, raw = [], b""
                continue
            raw += self._bytes.get(token, b"")
            try:
                texts.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                continue  # a character split across tokens: wait for its last byte
            groups.append(pending)
            pending, raw = [], b""
        if pending:
            texts.append(raw.decode("utf-8", errors="replace"))
            groups.append(pending)
        return texts, groups


# --- alignment ----------------------------------------------------------------------------------


def alignment_matrix(
    logits: torch.Tensor, token_counts: torch.Tensor, frames: torch.Tensor, sot_length: int
) -> torch.Tensor:
    """The DTW input of each request from its heads' cross-attention logits.

    Args:
        logits: (B, heads, T, F) scaled cross-attention logits of the alignment heads for the
            teacher-forced input ``sot_sequence, notimestamps, text..., eot`` (right-padded).
        token_counts: (B,) input length of each row (text length + sot_length + 2).
        frames: (B,) encoder frames of each row's audio (>= 1).
        sot_length: length of the sot sequence.

    Returns:
        (B, T - sot_length, F) float64: row ``i`` is the frame profile of text token ``i`` (the
        last valid row is the end of text); padding rows and frames are zero.
    """
    b, _, t, f = logits.shape
    device = logits.device
    frame_ok = torch.arange(f, device=device)[None, :] < frames[:, None]  # (B, F)
    token_ok = torch.arange(t, device=device)[None, :] < token_counts[:, None]  # (B, T)
    probs = logits.masked_fill(~frame_ok[:, None, None, :], -torch.inf).softmax(dim=-1)
    probs = probs.masked_fill(~token_ok[:, None, :, None], 0.0)
    count = token_counts.to(probs.dtype)[:, None, None, None]
    mean = probs.sum(dim=2, keepdim=True) / count
    var = ((probs - mean).square() * token_ok[:, None, :, None]).sum(dim=2, keepdim=True) / count
    normed = (probs - mean) / var.sqrt().clamp_min(1e-12)
    filtered = _median_filter(normed, frames)
    matrix = filtered.mean(dim=1).double()[:, sot_length:]
    rows_ok = token_ok[:, sot_length:] & (
        torch.arange(t - sot_length, device=device)[None, :]
        < (token_counts - sot_length - 1)[:, None]
    )
    return matrix.masked_fill(~(rows_ok[:, :, None] & frame_ok[:, None, :]), 0.0)


def _median_filter(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Median over 7 frames along the last axis, each row reflected at its own last frame
    (CTranslate2's ``MedianFilter``; rows of 3 frames or fewer are left as they are)."""
    rank = _MEDIAN_WIDTH // 2
    f = x.shape[-1]
    offsets = torch.arange(-rank, f + rank, device=x.device)[None, :]  # (1, F + 6)
    length = frames[:, None]
    index = offsets.abs()
    index = torch.where(index >= length, 2 * length - index - 2, index).clamp(0, f - 1)
    gathered = torch.gather(
        x, 3, index[:, None, None, :].expand(x.shape[0], x.shape[1], x.shape[2], -1)
    )
    filtered = gathered.unfold(3, _MEDIAN_WIDTH, 1).median(dim=-1).values
    short = (frames <= rank)[:, None, None, None]
    return torch.where(short, x, filtered)


def dtw_jumps(matrix: torch.Tensor, rows: Sequence[int], cols: Sequence[int]) -> list[np.ndarray]:
    """Frame at which each row's DTW path starts, for each request (DTW of ``-matrix``).

    Args:
        matrix: (B, N, M) alignment matrices (padding beyond ``rows``/``cols`` is ignored).
        rows: valid rows per request (text tokens + 1).
        cols: valid frames per request.
    """
    x = -matrix
    b, n, m = x.shape
    device = x.device
    inf = torch.full((b, 1), torch.inf, dtype=x.dtype, device=device)
    previous = torch.cat([torch.zeros_like(inf), inf.expand(b, m)], dim=1)  # cost row 0
    starts = torch.empty((b, n, m + 1), dtype=torch.int32, device=device)
    diagonal = torch.empty((b, n, m + 1), dtype=torch.bool, device=device)
    columns = torch.arange(m + 1, dtype=torch.int32, device=device)[None, :]
    for i in range(n):
        prefix = torch.nn.functional.pad(torch.cumsum(x[:, i], dim=1), (1, 0))  # S[0..M]
        best_above = torch.minimum(previous[:, :-1], previous[:, 1:])  # a[1..M]
        scan = torch.cummin(best_above - prefix[:, :-1], dim=1).values
        current = torch.cat([inf, prefix[:, 1:] + scan], dim=1)
        c0 = torch.cat([inf, previous[:, :-1]], dim=1)
        c2 = torch.cat([inf, current[:, :-1]], dim=1)
        is_diag = (c0 < previous) & (c0 < c2)
        is_up = (previous < c0) & (previous < c2)
        not_left = is_diag | is_up
        not_left[:, 0] = True
        starts[:, i] = torch.cummax(torch.where(not_left, columns, 0), dim=1).values
        diagonal[:, i] = is_diag
        previous = current
    return _backtrace(starts, diagonal, rows, cols)


def _backtrace(
    starts: torch.Tensor, diagonal: torch.Tensor, rows: Sequence[int], cols: Sequence[int]
) -> list[np.ndarray]:
    """Walk every request's path back one row per step (batched; only the jumps leave the
    device)."""
    b, n, _ = starts.shape
    device = starts.device
    counts = torch.tensor(list(rows), device=device)
    j = torch.tensor(list(cols), dtype=torch.int64, device=device)
    batch = torch.arange(b, device=device)
    jumps = torch.zeros((b, n), dtype=torch.int64, device=device)
    for i in range(n - 1, -1, -1):
        active = i < counts
        c = starts[batch, i, j].long()
        jumps[:, i] = torch.where(active, c - 1, 0)
        j = torch.where(active, c - diagonal[batch, i, c].long(), j)
    host = jumps.cpu().numpy()
    return [host[k, : rows[k]] for k in range(b)]


# --- words --------------------------------------------------------------------------------------


@dataclass
class _Timing:
    """A word of the alignment while faster-whisper's fix-ups edit it."""

    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def timed_words(
    tokens: WhisperTokens,
    text_tokens: list[int],
    jumps: np.ndarray,
    token_probs: np.ndarray,
    duration: float,
) -> list[Word]:
    """Words with times (seconds from the clip start) from one request's DTW jumps."""
    words, groups = tokens.split_words([*text_tokens, tokens.eot])
    if len(groups) <= 1:
        return []
    bounds = np.pad(np.cumsum([len(g) for g in groups[:-1]]), (1, 0))
    times = jumps / TOKENS_PER_SECOND
    alignment = [
        _Timing(word, group, float(times[s]), float(times[e]), float(np.mean(token_probs[s:e])))
        for word, group, s, e in zip(words, groups, bounds[:-1], bounds[1:], strict=False)
    ]
    median, longest = _clip_sentence_ends(alignment)
    _merge_punctuations(alignment)
    kept = [a for a in alignment if a.word]
    if kept:
        _clip_first_words(kept, median, longest, duration)
    return from_pieces((a.word, round(a.start, 2), round(a.end, 2), a.probability) for a in kept)


def _clip_sentence_ends(alignment: list[_Timing]) -> tuple[float, float]:
    durations = np.array([a.end - a.start for a in alignment])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    longest = median * 2
    if len(durations):
        for previous, current in zip(alignment, alignment[1:], strict=False):
            if current.end - current.start > longest:
                if current.word in _SENTENCE_END:
                    current.end = current.start + longest
                elif previous.word in _SENTENCE_END:
                    current.start = current.end - longest
    return median, longest


def _merge_punctuations(alignment: list[_Timing]) -> None:
    """faster-whisper's ``merge_punctuations`` with its default punctuation sets."""
    i, j = len(alignment) - 2, len(alignment) - 1
    while i >= 0:
        previous, following = alignment[i], alignment[j]
        if previous.word.startswith(" ") and previous.word.strip() in PREPEND_PUNCTUATIONS:
            following.word = previous.word + following.word
            following.tokens = previous.tokens + following.tokens
            previous.word, previous.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        previous, following = alignment[i], alignment[j]
        if not previous.word.endswith(" ") and following.word in APPEND_PUNCTUATIONS:
            previous.word = previous.word + following.word
            previous.tokens = previous.tokens + following.tokens
            following.word, following.tokens = "", []
        else:
            i = j
        j += 1


def _clip_first_words(words: list[_Timing], median: float, longest: float, duration: float) -> None:
    """faster-whisper's segment-boundary clipping for one segment spanning ``[0, duration]``
    with no speech before it."""
    first = words[0]
    if first.end > median * 4 and (
        first.end - first.start > longest
        or (len(words) > 1 and words[1].end - first.start > longest * 2)
    ):
        if len(words) > 1 and words[1].end - words[1].start > longest:
            boundary = max(words[1].end / 2, words[1].end - longest)
            first.end = words[1].start = boundary
        first.start = max(0.0, first.end - longest)
    last = words[-1]
    if duration > last.start and duration + 0.5 < last.end:
        last.end = max(last.start + median, duration)
