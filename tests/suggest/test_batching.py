"""The micro-batcher gathers concurrent requests, bounds the wait, and isolates bad requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from suggest.batching import BatcherClosedError, MicroBatcher
from suggest.engine import InvalidContextError
from suggest.types import LatencyBreakdown, SuggestContext, SuggestResult, Turn

pytestmark = pytest.mark.unit


class RecordingEngine:
    """Answers each context with its own call id; remembers batch sizes."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.batches: list[int] = []
        self.hold = hold

    def suggest_batch(
        self, contexts: Sequence[SuggestContext], queue_ms: Sequence[float] | None = None
    ) -> list[SuggestResult]:
        if self.hold is not None:
            self.hold.wait(5)
        self.batches.append(len(contexts))
        return [
            SuggestResult(
                c.call_id,
                len(c.turns),
                (),
                None,
                "t/v",
                c.tenant,
                LatencyBreakdown(0, 0, 0, 0, 0, queue_ms=q, batch_size=len(contexts)),
            )
            for c, q in zip(contexts, queue_ms or [0.0] * len(contexts), strict=True)
        ]


def _context(i: int) -> SuggestContext:
    return SuggestContext(call_id=f"call-{i}", turns=(Turn("customer", f"turn {i}"),))


def test_concurrent_requests_are_served_in_batches_with_their_own_results() -> None:
    hold = threading.Event()
    engine = RecordingEngine(hold)
    with MicroBatcher(engine, max_batch=8, max_wait_ms=50, workers=1) as batcher:
        futures = [batcher.submit(_context(i)) for i in range(20)]
        hold.set()
        results = [f.result(5) for f in futures]
    assert [r.call_id for r in results] == [f"call-{i}" for i in range(20)]
    assert sum(engine.batches) == 20 and max(engine.batches) == 8 and len(engine.batches) < 20
    assert all(r.latency.queue_ms >= 0 for r in results)


def test_a_lone_request_waits_at_most_the_configured_time() -> None:
    engine = RecordingEngine()
    with MicroBatcher(engine, max_batch=32, max_wait_ms=20, workers=1) as batcher:
        started = time.perf_counter()
        result = batcher.suggest(_context(1), timeout=5)
        elapsed = time.perf_counter() - started
    assert result.call_id == "call-1" and engine.batches == [1]
    assert elapsed < 1.0  # bounded: 20 ms wait plus scheduling slack on a busy machine


def test_invalid_context_fails_alone() -> None:
    engine = RecordingEngine()
    bad = SuggestContext(call_id="bad", turns=(Turn("robot", "hi"),))  # type: ignore[arg-type]
    with MicroBatcher(engine, max_batch=4, max_wait_ms=5) as batcher:
        bad_future, good_future = batcher.submit(bad), batcher.submit(_context(2))
        with pytest.raises(InvalidContextError, match="role"):
            bad_future.result(5)
        assert good_future.result(5).call_id == "call-2"


def test_engine_errors_reach_every_caller_of_the_batch_and_close_refuses_new_work() -> None:
    class Failing(RecordingEngine):
        def suggest_batch(self, contexts, queue_ms=None):  # noqa: ANN001, ANN201
            raise RuntimeError("encoder crashed")

    batcher = MicroBatcher(Failing(), max_batch=4, max_wait_ms=5)
    futures = [batcher.submit(_context(i)) for i in range(3)]
    for future in futures:
        with pytest.raises(RuntimeError, match="encoder crashed"):
            future.result(5)
    batcher.close()
    with pytest.raises(BatcherClosedError):
        batcher.submit(_context(9)).result(1)
