"""Beam search for whole-turn finals on the torch backend (the GPU path).

Why: greedy finals cost accuracy. Over the 128 SpokenWOZ turns through mu-law, as the live path
decodes them (``scripts/bench_final_pass.py``), greedy finals gave 28.0 % WER on this backend
and 27.7 % with faster-whisper, against 24.3 % offline; faster-whisper's beam 5 gave 25.0 %.

It follows faster-whisper's decoding options as CTranslate2 applies them: ``beam`` hypotheses
per request, length penalty 1 (a finished hypothesis ranks by its log-probability divided by its
length, end of text included), patience 1 (a request is done once ``beam`` hypotheses ended),
the same suppressed tokens, and the same budget as greedy decoding. The request's rows are
expanded to ``beam`` rows after the prompt pass, and each step keeps, per request, the best
``beam`` continuations among ``2 * beam`` candidates; the KV cache rows follow their parent
hypothesis. The bookkeeping of hypotheses is on the host (a few rows per request); the step
itself is the decoder's, batched over every request's beams.

On CUDA the step replays a graph of the beam rows' bucket when the pool has a free one
(:mod:`asr.torch_graphs`), as greedy loops do. Why: on the H200, eager beam steps (about 110
kernel launches each, from Python threads sharing one GIL with the calls) held the decode
workers long enough that beam-5 finals pushed the partials' commit p95 from 2.49 s to 3.86 s
at 256 calls (docs/results/gpu.md). Dummy rows fill the bucket with copies of the first row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from asr.torch_graphs import StepGraph, StepGraphPool
from asr.torch_greedy import Decoded, GreedyRows, Vocab, prompt_pass, suppressed
from asr.torch_whisper import CrossKV, KVCache, TextDecoder

__all__ = ["beam_decode"]


@dataclass
class _Hypothesis:
    tokens: list[int] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    score: float = 0.0
    """Log-probability of ``tokens`` (and of the end of text, once ``ended``)."""
    ended: bool = False
    """It ended with end of text (not at the token budget)."""

    @property
    def length(self) -> int:
        """Tokens scored: the text and, once ended, the end of text."""
        return len(self.tokens) + self.ended


@dataclass
class _Request:
    live: list[_Hypothesis]
    finished: list[_Hypothesis] = field(default_factory=list)

    def best(self) -> _Hypothesis:
        """The hypothesis with the best length-normalised score (length penalty 1)."""
        pool = self.finished or self.live
        return max(pool, key=lambda h: h.score / max(1, h.length))


def beam_decode(
    decoder: TextDecoder,
    cross: CrossKV,
    rows: GreedyRows,
    vocab: Vocab,
    *,
    beam: int,
    max_context: int,
    width_step: int = 1,
    cache_length: int = 0,
    graphs: StepGraphPool | None = None,
) -> list[Decoded]:
    """Beam-search every row of ``rows`` (``cross`` may hold extra dummy rows); results in row
    order, in :func:`asr.torch_greedy.greedy_decode`'s form. With ``graphs``, the steps replay
    a graph of the beam rows' bucket where the pool has a free one."""
    batch = len(rows.prompts)
    start = prompt_pass(
        decoder,
        cross,
        rows,
        vocab,
        max_context=max_context,
        width_step=width_step,
        cache_length=cache_length,
    )
    budgets = start.budgets.tolist()
    steps = max(budgets[:batch])
    expand = torch.arange(batch, device=start.logits.device).repeat_interleave(beam)
    stepper = _BeamStep(decoder, start.cache, cross, expand, graphs)
    valid, pads = start.valid[expand], start.pads[expand]
    masked = suppressed(start.logits[:batch], vocab, first=True).repeat_interleave(beam, dim=0)
    requests = [_Request([_Hypothesis()]) for _ in range(batch)]
    scores = torch.full((batch, beam), -torch.inf, device=masked.device)
    scores[:, 0] = 0.0  # one live hypothesis per request at the start
    try:
        for step in range(steps):  # noqa: B007 - the cache position below
            tokens, origin = _advance(requests, scores, masked, vocab, beam, budgets)
            if all(not r.live for r in requests):
                break
            pos = start.width + step
            parents = torch.tensor(origin, device=valid.device)
            valid, pads = valid[parents], pads[parents]
            valid[:, pos] = True
            token_rows = torch.tensor(tokens, device=valid.device)[:, None]
            logits = stepper.step(token_rows, parents, (pos - pads)[:, None], pos, valid)
            masked = suppressed(logits, vocab, first=False)
    finally:
        stepper.release()
    return [_decoded(r, start.no_speech, i) for i, r in enumerate(requests)]


class _BeamStep:
    """The beam rows' decode step: a borrowed step graph of their bucket, else eager."""

    def __init__(
        self,
        decoder: TextDecoder,
        cache: KVCache,
        cross: CrossKV,
        expand: torch.Tensor,
        pool: StepGraphPool | None,
    ) -> None:
        self.decoder, self.pool, self.rows = decoder, pool, len(expand)
        self.graph: StepGraph | None = None
        if pool is not None and pool.length == cache.keys.shape[3]:
            bucket = pool.bucket(self.rows)
            self.graph = pool.acquire(bucket) if bucket is not None else None
        if self.graph is None:
            self.cache, self.cross = cache.select(expand), [(k[expand], v[expand]) for k, v in cross]
            return
        try:  # a failed load (out of GPU memory) must not keep the graph from the pool for good
            self.fill = expand.new_zeros(self.graph.rows - self.rows)  # dummy rows copy row 0
            index = torch.cat([expand, self.fill])
            self.graph.load([(k[index], v[index]) for k, v in cross], cache.select(index))
        except BaseException:
            self.release()
            raise

    def step(
        self,
        tokens: torch.Tensor,
        parents: torch.Tensor,
        positions: torch.Tensor,
        pos: int,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """Logits of every beam row's next token; the cache rows follow ``parents`` first."""
        if self.graph is None:
            self.cache = self.cache.select(parents)
            mask = valid[:, None, None, :]
            return self.decoder.step(tokens, positions, self.cache, pos, mask, self.cross)
        graph, index = self.graph, torch.cat([parents, self.fill])
        for buffer in (graph.cache.keys, graph.cache.values):
            buffer.copy_(buffer.index_select(1, index))
        fill = self.fill
        logits = graph.step(
            torch.cat([tokens, tokens[fill]]),
            torch.cat([positions, positions[fill]]),
            pos,
            torch.cat([valid, valid[fill]]),
        )
        return logits[: self.rows]

    def release(self) -> None:
        """Give the graph back to the pool."""
        if self.pool is not None and self.graph is not None:
            self.pool.release(self.graph)
            self.graph = None


def _advance(
    requests: list[_Request],
    scores: torch.Tensor,
    logits: torch.Tensor,
    vocab: Vocab,
    beam: int,
    budgets: list[int],
) -> tuple[list[int], list[int]]:
    """One step of every request's beams: extend, retire ended hypotheses, refill the beam.

    Returns the next token of every cache row and the row it continues (``beam`` rows per
    request; a request that is done keeps its rows, fed end of text, so the batch stays whole)."""
    batch, vocab_size = len(requests), logits.shape[-1]
    total = (scores.reshape(-1, 1) + logits.log_softmax(-1)).reshape(batch, beam * vocab_size)
    values, indices = total.topk(2 * beam, dim=-1)
    rows = indices // vocab_size + torch.arange(batch, device=indices.device)[:, None] * beam
    tokens = indices % vocab_size
    text = logits[:, : vocab.eot]
    chosen = logits[rows, tokens.clamp_max(vocab.eot - 1)] - text.logsumexp(-1)[rows]
    values_l, rows_l, tokens_l, probs_l = (t.tolist() for t in (values, rows, tokens, chosen.exp()))
    next_tokens, origin = [], []
    new_scores = [[-float("inf")] * beam for _ in range(batch)]  # one copy to the device
    for b, request in enumerate(requests):
        kept: list[tuple[int, _Hypothesis]] = []
        if request.live:
            candidates = list(zip(values_l[b], rows_l[b], tokens_l[b], probs_l[b], strict=True))
            kept = _continue(request, candidates, b * beam, beam, budgets[b], vocab.eot)
            request.live = [] if len(request.finished) >= beam else [h for _, h in kept]
        for k in range(beam):
            if k < len(request.live):
                origin.append(kept[k][0])
                next_tokens.append(request.live[k].tokens[-1])
                new_scores[b][k] = request.live[k].score
            else:  # an empty slot: follow the first row of the request, never chosen
                origin.append(b * beam)
                next_tokens.append(vocab.eot)
    scores.copy_(torch.tensor(new_scores, dtype=scores.dtype))
    return next_tokens, origin


def _continue(
    request: _Request,
    candidates: list[tuple[float, int, int, float]],
    first_row: int,
    beam: int,
    budget: int,
    eot: int,
) -> list[tuple[int, _Hypothesis]]:
    """The request's hypotheses that go on, with the cache row each continues; those that end
    join ``request.finished``. ``candidates`` are the ``2 * beam`` best (score, row, token,
    probability), best first.

    As CTranslate2's beam search: only the first ``beam`` candidates may end (end of text, or
    the budget); an ending one's place goes to the next candidate after the first ``beam`` that
    is not end of text, and candidates after the first ``beam`` never end. Why exactly: recording
    every ending candidate among all ``2 * beam`` filled the ``beam`` finished places with
    low-ranked endings before the best hypothesis ended, and the finals differed from
    faster-whisper's beam search (3 of 30 SpokenWOZ turns, in float32: "Leicester" for "LASTA").
    """

    def grown(index: int) -> _Hypothesis | None:
        score, row, token, prob = candidates[index]
        local = row - first_row
        if local >= len(request.live) or score == -float("inf"):
            return None
        parent = request.live[local]
        return _Hypothesis(parent.tokens + [token], parent.probs + [prob if token < eot else 0.0], score)

    kept: list[tuple[int, _Hypothesis]] = []
    spare = beam  # the next candidate that may take an ended hypothesis's place
    for index in range(min(beam, len(candidates))):
        hypothesis = grown(index)
        if hypothesis is None:
            continue
        token = candidates[index][2]
        if token != eot and len(hypothesis.tokens) < budget:
            kept.append((candidates[index][1], hypothesis))
            continue
        if token == eot:
            hypothesis.tokens.pop()
            hypothesis.probs.pop()
            hypothesis.ended = True
        request.finished.append(hypothesis)
        while spare < len(candidates) and candidates[spare][2] == eot:
            spare += 1
        if spare < len(candidates):
            replacement = grown(spare)
            if replacement is not None and len(replacement.tokens) < budget:
                kept.append((candidates[spare][1], replacement))
            spare += 1
    return kept


def _decoded(request: _Request, no_speech: torch.Tensor | None, index: int) -> Decoded:
    best = request.best()
    speech = float(no_speech[index]) if no_speech is not None else 0.0
    return Decoded(best.tokens, best.probs, best.score, best.length, speech)
