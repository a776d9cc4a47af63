"""A request submitted while the micro-batcher closes is answered: served, or refused as closed.

Never queued behind the workers' stop markers, where its Future would never resolve.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future

import pytest

import suggest.batching as batching
from suggest.batching import BatcherClosedError, MicroBatcher
from suggest.types import LatencyBreakdown, SuggestContext, SuggestResult, Turn

pytestmark = pytest.mark.unit


class EchoEngine:
    """Answers each context with its own call id."""

    def suggest_batch(
        self, contexts: Sequence[SuggestContext], queue_ms: Sequence[float] | None = None
    ) -> list[SuggestResult]:
        return [
            SuggestResult(c.call_id, len(c.turns), (), None, "t/v", c.tenant,
                          LatencyBreakdown(0, 0, 0, 0, 0))
            for c in contexts
        ]


def _context(i: int) -> SuggestContext:
    return SuggestContext(call_id=f"call-{i}", turns=(Turn("customer", f"turn {i}"),))


def test_a_submit_that_passed_the_closed_check_before_close_still_resolves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    validating, proceed = threading.Event(), threading.Event()
    real_validate = batching.validate

    def slow_validate(context: SuggestContext) -> None:  # close() happens during validation
        real_validate(context)
        validating.set()
        proceed.wait(5)

    monkeypatch.setattr(batching, "validate", slow_validate)
    batcher = MicroBatcher(EchoEngine(), workers=2)
    submitted: list[Future[SuggestResult]] = []
    thread = threading.Thread(target=lambda: submitted.append(batcher.submit(_context(1))))
    thread.start()
    assert validating.wait(5)
    batcher.close()
    proceed.set()
    thread.join(5)
    [future] = submitted
    with pytest.raises(BatcherClosedError):
        future.result(timeout=2)


def test_every_request_racing_close_is_served_or_refused_never_left_waiting() -> None:
    batcher = MicroBatcher(EchoEngine(), workers=2, max_wait_ms=1.0)
    futures: list[Future[SuggestResult]] = []
    lock = threading.Lock()
    start = threading.Barrier(9)

    def client(n: int) -> None:
        start.wait(5)
        for i in range(200):
            future = batcher.submit(_context(n * 1000 + i))
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    start.wait(5)
    batcher.close()
    for thread in threads:
        thread.join(10)
    assert len(futures) == 8 * 200
    for future in futures:
        try:
            assert future.result(timeout=2).call_id.startswith("call-")
        except BatcherClosedError:
            pass


def test_requests_queued_before_close_are_served_and_later_ones_refused() -> None:
    batcher = MicroBatcher(EchoEngine(), workers=1, max_wait_ms=50.0)
    early = [batcher.submit(_context(i)) for i in range(5)]
    batcher.close()
    assert [f.result(timeout=2).call_id for f in early] == [f"call-{i}" for i in range(5)]
    with pytest.raises(BatcherClosedError):
        batcher.submit(_context(9)).result(timeout=2)
