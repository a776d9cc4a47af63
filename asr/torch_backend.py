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

Shapes are static (:mod:`asr.torch_shapes`): rows are padded to powers of two, token widths to
multiples of 32, the KV cache has one length, and :meth:`TorchWhisperDecoder.warm_up` runs every
combination once at load, so no request pays a shape's first-use cost (55-100 ms each on the
H200 before this).

Rows whose options ask for a beam (``AsrOptions.beam_size`` > 1, e.g. finals) are beam-searched
(:mod:`asr.torch_beam`), the others decoded greedily. Decoding is deterministic for a given
batch; float16 on CUDA can make a row's text depend on which other rows share its batch in rare
near-ties. Requests longer than one window are cut into 30 s windows.
Weights come from a CTranslate2 model directory (converted in memory) or a transfer file
(:func:`asr.ct2_convert.save_transfer`), so no CTranslate2 runtime is needed.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from asr.ct2_convert import WhisperDims, WhisperWeights, load_transfer, read_ct2_model
from asr.loops import loops_under, most_repeated_ngram
from asr.models import resolve_whisper_model
from asr.policy import shifted
from asr.torch_beam import beam_decode
from asr.torch_graphs import StepGraphPool
from asr.torch_greedy import Decoded, GreedyRows, Vocab, greedy_decode
from asr.torch_profile import PhaseTimer, profile_line
from asr.torch_shapes import ShapePlan
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
from asr.turn_decoding import DecodeRequest
from asr.types import AsrError, AsrOptions, Word
from asr.word_timing import WhisperTokens, alignment_matrix, dtw_jumps, timed_words

__all__ = ["TorchBackendConfig", "TorchWhisperDecoder", "WindowResult"]

_log = logging.getLogger(__name__)
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
    width_step: int = 32
    """Prompt and word-alignment token widths are padded to multiples of this (static shapes)."""
    warm_up: bool | None = None
    """Run every shape bucket once at construction (:meth:`TorchWhisperDecoder.warm_up`);
    ``None``: on CUDA only (on CPU a new shape costs nothing worth a warm-up)."""
    cuda_graphs: bool | None = None
    """Replay each row bucket's decode step as a CUDA graph (:mod:`asr.torch_graphs`), captured
    during :meth:`TorchWhisperDecoder.warm_up`; ``None``: on CUDA with a warm-up. On CPU the
    same buffers are used without capturing (tests)."""
    graph_copies: int = 2
    """Graphs per row bucket: how many decode loops replay at once (one per decoding thread);
    a loop that finds none free runs eagerly. Memory: about 12 MB per row of a bucket with
    tiny.en (cross-attention keys/values and cache), 6 GB for one copy of every bucket to 256."""
    cudnn_attention: bool = False
    """Allow cuDNN's attention kernels (CUDA, process-wide). torch 2.9+ built for CUDA 13 puts
    them first on sm90 (H100/H200) when cuDNN > 9.15; they build and NVRTC-compile a graph per
    (shape, strides, mask) and cache it per thread (aten/src/ATen/native/cudnn/MHA.cpp), which
    fits what the H200 showed: 55-100 ms per new shape, paid again by each decode thread. The
    flash and memory-efficient kernels used instead need no build."""


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
        sot = len(self.tokens.sot_sequence)
        self.shapes = ShapePlan(
            max_rows=max(1, config.max_rows),
            align_rows=max(1, config.align_rows),
            max_prompt=1 + config.prompt_tokens + sot + 1,
            max_align=sot + 1 + config.max_new_tokens + 1,
            max_new_tokens=config.max_new_tokens,
            width_step=config.width_step,
        )
        if self.device.type == "cuda" and not config.cudnn_attention:
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.warm_up_seconds = 0.0
        """Seconds the last :meth:`warm_up` took (0 when none ran)."""
        self.graphs: StepGraphPool | None = None
        """The decode-step graphs, once :meth:`warm_up` (or :meth:`build_graphs`) made them."""
        warm = config.warm_up or (config.warm_up is None and self.device.type == "cuda")
        if warm:
            self.warm_up()
        on_cuda = self.device.type == "cuda"
        if config.cuda_graphs or (config.cuda_graphs is None and warm and on_cuda):
            try:
                self.build_graphs()
            except RuntimeError as exc:  # a capture this torch/driver refuses: decode eagerly
                _log.warning("decode-step CUDA graphs off (%s); decoding eagerly", exc)
                self.graphs = None

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
            out[index].extend(shifted(result.words, offset) if offset else result.words)
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
        timer = PhaseTimer(self.device, len(live))
        clips = [np.asarray(audios[i], dtype=np.float32) for i in live]
        opts = [options[i] for i in live]
        features, frames = log_mel_batch(clips, self._filters, self.device)
        timer.lap("mel")
        cross = self._encode(features)
        timer.lap("encoder", bucket=cross[0][0].shape[0])
        seconds = [len(c) / SAMPLE_RATE for c in clips]
        budgets = [self._budget(s) for s in seconds]
        rows = GreedyRows(
            [self.tokens.prompt(prompts[i], self.config.prompt_tokens) for i in live], budgets
        )
        first_pass = self._first_pass(cross, rows, opts)
        steps = max((d.length for d in first_pass), default=0)
        timer.lap("greedy", steps=steps, budget=max(budgets))
        chosen = [self._window(d, o) for d, o in zip(first_pass, opts, strict=True)]
        looping = [k for k, r in enumerate(chosen) if r is None]
        if looping:
            first = opts[looping[0]]
            retry = GreedyRows(
                [self.tokens.prompt(None, 0)] * len(looping),
                [budgets[k] for k in looping],
                penalty=first.loop_repetition_penalty,
                no_repeat=first.loop_no_repeat_ngram_size,
            )
            padded = _subset(cross, looping, self.shapes.rows(len(looping)))
            for k, decoded in zip(looping, self._greedy(padded, retry), strict=True):
                redone = self._window(decoded, opts[k], retry=True)
                chosen[k] = _cut_loop(redone, opts[k], self.tokens)
            timer.lap("retry", rows=len(looping))
        timed = self._with_words(cross, chosen, [f // 2 for f in frames], seconds, opts)
        timer.lap("align")
        timer.report()
        for k, i in enumerate(live):
            results[i] = timed[k]
        return results

    def _budget(self, seconds: float) -> int:
        by_rate = 8 + math.ceil(self.config.tokens_per_second * seconds)
        return max(1, min(self.config.max_new_tokens, by_rate))

    def _encode(self, features: torch.Tensor) -> CrossKV:
        """Cross-attention keys/values of a row bucket: zero features pad the batch."""
        rows = features.shape[0]
        padded = self.shapes.rows(rows)
        if padded > rows:
            fill = features.new_zeros((padded - rows, *features.shape[1:]))
            features = torch.cat([features, fill])
        return self.model.decoder.cross_kv(self.model.encoder(features.to(self.dtype)))

    def _first_pass(
        self, cross: CrossKV, rows: GreedyRows, options: list[AsrOptions]
    ) -> list[Decoded]:
        """Greedy rows (``beam_size`` 1) in one loop, beam-search rows in another."""
        beams = [k for k, o in enumerate(options) if o.beam_size > 1]
        if not beams:
            return self._greedy(cross, rows)
        greedy = [k for k, o in enumerate(options) if o.beam_size <= 1]
        out: list[Decoded | None] = [None] * len(options)
        for part, beam in ((greedy, 1), (beams, max(options[k].beam_size for k in beams))):
            if not part:
                continue
            subset = _subset(cross, part, self.shapes.rows(len(part)))
            sub_rows = GreedyRows([rows.prompts[k] for k in part], [rows.budgets[k] for k in part])
            decoded = (
                self._greedy(subset, sub_rows) if beam == 1 else self._beam(subset, sub_rows, beam)
            )
            for k, d in zip(part, decoded, strict=True):
                out[k] = d
        return [d for d in out if d is not None]

    def _beam(self, cross: CrossKV, rows: GreedyRows, beam: int) -> list[Decoded]:
        return beam_decode(
            self.model.decoder,
            cross,
            rows,
            self._vocab,
            beam=beam,
            max_context=self.dims.n_text_ctx,
            width_step=self.shapes.width_step,
            cache_length=self.shapes.cache_length,
            graphs=self.graphs,
        )

    def _greedy(
        self, cross: CrossKV, rows: GreedyRows, vocab: Vocab | None = None
    ) -> list[Decoded]:
        return greedy_decode(
            self.model.decoder,
            cross,
            rows,
            vocab or self._vocab,
            max_context=self.dims.n_text_ctx,
            compact_below=self.config.compact_below,
            width_step=self.shapes.width_step,
            cache_length=self.shapes.cache_length,
            graphs=self.graphs,
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
        if not retry and loops_under(text, options):
            return None
        return result

    # --- warm-up ------------------------------------------------------------------------------

    def warm_up(self) -> float:
        """Run every shape bucket once with dummy inputs; the seconds it took.

        First one log-mel pass (cuFFT set-up); then per row bucket: an encoder pass, a decode
        loop (prompt pass, a step, compaction to one row) per prompt width, an anti-loop decode
        (penalty, n-gram ban), a word-alignment forward per width and one whole alignment
        (median filter, DTW). cuDNN keeps its plans per thread, so call this on the thread that
        will decode (:class:`asr.torch_processes.DecoderProcesses` does so in each process).
        """
        began = time.perf_counter()
        vocab = replace(self._vocab, suppress=self._vocab.suppress.clone())
        vocab.suppress[self.tokens.eot] = True  # rows end by their budgets only
        done = 0
        with torch.inference_mode():
            log_mel_batch([np.zeros(SAMPLE_RATE, np.float32)], self._filters, self.device)
            for rows in self.shapes.row_grid():
                features = torch.zeros((rows, self.dims.n_mels, N_FRAMES), device=self.device)
                cross = self._encode(features)
                self._warm_decode(cross, vocab)
                for size in [a for a in self.shapes.align_grid() if done < a <= rows]:
                    self._warm_align(_subset(cross, list(range(size)), size))
                done = rows
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.warm_up_seconds = time.perf_counter() - began
        profile_line({"warm_up_ms": round(1000 * self.warm_up_seconds, 1), "pid": os.getpid()})
        return self.warm_up_seconds

    def build_graphs(self) -> float:
        """Make ``graph_copies`` decode-step graphs per row bucket (captured on CUDA, after the
        warm-up has run every kernel once); the seconds it took."""
        began = time.perf_counter()
        like = torch.zeros((), dtype=self.dtype, device=self.device)
        with torch.inference_mode():
            self.graphs = StepGraphPool(
                self.model.decoder,
                self.shapes.row_grid(),
                self.shapes.cache_length,
                like,
                copies=self.config.graph_copies,
                capture=self.device.type == "cuda",
            )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - began
        profile_line({"graphs_ms": round(1000 * seconds, 1), "pid": os.getpid()})
        return seconds

    def _warm_decode(self, cross: CrossKV, vocab: Vocab) -> None:
        rows = cross[0][0].shape[0]
        sot = [*self.tokens.sot_sequence, self.tokens.no_timestamps]
        previous = [self.tokens.special("<|startofprev|>")]
        word = self.tokens.encode(" hello")[0]
        budgets = [3] + [2] * (rows - 1)  # a step on every row, then compaction to one row
        for width in self.shapes.prompt_widths():
            prompt = [*previous, *[word] * max(0, width - len(sot) - 1), *sot]
            self._greedy(cross, GreedyRows([prompt] * rows, budgets), vocab)
        retry = GreedyRows([sot] * rows, [4] * rows, penalty=1.1, no_repeat=2)
        self._greedy(cross, retry, vocab)

    def _warm_align(self, cross: CrossKV) -> None:
        rows = cross[0][0].shape[0]
        sot = [*self.tokens.sot_sequence, self.tokens.no_timestamps]
        word = self.tokens.encode(" hello")[0]
        for width in self.shapes.align_widths():
            text = [word] * max(1, width - len(sot) - 1)
            self._align_logits(cross, [[*sot, *text, self.tokens.eot]] * rows)
        self._align(cross, [[word] * 4] * rows, [100] * rows)

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
            padded = _subset(cross, part, self.shapes.align_rows_for(len(part)))
            jumps = self._align(padded, texts, [frames[k] for k in part])
            for k, jump in zip(part, jumps, strict=True):
                probs = np.asarray(done[k].token_probs, dtype=np.float64)
                words = timed_words(self.tokens, done[k].tokens, jump, probs, seconds[k])
                done[k] = replace(done[k], words=words)
        return done

    def _align(self, cross: CrossKV, texts: list[list[int]], frames: list[int]) -> list[np.ndarray]:
        """DTW jumps of each text over its audio (teacher-forced, unprompted, as CTranslate2).

        ``cross`` may hold more rows than ``texts``: the extra rows align a copy of the first
        text and are dropped."""
        device = self.device
        sot = [*self.tokens.sot_sequence, self.tokens.no_timestamps]
        inputs = [[*sot, *t, self.tokens.eot] for t in texts]
        extra = cross[0][0].shape[0] - len(inputs)
        inputs += [inputs[0]] * extra
        logits = self._align_logits(cross, inputs)
        frames = [max(1, f) for f in frames] + [max(1, frames[0])] * extra
        matrix = alignment_matrix(
            logits,
            torch.tensor([len(i) for i in inputs], device=device),
            torch.tensor(frames, device=device),
            len(sot) - 1,
        )
        rows = [len(i) - len(sot) for i in inputs]  # text tokens + 1
        jumps = dtw_jumps(matrix[:, : max(rows)], rows, frames)  # no DTW steps over the padding
        return jumps[: len(texts)]

    def _align_logits(self, cross: CrossKV, inputs: list[list[int]]) -> torch.Tensor:
        """Alignment heads' cross-attention logits of teacher-forced ``inputs`` (right-padded to
        the width bucket with end of text; causal, so the padding changes no earlier token)."""
        device = self.device
        width = self.shapes.width(max(len(i) for i in inputs))
        tokens = torch.full((len(inputs), width), self.tokens.eot, dtype=torch.long)
        for r, seq in enumerate(inputs):
            tokens[r, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        cache = KVCache.empty(self.dims, len(inputs), width, cross[0][0])
        mask = torch.ones(width, width, dtype=torch.bool, device=device).tril()[None, None]
        positions = torch.arange(width, device=device)[None, :].expand(len(inputs), -1)
        _, logits = self.model.decoder(
            tokens.to(device), positions, cache, 0, mask, cross, self._align_heads
        )
        return torch.cat(logits, dim=1)


_EMPTY = WindowResult([], [], "", 0.0, 0.0)


def _subset(cross: CrossKV, rows: list[int], size: int) -> CrossKV:
    """``rows`` of ``cross``, padded to ``size`` rows with copies of the first (dummy rows)."""
    rows = [*rows, *[rows[0]] * (size - len(rows))]
    if rows == list(range(cross[0][0].shape[0])):
        return cross
    index = torch.tensor(rows, device=cross[0][0].device)
    return [(k[index], v[index]) for k, v in cross]


def _cut_loop(
    result: WindowResult | None, options: AsrOptions, tokens: WhisperTokens
) -> WindowResult | None:
    """An anti-loop decode that still loops keeps its words up to the second occurrence of its
    most repeated phrase (the engine's last resort drops repeated lines the same way)."""
    if result is None or not loops_under(result.text, options):
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
