"""Per-batch phase times of the torch decoder, on when ``NEXTLINE_TORCH_PROFILE`` names a file.

Each decoded batch appends one JSON line (``rows``, padded ``bucket``, ``pid``, ``thread``,
``mel_ms``, ``encoder_ms``, ``greedy_ms`` with ``steps`` and ``budget``, ``retry_ms``,
``align_ms``, ``total_ms``); each warm-up appends ``{"warm_up_ms", "pid"}``. Laps synchronise
the GPU, so profiling slows decoding slightly: leave it off for latency numbers.
"""

from __future__ import annotations

import json
import os
import threading
import time

import torch

__all__ = ["PhaseTimer", "profile_line"]

_PROFILE = os.environ.get("NEXTLINE_TORCH_PROFILE")


class PhaseTimer:
    """Phase times of one batch (synchronising the GPU at each lap) when profiling is on."""

    def __init__(self, device: torch.device, rows: int) -> None:
        self.device, self.on = device, bool(_PROFILE)
        self.record: dict[str, float | int] = {
            "rows": rows,
            "pid": os.getpid(),
            "thread": threading.get_ident() % 1000,
        }
        self.last = self.start = time.perf_counter()

    def lap(self, name: str, **extra: int) -> None:
        """Close phase ``name`` (time since the last lap), with extra integer fields."""
        if not self.on:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.record[f"{name}_ms"] = round(1000 * (now - self.last), 2)
        self.record.update(extra)
        self.last = now

    def report(self) -> None:
        """Append the batch's line."""
        if self.on:
            self.record["total_ms"] = round(1000 * (time.perf_counter() - self.start), 2)
            profile_line(self.record)


def profile_line(record: dict[str, float | int]) -> None:
    """Append one JSON line to the profile file, if profiling is on."""
    if _PROFILE:
        with open(_PROFILE, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
