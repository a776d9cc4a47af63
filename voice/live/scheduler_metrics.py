"""What :class:`voice.live.scheduler.DecodeScheduler` reports of its load: the snapshot behind
/metrics, /healthz and the benchmarks, and the percentiles of its recent decode and wait times."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Percentiles:
    """p50/p95/max of recent samples, in milliseconds."""

    count: int
    p50: float
    p95: float
    max: float


@dataclass(frozen=True)
class SchedulerMetrics:
    """A snapshot of the scheduler's load (for /metrics, logs and benchmarks)."""

    workers: int
    queued_finals: int
    queued_partials: int
    running: int
    busy_fraction: float
    """Share of worker time spent decoding over the last ``window`` seconds."""
    partial_spacing: float
    """Seconds currently added between a stream's partials (0 when not loaded)."""
    finals_done: int
    partials_done: int
    partials_coalesced: int
    """Partials replaced by a newer one before they ran."""
    partials_cancelled: int
    failures: int
    decode_ms: dict[str, Percentiles]
    """Decode time per job (a batch's time is shared by its jobs), by kind."""
    wait_ms: dict[str, Percentiles]
    """Time from submission to a worker taking the job, by kind."""
    finals_cheap: int = 0
    """Finals decoded the cheap way because too many finals waited (included in finals_done)."""
    finals_shed: int = 0
    """Finals not decoded because more than ``shed_finals_after`` per decode slot waited (their
    futures failed with :class:`FinalShed`; not in finals_done nor failures)."""
    workers_alive: int | None = None
    """Worker threads still running (``None``: not reported). Below ``workers`` before
    :meth:`DecodeScheduler.close` means decode capacity was lost (/healthz reports it)."""

    @property
    def queue_depth(self) -> int:
        """Jobs waiting for a worker."""
        return self.queued_finals + self.queued_partials


def percentiles_of(samples: deque[float]) -> Percentiles:
    if not samples:
        return Percentiles(0, 0.0, 0.0, 0.0)
    ordered = sorted(samples)
    last = len(ordered) - 1
    return Percentiles(
        count=len(ordered),
        p50=1000 * ordered[round(0.5 * last)],
        p95=1000 * ordered[round(0.95 * last)],
        max=1000 * ordered[-1],
    )
