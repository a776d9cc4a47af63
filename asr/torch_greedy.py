"""Greedy Whisper decoding of a batch of rows with one KV cache (CTranslate2's greedy search).

Every row has its own prompt (left-padded; pads are masked keys and get position 0), its own
token budget, and optional anti-loop settings. Each step runs the decoder on one token per
running row. Rows that ended stay in the cache (their tokens are ignored) until the running ones
are fewer than ``compact_below`` of the cache's rows; then the cache, the cross-attention
keys/values and the masks are cut down to the running rows' bucket, so a long row does not keep
the whole batch's cross-attention traffic alive.

Shapes are static (:mod:`asr.torch_shapes`): the cross-attention keys/values may hold more rows
than there are prompts (dummy rows, finished from the start, results dropped), compaction keeps
a power-of-two number of rows (finished rows fill the gap), the prompt width is rounded up to
``width_step``, and every step attends over the whole ``cache_length`` cache under a mask.

With a :class:`asr.torch_graphs.StepGraphPool`, the one-token steps of plain rows (no penalty, no
n-gram ban) replay a captured CUDA graph of the bucket instead of launching the decoder's kernels
one by one; compaction moves the loop to the smaller bucket's graph.

Per step the logits get CTranslate2's treatment: the suppressed tokens and, at the first step,
the ``suppress_ids_begin`` tokens (blank, end of text) are disabled; with a repetition penalty
the scores of tokens already generated are divided (positive) or multiplied (negative) by it, and
with ``no_repeat`` any token that would repeat an n-gram of the row's text is disabled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from asr.torch_graphs import StepGraph, StepGraphPool
from asr.torch_whisper import CrossKV, KVCache, TextDecoder

__all__ = ["Decoded", "GreedyRows", "Prompted", "greedy_decode", "prompt_pass", "suppressed"]


@dataclass(frozen=True)
class GreedyRows:
    """The rows of one decode loop."""

    prompts: list[list[int]]
    """Prompt tokens of each row, ending with the sot sequence and ``<|notimestamps|>``."""
    budgets: list[int]
    """Most tokens each row may generate (the end-of-text token included)."""
    penalty: float = 1.0
    """Repetition penalty on tokens already generated (1 = none)."""
    no_repeat: int = 0
    """Disable tokens that would repeat an n-gram of this size (0 = off)."""


@dataclass(frozen=True)
class Decoded:
    """One row's greedy result."""

    tokens: list[int]
    """Generated tokens before the end of text (timestamp tokens, if any, included)."""
    text_probs: list[float]
    """Probability of each of ``tokens`` among the text tokens (faster-whisper's word
    probability); 0 for non-text tokens."""
    sum_logprob: float
    """Log-probability of the generated tokens and the end-of-text token, if reached."""
    length: int
    """Tokens scored in ``sum_logprob``."""
    no_speech_prob: float
    """Probability of the no-speech token at the start-of-transcript position."""


@dataclass(frozen=True)
class Vocab:
    """Token ids and masks the loop needs."""

    eot: int
    no_speech: int
    sot_offset: int
    """Position of ``<|startoftranscript|>`` counted back from the prompt's end (1-based)."""
    suppress: torch.Tensor
    """(V,) bool: never generated."""
    suppress_begin: torch.Tensor
    """(V,) bool: not generated as the first token."""


class _Running:
    """Tensors of the rows still in the cache (compacted order) and the loop's outputs."""

    def __init__(
        self,
        budgets: torch.Tensor,
        pads: torch.Tensor,
        valid: torch.Tensor,
        cross: CrossKV,
        cache: KVCache,
        vocab_size: int,
        rows: GreedyRows,
    ) -> None:
        device = budgets.device
        self.index = torch.arange(len(budgets), device=device)  # original row of each cache row
        self.budgets, self.pads, self.valid, self.cross, self.cache = (
            budgets,
            pads,
            valid,
            cross,
            cache,
        )
        self.count = torch.zeros_like(budgets)
        self.done = torch.zeros(len(budgets), dtype=torch.bool, device=device)
        self.history: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.generated = torch.empty((len(budgets), 0), dtype=torch.long, device=device)
        self.seen = (
            torch.zeros((len(budgets), vocab_size), dtype=torch.bool, device=device)
            if rows.penalty != 1.0
            else None
        )

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only cache rows ``rows``."""
        self.index, self.budgets, self.pads = self.index[rows], self.budgets[rows], self.pads[rows]
        self.valid, self.count, self.done = self.valid[rows], self.count[rows], self.done[rows]
        self.cross = [(k[rows], v[rows]) for k, v in self.cross]
        self.cache = self.cache.select(rows)
        self.generated = self.generated[rows]
        if self.seen is not None:
            self.seen = self.seen[rows]


@dataclass
class Prompted:
    """A batch after its prompt pass: what a decode loop (greedy or beam) starts from."""

    width: int
    """Padded prompt width: the first step writes cache position ``width``."""
    pads: torch.Tensor
    """Left padding of each row's prompt (its positions start after it)."""
    valid: torch.Tensor
    """(rows, length) bool: cache positions each row attends to (its prompt so far)."""
    budgets: torch.Tensor
    """Most new tokens of every row (dummy rows 1), within the model's text context."""
    cache: KVCache
    cross: CrossKV
    logits: torch.Tensor
    """(rows, vocabulary) logits of each row's next token."""
    no_speech: torch.Tensor | None
    """Probability of the no-speech token at each row's start-of-transcript position."""


def prompt_pass(
    decoder: TextDecoder,
    cross: CrossKV,
    rows: GreedyRows,
    vocab: Vocab,
    *,
    max_context: int,
    width_step: int = 1,
    cache_length: int = 0,
    buffers: Callable[[int], tuple[KVCache, CrossKV] | None] | None = None,
) -> Prompted:
    """Run every row's prompt through the decoder (dummy rows copy the first prompt).

    ``buffers(length)`` may hand in a preallocated cache and cross-attention of the batch (a
    step graph's), else a new cache of ``length`` positions is made.

    Raises:
        ValueError: ``cross`` has fewer rows than there are prompts.
    """
    device = cross[0][0].device
    batch, total = len(rows.prompts), cross[0][0].shape[0]
    if total < batch:
        raise ValueError(f"{batch} prompts but cross-attention keys of {total} rows")
    prompts = [*rows.prompts, *[rows.prompts[0]] * (total - batch)]
    width = -(-max(len(p) for p in prompts) // width_step) * width_step
    pads = torch.tensor([width - len(p) for p in prompts], device=device)
    prompt = torch.full((total, width), vocab.eot, dtype=torch.long)
    for r, tokens in enumerate(prompts):
        prompt[r, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
    budgets = torch.tensor([*rows.budgets, *[1] * (total - batch)], device=device)
    budgets = torch.minimum(budgets, max_context - (width - pads)).clamp_min(1)
    length = max(cache_length, width + int(budgets[:batch].max()))
    given = buffers(length) if buffers is not None else None
    if given is not None:
        cache, cross = given
    else:
        cache = KVCache.empty(decoder.dims, total, length, cross[0][0])
    places = torch.arange(length, device=device)[None, :]
    valid = (places >= pads[:, None]) & (places < width)  # each step adds its own position
    hidden, _ = decoder(
        prompt.to(device),
        (places[:, :width] - pads[:, None]).clamp_min(0),
        cache,
        0,
        _prompt_mask(valid, width),
        cross,
    )
    sot_logits = decoder.logits(hidden[:, width - vocab.sot_offset])
    no_speech = sot_logits.softmax(-1)[:, vocab.no_speech] if vocab.no_speech >= 0 else None
    logits = decoder.logits(hidden[:, -1])
    return Prompted(width, pads, valid, budgets, cache, cross, logits, no_speech)


def greedy_decode(
    decoder: TextDecoder,
    cross: CrossKV,
    rows: GreedyRows,
    vocab: Vocab,
    *,
    max_context: int,
    compact_below: float = 0.5,
    width_step: int = 1,
    cache_length: int = 0,
    graphs: StepGraphPool | None = None,
) -> list[Decoded]:
    """Decode every row greedily; results in row order.

    ``cross`` may hold more rows than ``rows`` has prompts: the extra rows are dummies (a copy of
    the first prompt, finished from the start). The prompt width is rounded up to
    ``width_step``; the cache has ``cache_length`` positions (more if the batch needs more).
    With ``graphs``, steps replay the pool's graphs where it has a free one of the bucket.

    Raises:
        ValueError: ``cross`` has fewer rows than there are prompts.
    """
    batch = len(rows.prompts)
    plain = rows.penalty == 1.0 and rows.no_repeat == 0
    lease = _GraphLease(graphs if plain else None, cross)
    try:
        start = prompt_pass(
            decoder, cross, rows, vocab, max_context=max_context, width_step=width_step,
            cache_length=cache_length, buffers=lease.buffers,
        )  # fmt: skip
        budget_list = start.budgets.tolist()[:batch]
        width, logits = start.width, start.logits
        state = _Running(
            start.budgets, start.pads, start.valid, start.cross, start.cache, logits.shape[-1], rows
        )
        state.done[batch:] = True
        for step in range(max(budget_list)):
            token = _step(logits, step, state, rows, vocab)
            alive = int((~state.done).sum())
            if alive == 0:
                break
            pos = width + step
            token = _compact(state, token, alive, compact_below, lease)
            state.valid[:, pos] = True
            positions = (pos - state.pads)[:, None]
            if lease.graph is not None:
                logits = lease.graph.step(token[:, None], positions, pos, state.valid)
            else:
                mask = state.valid[:, None, None, :]
                logits = decoder.step(
                    token[:, None], positions, state.cache, pos, mask, state.cross
                )
    finally:
        lease.release()
    return _collect(state, budget_list, vocab, start.no_speech)


def _compact(
    state: _Running, token: torch.Tensor, alive: int, below: float, lease: _GraphLease
) -> torch.Tensor:
    """Drop finished rows once fewer than ``below`` of the batch run; return the kept tokens.

    The batch shrinks to the running rows' power-of-two bucket (running rows first), so later
    steps cost what the live rows need and still find a captured graph of their size.
    """
    target = 1 << (alive - 1).bit_length()
    if alive >= below * len(state.index) or target >= len(state.index):
        return token
    keep = torch.argsort(state.done.to(torch.int8), stable=True)[:target]
    state.keep(keep)
    lease.move(state)
    return token[keep]


class _GraphLease:
    """The step graph a decode loop borrowed from the pool, if any (else its steps run eagerly)."""

    def __init__(self, pool: StepGraphPool | None, cross: CrossKV) -> None:
        self.pool, self.cross = pool, cross
        self.graph: StepGraph | None = None

    def buffers(self, length: int) -> tuple[KVCache, CrossKV] | None:
        """For :func:`prompt_pass`: the graph's cache and cross-attention, loaded with the
        batch's, when the pool has a free graph of the batch's rows and cache length."""
        if self.pool is None or self.pool.length != length:
            return None
        self.graph = self.pool.acquire(self.cross[0][0].shape[0])
        if self.graph is None:
            return None
        self.graph.load(self.cross)
        return self.graph.cache, self.graph.cross

    def move(self, state: _Running) -> None:
        """After compaction: the smaller bucket's graph, loaded with the kept rows' cache and
        cross-attention (none free: the loop goes on eagerly)."""
        if self.pool is None or self.graph is None:
            return
        self.pool.release(self.graph)
        self.graph = self.pool.acquire(len(state.index))
        if self.graph is not None:
            self.graph.load(state.cross, state.cache)
            state.cache, state.cross = self.graph.cache, self.graph.cross

    def release(self) -> None:
        """Give the graph back when the loop ends."""
        if self.pool is not None and self.graph is not None:
            self.pool.release(self.graph)
            self.graph = None


def _prompt_mask(valid: torch.Tensor, width: int) -> torch.Tensor:
    """(B, 1, width, length): causal over the prompt's valid keys; a pad query sees itself
    (so no row of the softmax is all masked); positions after the prompt are hidden."""
    device = valid.device
    eye = torch.eye(width, dtype=torch.bool, device=device)[None]
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()[None]
    mask = torch.zeros((*valid.shape[:1], width, valid.shape[1]), dtype=torch.bool, device=device)
    mask[:, :, :width] = (causal & valid[:, None, :width]) | eye
    return mask[:, None]


def _step(
    logits: torch.Tensor, step: int, state: _Running, rows: GreedyRows, vocab: Vocab
) -> torch.Tensor:
    """Pick every cache row's next token; record it for rows that were still running."""
    logits = suppressed(logits, vocab, first=step == 0)
    if state.seen is not None:
        penalised = torch.where(logits > 0, logits / rows.penalty, logits * rows.penalty)
        logits = torch.where(state.seen, penalised, logits)
    if rows.no_repeat > 0:
        logits = _ban_ngrams(logits, state.generated, rows.no_repeat)
    logprobs = logits.log_softmax(-1)
    token = logits.argmax(-1)
    logprob = logprobs.gather(1, token[:, None])[:, 0]
    text = logits[:, : vocab.eot]
    text_prob = (
        text.gather(1, token.clamp_max(vocab.eot - 1)[:, None])[:, 0] - text.logsumexp(-1)
    ).exp()
    running = ~state.done
    state.history.append(
        (state.index, token, torch.where(token < vocab.eot, text_prob, 0.0), logprob)
    )
    state.count += running.long()
    state.done = state.done | (token == vocab.eot) | (state.count >= state.budgets)
    if rows.no_repeat > 0:
        state.generated = torch.cat([state.generated, token[:, None]], dim=1)
    if state.seen is not None:
        state.seen[torch.arange(len(token), device=token.device), token] = True
    return token


def suppressed(logits: torch.Tensor, vocab: Vocab, *, first: bool) -> torch.Tensor:
    """Logits with the never-generated tokens disabled (and, at the first step, blank and end of
    text: CTranslate2's ``suppress_ids_begin``)."""
    logits = logits.masked_fill(vocab.suppress, -torch.inf)
    if first:
        logits = logits.masked_fill(vocab.suppress_begin, -torch.inf)
    return logits


def _ban_ngrams(logits: torch.Tensor, generated: torch.Tensor, size: int) -> torch.Tensor:
    """Disable tokens that would complete an n-gram already in each row's generated text."""
    if generated.shape[1] < size:
        return logits
    grams = generated.unfold(1, size, 1)  # (R, G, size)
    tail = generated[:, generated.shape[1] - size + 1 :]  # the last size - 1 tokens
    match = (grams[:, :, :-1] == tail[:, None, :]).all(dim=2)  # (R, G)
    banned = torch.zeros_like(logits, dtype=torch.bool)
    rows, cols = match.nonzero(as_tuple=True)
    banned[rows, grams[rows, cols, -1]] = True
    return logits.masked_fill(banned, -torch.inf)


def _collect(
    state: _Running, budgets: list[int], vocab: Vocab, no_speech: torch.Tensor | None
) -> list[Decoded]:
    """Per original row: tokens up to the end of text or the budget, with their scores."""
    batch = len(budgets)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    probs: list[list[float]] = [[] for _ in range(batch)]
    sums = [0.0] * batch
    lengths = [0] * batch
    finished = [False] * batch
    flat = [torch.cat(parts).tolist() for parts in zip(*state.history, strict=True)]
    for row, token, prob, logprob in zip(*flat, strict=True):
        if row >= batch or finished[row]:  # a dummy row, or a row already ended
            continue
        sums[row] += logprob
        lengths[row] += 1
        if token == vocab.eot:
            finished[row] = True
            continue
        tokens[row].append(token)
        probs[row].append(prob)
        finished[row] = lengths[row] >= budgets[row]
    speech = no_speech.tolist() if no_speech is not None else [0.0] * batch
    return [
        Decoded(tokens[r], probs[r], sums[r], lengths[r], float(speech[r])) for r in range(batch)
    ]
