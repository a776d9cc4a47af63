"""How many partial-like requests one batch decodes per second (``bench_gpu.py``'s capacity table).

Imported by ``bench_gpu.py`` after it has set up the bare ``asr`` namespace (see there), so that
only the modules used are loaded on the GPU image.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from bench_data import RATE, LegData

from asr.streaming import DecodeRequest


def partial_like(
    calls: list[tuple[LegData, LegData]], size: int, rng: np.random.Generator, prompt: str | None
) -> list[DecodeRequest]:
    """``size`` partial-like requests: 2-8 s of the carried legs from random starts."""
    legs = [leg for pair in calls for leg in pair]
    requests = []
    for i in range(size):
        leg = legs[i % len(legs)]
        seconds = float(rng.uniform(2.0, 8.0))
        start = float(rng.uniform(0, leg.duration - seconds))
        audio = leg.audio[round(start * RATE) : round((start + seconds) * RATE)]
        requests.append(DecodeRequest(audio, start, prompt, False, 0))
    return requests


def capacity(
    decoder: Any, calls: list[tuple[LegData, LegData]], sizes: list[int]
) -> list[dict[str, float]]:
    """Decode time of one batch of B partial-like requests (2-8 s of speech, short prompt).

    The batch is decoded twice by the same decoder (with decoder processes: the same process)
    and the second call is timed; the first call's time shows what warm-up left to pay."""
    decode = decoder.decode_batch
    if hasattr(decoder, "decode_on"):  # DecoderProcesses: both calls on process 0
        decode = lambda requests: decoder.decode_on(0, requests)  # noqa: E731
    rng = np.random.default_rng(0)
    out = []
    for size in sizes:
        requests = partial_like(calls, size, rng, "Hello, how can I help you?")
        begin = time.perf_counter()
        decode(requests)
        first = time.perf_counter() - begin
        begin = time.perf_counter()
        decode(requests)
        seconds = time.perf_counter() - begin
        out.append(
            {
                "batch": size,
                "ms": 1000 * seconds,
                "first_ms": 1000 * first,
                "requests_per_s": size / seconds,
            }
        )
        print(
            f"  capacity: batch {size:4d}: {1000 * seconds:7.1f} ms, "  # noqa: T201
            f"{size / seconds:7.1f} requests/s (first call {1000 * first:.1f} ms)",
            flush=True,
        )
    return out
