"""CUDA graphs of the decode step: one launch per step instead of ~110 kernel launches.

Why: on the H200 (docs/results/gpu.md, the live sweep of 2026-11-27) a decode step cost 5.0 ms
p50 in the live run against 2.3 ms in a warm batch alone, GPU utilisation never passed 28 %, and
batches stayed small (2 rows p50): the step is launch-bound. Each step runs the decoder on one
token per row (four blocks of layer norms, projections, two attentions and an MLP, then the
output projection), about 110 small kernels launched from Python while the calls' threads
compete for the same GIL. A CUDA graph replays the whole step as one launch.

A graph reads and writes fixed memory, so each :class:`StepGraph` owns its inputs (tokens,
positions, the write position, the attention mask), the self-attention cache and the
cross-attention keys/values of one row bucket; the decode loop copies into them and reads the
logits out (:func:`asr.torch_greedy.greedy_decode`; :func:`asr.torch_beam.beam_decode` borrows
the bucket of its beam rows and reorders the cache rows in place each step). Shapes were already
static for exactly this reason (:mod:`asr.torch_shapes`), and the cache position is a device tensor
(:meth:`asr.torch_whisper.DecoderLayer.forward`), so one capture serves every step.

Several decoder threads may decode at once and a graph's buffers serve one loop at a time, so
:class:`StepGraphPool` keeps ``copies`` graphs per bucket and lends them out; when none is free
the loop runs the same step eagerly. On CPU the pool holds the same buffers without capturing
(so the tests exercise every copy the CUDA path makes).
"""

from __future__ import annotations

import threading

import torch

from asr.torch_whisper import CrossKV, KVCache, TextDecoder

__all__ = ["StepGraph", "StepGraphPool"]


class StepGraph:
    """One decode step of ``rows`` rows over a cache of ``length`` positions, with its buffers."""

    def __init__(self, decoder: TextDecoder, rows: int, length: int, like: torch.Tensor) -> None:
        dims, device = decoder.dims, like.device
        self.decoder, self.rows, self.length = decoder, rows, length
        self.tokens = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.positions = torch.zeros((rows, 1), dtype=torch.long, device=device)
        self.write_at = torch.zeros((1,), dtype=torch.long, device=device)
        self.mask = torch.zeros((rows, 1, 1, length), dtype=torch.bool, device=device)
        self.mask[..., 0] = True  # no all-masked row while capturing
        self.cache = KVCache.empty(dims, rows, length, like)
        head_dim = dims.n_text_state // dims.n_text_head
        shape = (rows, dims.n_text_head, dims.n_audio_ctx, head_dim)
        self.cross: CrossKV = [
            (like.new_zeros(shape), like.new_zeros(shape)) for _ in range(dims.n_text_layer)
        ]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None

    def _forward(self) -> torch.Tensor:
        return self.decoder.step(
            self.tokens, self.positions, self.cache, self.write_at, self.mask, self.cross
        )

    def capture(self) -> None:
        """Record the step (CUDA only). A couple of eager runs on a side stream first, as torch's
        graph docs ask, so lazily initialised kernels and workspaces are not captured."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self.logits = self._forward()
        self.graph = graph

    def load(self, cross: CrossKV, cache: KVCache | None = None) -> None:
        """Start a loop: the batch's cross-attention keys/values, and its cache (zeros if none:
        attention reads every position under a mask, so unwritten ones must be zeros)."""
        for (key, value), (k, v) in zip(self.cross, cross, strict=True):
            key.copy_(k)
            value.copy_(v)
        if cache is None:
            self.cache.keys.zero_()
            self.cache.values.zero_()
        else:
            self.cache.keys.copy_(cache.keys)
            self.cache.values.copy_(cache.values)

    def step(
        self, tokens: torch.Tensor, positions: torch.Tensor, write_at: int, valid: torch.Tensor
    ) -> torch.Tensor:
        """Logits (rows, vocabulary) of one token per row written at cache position
        ``write_at``; ``valid`` (rows, length) says which cache positions each row sees. The
        result is this graph's own buffer: read it before the next step."""
        self.tokens.copy_(tokens)
        self.positions.copy_(positions)
        self.write_at.fill_(write_at)
        self.mask.copy_(valid[:, None, None, :])
        if self.graph is None:
            return self._forward()
        self.graph.replay()
        assert self.logits is not None
        return self.logits


class StepGraphPool:
    """``copies`` :class:`StepGraph` per row bucket, lent to one decode loop at a time."""

    def __init__(
        self,
        decoder: TextDecoder,
        buckets: list[int],
        length: int,
        like: torch.Tensor,
        *,
        copies: int = 1,
        capture: bool = True,
    ) -> None:
        self.length = length
        self._lock = threading.Lock()
        self._free: dict[int, list[StepGraph]] = {}
        for rows in buckets:
            graphs = [StepGraph(decoder, rows, length, like) for _ in range(max(1, copies))]
            if capture:
                for graph in graphs:
                    graph.capture()
            self._free[rows] = graphs
        self.misses = 0
        """Loops that found no free graph of their bucket (they ran eagerly)."""

    def bucket(self, rows: int) -> int | None:
        """The smallest bucket of at least ``rows`` rows (``None``: more than the largest)."""
        return min((b for b in self._free if b >= rows), default=None)

    def acquire(self, rows: int) -> StepGraph | None:
        """A free graph of exactly ``rows`` rows, or ``None``."""
        with self._lock:
            free = self._free.get(rows)
            if free:
                return free.pop()
            self.misses += 1
            return None

    def release(self, graph: StepGraph) -> None:
        """Give a graph back after its loop."""
        with self._lock:
            self._free[graph.rows].append(graph)
