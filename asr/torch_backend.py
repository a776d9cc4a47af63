"""Batched Whisper decoding on torch: many streams' turns in one encoder pass and one decode loop.

:class:`TorchWhisperDecoder` implements :class:`asr.streaming.TurnDecoder`, so the live path's
:class:`voice.live.scheduler.DecodeScheduler` (``max_batch`` > 1: finals first, then the least
recently served partials) hands it every pending request at once. One ``decode_batch`` call:

1. log-mel features of every request (each padded to the 30 s window, as faster-whisper does),
   one encoder pass over the whole batch, cross-attention keys/values once per layer;
2. greedy decoding of all rows together with a preallocated KV cache: each row has its own
   prompt (left-padded, masked), its own token budget, and rows whose text ended are dropped
   from the cache once they are half of the batch (``compact_below``);
3. Whisper's no-speech rule per row; rows whose text is a repetition loop are decoded again
   without prompt, with a repetition penalty and a no-repeat n-gram ban;
4. word times by cross-attention DTW over the model's alignment heads (:mod:`asr.word_timing`),
   again batched: word-level, not segment-level, since LocalAgreement compares word times.

Decoding is greedy for partials and finals alike (``AsrOptions.beam_size`` is not used here) and
deterministic for a given batch; float16 on CUDA can make a row's text depend on which other
rows share its batch in rare near-ties. Requests longer than one window are cut into 30 s windows.
Weights come from a CTranslate2 model directory (converted in memory) or a transfer file
(:func:`asr.ct2_convert.save_transfer`), so no CTranslate2 runtime is needed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from asr.ct2_convert import WhisperDims, WhisperWeights, load_transfer, read_ct2_model
from asr.loops import is_repetition_loop, most_repeated_ngram
from asr.models import resolve_whisper_model
from asr.streaming import DecodeRequest
from asr.torch_greedy import Decoded, GreedyRows, Vocab, greedy_decode
from asr.torch_whisper import (
    HOP,
    N_FRAMES,
    SAMPLE_RATE,
    CrossKV,
    KVCache,
    WhisperTorch,
    log_mel_batch,
    mel_filters,
)
from asr.types import AsrError, AsrOptions, Word
from asr.word_timing import WhisperTokens, alignment_matrix, dtw_jumps, timed_words

__all__ = ["TorchBackendConfig", "TorchWhisperDecoder", "WindowResult"]

_WINDOW = N_FRAMES * HOP  # samples in one 30 s window
_WORD = re.compile(r"[\w']+")  # asr.loops' notion of a word


@dataclass(frozen=True)
class TorchBackendConfig:
    """Device, precision and batching of a :class:`TorchWhisperDecoder`."""

    device: str = "auto"
    """``cuda``, ``cpu`` or ``auto`` (CUDA when available)."""
    dtype: str = "auto"
    """``float16``, ``bfloat16``, ``float32`` or ``auto`` (float16 on CUDA, float32 on CPU)."""
    max_rows: int = 256
    """Windows per encoder pass and decode loop; larger batches are split (GPU memory)."""
    prompt_tokens: int = 223
    """Previous-text tokens kept per prompt (faster-whisper's ``max_length // 2 - 1``)."""
    max_new_tokens: int = 224
    """Text tokens per window at most (CTranslate2's ``max_length / 2``)."""
    tokens_per_second: float = 12.0
    """A row also stops after ``8 + tokens_per_second * seconds`` tokens: speech never needs
    that many, a repetition loop is cut early instead of running to 224 tokens."""
    compact_below: float = 0.5
    """Drop finished rows from the KV cache once the running ones are fewer than this share."""
    align_rows: int = 128
    """Rows per word-alignment pass (its median filter holds up to rows x heads x tokens x
    frames x 7 floats: 2.6 GB at 128 rows of 60 tokens over 30 s with tiny.en's 8 heads)."""


@dataclass(frozen=True)
class WindowResult:
    """One decoded window: its text tokens, what Whisper's filters look at, and the words."""

    tokens: list[int]
    """Text tokens (no special or timestamp tokens)."""
    token_probs: list[float]
    """Probability of each text token among the text tokens."""
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)
    """Words with times relative to the window start (empty without word timestamps)."""
    redecoded: bool = False
    """The first pass looped and this is the anti-loop decode."""


class TorchWhisperDecoder:
    """:class:`asr.streaming.TurnDecoder` on torch; see the module docstring.

    Thread-safe: the model is only read, so several scheduler workers may decode at once (one
    batch's host work then overlaps another's GPU work).
    """

    def __init__(
        self,
        weights: WhisperWeights,
        config: TorchBackendConfig = TorchBackendConfig(),  # noqa: B008 - frozen
        *,
        partial: AsrOptions = AsrOptions(beam_size=1),  # noqa: B008 - frozen
        final: AsrOptions = AsrOptions(beam_size=1),  # noqa: B008 - frozen
    ) -> None:
        self.config = config
        self.device = _device(config.device)
        self.dtype = _dtype(config.dtype, self.device)
        self.partial_options = partial
        self.final_options = final
        self.model = WhisperTorch.from_weights(weights, self.device, self.dtype)
        self.dims = weights.dims
        multilingual = weights.dims.n_vocab >= 51865
        self.tokens = WhisperTokens(
            weights.tokenizer_json, multilingual=multilingual, language=final.language or "en"
        )
        self._filters = torch.from_numpy(mel_filters(self.dims.n_mels)).to(self.device)
        size = self.dims.n_vocab
        self._vocab = Vocab(
            eot=self.tokens.eot,
            no_speech=self.tokens.no_speech,
            sot_offset=len(self.tokens.sot_sequence) + 1,
            suppress=_mask(self.tokens.suppressed, size, self.device),
            suppress_begin=_mask(weights.config.get("suppress_ids_begin", []), size, self.device),
        )
        self._align_heads: dict[int, list[int]] = {}
        for layer, head in weights.config.get("alignment_heads") or _default_heads(self.dims):
            self._align_heads.setdefault(int(layer), []).append(int(head))

    @classmethod
    def load(
        cls,
        model: str | Path = "tiny.en",
        config: TorchBackendConfig = TorchBackendConfig(),  # noqa: B008 - frozen
        **options: AsrOptions,
    ) -> TorchWhisperDecoder:
        """Load a transfer file (``*.safetensors``), a CTranslate2 directory or a model name.

        Raises:
            asr.models.ModelNotFoundError: the name or path does not resolve.
            AsrError: the device is not available.
        """
        path = Path(model)
        if path.suffix == ".safetensors":
            weights = load_transfer(path)
        else:
            weights = read_ct2_model(resolve_whisper_model(str(model)))
        return cls(weights, config, **options)

    # --- TurnDecoder ------------------------------------------------------------------------

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        """Words of every request (times relative to its first sample), decoded together."""
        windows: list[tuple[int, float, np.ndarray, str | None, AsrOptions]] = []
        for index, request in enumerate(requests):
            options = self.final_options if request.final else self.partial_options
            for start in range(0, len(request.audio), _WINDOW):
                prompt = request.prompt if start == 0 else None
                chunk = request.audio[start : start + _WINDOW]
                windows.append((index, start / SAMPLE_RATE, chunk, prompt, options))
        results = self.transcribe_windows(
            [w[2] for w in windows], [w[3] for w in windows], [w[4] for w in windows]
        )
        out: list[list[Word]] = [[] for _ in requests]
        for (index, offset, _, _, _), result in zip(windows, results, strict=True):
            out[index].extend(_shift(result.words, offset) if offset else result.words)
        return out

    # --- windows ------------------------------------------------------------------------------

    def transcribe_windows(
        self,
        audios: Sequence[np.ndarray],
        prompts: Sequence[str | None],
        options: Sequence[AsrOptions],
    ) -> list[WindowResult]:
        """Decode clips of at most 30 s (16 kHz float32), each with its prompt and options."""
        results: list[WindowResult] = []
        step = max(1, self.config.max_rows)
        with torch.inference_mode():
            for start in range(0, len(audios), step):
                stop = start + step
                results.extend(
                    self._chunk(audios[start:stop], prompts[start:stop], options[start:stop])
                )
        return results

    def _chunk(
        self,
        audios: Sequence[np.ndarray],
        prompts: Sequence[str | None],
        options: Sequence[AsrOptions],
    ) -> list[WindowResult]:
        results = [_EMPTY] * len(audios)
        live = [i for i, audio in enumerate(audios) if len(audio) >= HOP]
        if not live:
            return results
        clips = [np.asarray(audios[i], dtype=np.float32) for i in live]
        opts = [options[i] for i in live]
        features, frames = log_mel_batch(clips, self._filters, self.device)
        cross = self.model.decoder.cross_kv(self.model.encoder(features.to(self.dtype)))
        seconds = [len(c) / SAMPLE_RATE for c in clips]
        budgets = [self._budget(s) for s in seconds]
        rows = GreedyRows(
            [self.tokens.prompt(prompts[i], self.config.prompt_tokens) for i in live], budgets
        )
        chosen = [self._window(d, o) for d, o in zip(self._greedy(cross, rows), opts, strict=True)]
        looping = [k for k, r in enumerate(chosen) if r is None]
        if looping:
            first = opts[looping[0]]
            retry = GreedyRows(
                [self.tokens.prompt(None, 0)] * len(looping),
                [budgets[k] for k in looping],
                penalty=first.loop_repetition_penalty,
                no_repeat=first.loop_no_repeat_ngram_size,
            )
            for k, decoded in zip(
                looping, self._greedy(_subset(cross, looping), retry), strict=True
            ):
                redone = self._window(decoded, opts[k], retry=True)
                chosen[k] = _cut_loop(redone, opts[k], self.tokens)
        timed = self._with_words(cross, chosen, [f // 2 for f in frames], seconds, opts)
        for k, i in enumerate(live):
            results[i] = timed[k]
        return results

    def _budget(self, seconds: float) -> int:
        by_rate = 8 + math.ceil(self.config.tokens_per_second * seconds)
        return max(1, min(self.config.max_new_tokens, by_rate))

    def _greedy(self, cross: CrossKV, rows: GreedyRows) -> list[Decoded]:
        return greedy_decode(
            self.model.decoder,
            cross,
            rows,
            self._vocab,
            max_context=self.dims.n_text_ctx,
            compact_below=self.config.compact_below,
        )

    def _window(
        self, decoded: Decoded, options: AsrOptions, *, retry: bool = False
    ) -> WindowResult | None:
        """Apply the no-speech rule; ``None`` for a repetition loop (first pass only)."""
        avg = decoded.sum_logprob / decoded.length if decoded.length else -math.inf
        if (
            decoded.no_speech_prob > options.no_speech_threshold
            and avg < options.log_prob_threshold
        ):
            return WindowResult([], [], "", avg, decoded.no_speech_prob, redecoded=retry)
        keep = [k for k, t in enumerate(decoded.tokens) if t < self.tokens.eot]
        tokens = [decoded.tokens[k] for k in keep]
        text = self.tokens.decode(tokens).strip()
        result = WindowResult(
            tokens,
            [decoded.text_probs[k] for k in keep],
            text,
            avg,
            decoded.no_speech_prob,
            redecoded=retry,
        )
        if not retry and _loops(text, options):
            return None
        return result

    # --- word times ---------------------------------------------------------------------------

    def _with_words(
        self,
        cross: CrossKV,
        chosen: list[WindowResult | None],
        frames: list[int],
        seconds: list[float],
        options: list[AsrOptions],
    ) -> list[WindowResult]:
        done = [c if c is not None else _EMPTY for c in chosen]
        todo = [k for k, r in enumerate(done) if r.tokens and options[k].word_timestamps]
        step = max(1, self.config.align_rows)
        for start in range(0, len(todo), step):
            part = todo[start : start + step]
            texts = [done[k].tokens for k in part]
            jumps = self._align(_subset(cross, part), texts, [frames[k] for k in part])
            for k, jump in zip(part, jumps, strict=True):
                probs = np.asarray(done[k].token_probs, dtype=np.float64)
                words = timed_words(self.tokens, done[k].tokens, jump, probs, seconds[k])
                done[k] = replace(done[k], words=words)
        return done

    def _align(self, cross: CrossKV, texts: list[list[int]], frames: list[int]) -> list[np.ndarray]:
        """DTW jumps of each text over its audio (teacher-forced, unprompted, as CTranslate2)."""
        device = self.device
        sot = [*self.tokens.sot_sequence, self.tokens.no_timestamps]
        inputs = [[*sot, *t, self.tokens.eot] for t in texts]
        width = max(len(i) for i in inputs)
        tokens = torch.full((len(inputs), width), self.tokens.eot, dtype=torch.long)
        for r, seq in enumerate(inputs):
            tokens[r, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        cache = KVCache.empty(self.dims, len(inputs), width, cross[0][0])
        mask = torch.ones(width, width, dtype=torch.bool, device=device).tril()[None, None]
        positions = torch.arange(width, device=device)[None, :].expand(len(inputs), -1)
        _, logits = self.model.decoder(
            tokens.to(device), positions, cache, 0, mask, cross, self._align_heads
        )
        frames = [max(1, f) for f in frames]
        matrix = alignment_matrix(
            torch.cat(logits, dim=1),
            torch.tensor([len(i) for i in inputs], device=device),
            torch.tensor(frames, device=device),
            len(sot) - 1,
        )
        return dtw_jumps(matrix, [len(t) + 1 for t in texts], frames)


_EMPTY = WindowResult([], [], "", 0.0, 0.0)


def _subset(cross: CrossKV, rows: list[int]) -> CrossKV:
    if rows == list(range(cross[0][0].shape[0])):
        return cross
    index = torch.tensor(rows, device=cross[0][0].device)
    return [(k[index], v[index]) for k, v in cross]


def _loops(text: str, options: AsrOptions) -> bool:
    return is_repetition_loop(
        text,
        max_compression_ratio=options.loop_compression_ratio,
        ngram_size=options.loop_ngram_size,
        max_ngram_repeats=options.loop_ngram_repeats,
    )


def _cut_loop(
    result: WindowResult | None, options: AsrOptions, tokens: WhisperTokens
) -> WindowResult | None:
    """An anti-loop decode that still loops keeps its words up to the second occurrence of its
    most repeated phrase (the engine's last resort drops repeated lines the same way)."""
    if result is None or not _loops(result.text, options):
        return result
    gram, _ = most_repeated_ngram(result.text, options.loop_ngram_size)
    words, groups = tokens.split_words(result.tokens)
    flat = [(g, w) for g, word in enumerate(words) for w in _WORD.findall(word.lower())]
    seen = 0
    for i in range(len(flat) - len(gram) + 1):
        if gram and tuple(w for _, w in flat[i : i + len(gram)]) == gram:
            seen += 1
            if seen == 2:
                kept = [t for group in groups[: flat[i][0]] for t in group]
                text = tokens.decode(kept).strip()
                return replace(
                    result, tokens=kept, token_probs=result.token_probs[: len(kept)], text=text
                )
    return replace(result, tokens=[], token_probs=[], text="")


def _shift(words: list[Word], seconds: float) -> list[Word]:
    return [
        replace(w, start=round(w.start + seconds, 3), end=round(w.end + seconds, 3)) for w in words
    ]


def _mask(ids: Sequence[int], size: int, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool)
    mask[[i for i in ids if 0 <= i < size]] = True
    return mask.to(device)


def _default_heads(dims: WhisperDims) -> list[tuple[int, int]]:
    """CTranslate2's default when a model lists no alignment heads: the last half of the layers."""
    half = dims.n_text_layer // 2
    return [
        (layer, head)
        for layer in range(half, dims.n_text_layer)
        for head in range(dims.n_text_head)
    ]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AsrError(
            "device='cuda' but torch sees no CUDA GPU", hint="use device='cpu' or 'auto'"
        )
    return torch.device(name)


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if name not in dtypes:
        raise AsrError(f"unknown dtype {name!r}", hint=f"use one of {sorted(dtypes)} or 'auto'")
    return dtypes[name]
