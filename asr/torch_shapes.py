"""Static tensor shapes for the torch Whisper decoder: size buckets and the warm-up grid.

Why: on the H200 (docs/results/gpu.md, the live run of 2026-11-27 with
``NEXTLINE_TORCH_PROFILE``), a warm batch of 16 decoded in 59 ms (2.3 ms per step), but in the
live run every batch brought row counts, prompt widths and cache lengths not seen before, and
each new shape cost 55-100 ms the first time (encoder 97 ms for a first batch of one row, 2.4 ms
for the next one on the same thread; decode steps 70-100 ms instead of 2.3 ms). Decoding the
same shapes again was fast, so the cost is a per-shape set-up (cuDNN builds an execution plan
per shape for its attention and convolutions, kept per thread), not compute.

So every dynamic dimension is rounded up to a few sizes: rows to powers of two (dummy rows are
padded in and their results dropped), token widths to multiples of ``width_step``, and the
self-attention cache to one length for all batches, read whole under a mask. Every combination
is then run once at load (:meth:`asr.torch_backend.TorchWhisperDecoder.warm_up`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ShapePlan", "round_up", "row_bucket", "row_buckets"]


def round_up(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (at least one multiple)."""
    return max(1, -(-n // multiple)) * multiple


def row_bucket(n: int, cap: int) -> int:
    """Rows a batch of ``n`` rows is padded to: the next power of two, at most ``cap`` (``n``
    itself beyond ``cap``, which callers avoid by splitting batches)."""
    if n >= cap:
        return n
    size = 1
    while size < n:
        size *= 2
    return min(size, cap)


def row_buckets(cap: int) -> list[int]:
    """Every row bucket up to ``cap``: the powers of two below it, and ``cap``."""
    sizes = []
    size = 1
    while size < cap:
        sizes.append(size)
        size *= 2
    return [*sizes, cap]


@dataclass(frozen=True)
class ShapePlan:
    """The buckets of one decoder (from its config and the model's token sequences)."""

    max_rows: int
    """Rows of an encoder pass or decode loop at most (batches are split beyond it)."""
    align_rows: int
    """Rows of a word-alignment pass at most."""
    max_prompt: int
    """Longest prompt in tokens (previous text, sot sequence, ``<|notimestamps|>``)."""
    max_align: int
    """Longest word-alignment input in tokens (sot sequence, notimestamps, text, end of text)."""
    max_new_tokens: int
    """Most tokens a row generates."""
    width_step: int = 32
    """Token widths are multiples of this. 32: 8 prompt widths up to tiny.en's 226-token prompt;
    padding a 3-token prompt to 32 costs one prompt pass over 32 tokens per batch (cheap next
    to the 30 s encoder pass every row pays)."""

    def rows(self, n: int) -> int:
        """Rows of an encoder pass or decode loop of ``n`` requests."""
        return row_bucket(n, self.max_rows)

    def align_rows_for(self, n: int) -> int:
        """Rows of a word-alignment pass of ``n`` texts."""
        return row_bucket(n, min(self.align_rows, self.max_rows))

    def width(self, tokens: int) -> int:
        """Padded width of a token sequence."""
        return round_up(tokens, self.width_step)

    @property
    def cache_length(self) -> int:
        """Self-attention cache positions of every decode loop: the widest prompt plus the most
        new tokens (480 for tiny.en's defaults). Reading 480 positions per step instead of the
        ~40-250 used costs little: the step is launch-bound (2.3 ms for ~110 kernels)."""
        return self.width(self.max_prompt) + self.max_new_tokens

    def row_grid(self) -> list[int]:
        """Row buckets of encoder passes and decode loops."""
        return row_buckets(self.max_rows)

    def align_grid(self) -> list[int]:
        """Row buckets of word-alignment passes."""
        return row_buckets(min(self.align_rows, self.max_rows))

    def prompt_widths(self) -> list[int]:
        """Every prompt width bucket."""
        return list(range(self.width_step, self.width(self.max_prompt) + 1, self.width_step))

    def align_widths(self) -> list[int]:
        """Every word-alignment width bucket."""
        return list(range(self.width_step, self.width(self.max_align) + 1, self.width_step))
