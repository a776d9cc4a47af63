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


class GatedEngine(RecordingEngine):
    """Signals when a batch is being served, and serves it only once the test opens the gate;
    a call id in ``poison`` makes any batch containing it fail (like a text the encoder rejects).
    """

    def __init__(self, poison: frozenset[str] = frozenset()) -> None:
        super().__init__(threading.Event())
        self.entered = threading.Event()
        self.poison = poison

    def suggest_batch(
        self, contexts: Sequence[SuggestContext], queue_ms: Sequence[float] | None = None
    ) -> list[SuggestResult]:
        self.entered.set()
        if any(c.call_id in self.poison for c in contexts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        return super().suggest_batch(contexts, queue_ms)


def test_a_cancelled_request_is_skipped_and_its_worker_keeps_serving() -> None:
    engine = GatedEngine()
    with MicroBatcher(engine, max_batch=8, max_wait_ms=5, workers=1) as batcher:
        busy = batcher.submit(_context(0))
        assert engine.entered.wait(5)  # the only worker is inside the engine
        for round_ in range(2):  # the old code lost one worker per cancellation
            gave_up, neighbour = batcher.submit(_context(10 + round_)), batcher.submit(_context(20))
            assert gave_up.cancel()  # still queued: e.g. asyncio.wait_for timed out
            engine.hold.set()  # type: ignore[union-attr]
            assert neighbour.result(5).call_id == "call-20"
        assert busy.result(5).call_id == "call-0"
        assert batcher.submit(_context(30)).result(5).call_id == "call-30"
    assert all(not w.is_alive() for w in batcher._workers)  # stopped by close, not killed


def test_one_request_the_engine_cannot_serve_fails_alone_not_its_batch_mates() -> None:
    engine = GatedEngine(poison=frozenset({"call-bad"}))
    with MicroBatcher(engine, max_batch=8, max_wait_ms=50, workers=1) as batcher:
        futures = [batcher.submit(_context(i)) for i in range(3)]
        bad = batcher.submit(SuggestContext("call-bad", (Turn("customer", "text"),)))
        engine.hold.set()  # type: ignore[union-attr]
        assert [f.result(5).call_id for f in futures] == ["call-0", "call-1", "call-2"]
        with pytest.raises(TypeError, match="TextEncodeInput"):
            bad.result(5)


def test_a_bug_in_serving_a_batch_answers_its_callers_and_the_worker_survives() -> None:
    class WrongCount(RecordingEngine):
        def suggest_batch(self, contexts, queue_ms=None):  # noqa: ANN001, ANN201
            results = super().suggest_batch(contexts, queue_ms)
            return results if contexts[0].call_id == "call-ok" else []

    from suggest.batching import BatcherBugError

    with MicroBatcher(WrongCount(), max_batch=4, max_wait_ms=5, workers=1) as batcher:
        with pytest.raises(BatcherBugError, match="ask again"):
            batcher.submit(_context(1)).result(5)
        ok = SuggestContext("call-ok", (Turn("customer", "hi"),))
        assert batcher.submit(ok).result(5).call_id == "call-ok"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (SuggestContext("s", (Turn("customer", "water \ud800"),)), "not valid Unicode"),
        (SuggestContext("k", (Turn("customer", "hi"),), k=0), "k=0"),
        (SuggestContext("k", (Turn("customer", "hi"),), k=-1), "k=-1"),
    ],
)
def test_unusable_text_or_k_is_refused_with_a_typed_error_before_batching(
    context: SuggestContext, message: str
) -> None:
    engine = RecordingEngine()
    with MicroBatcher(engine, max_batch=4, max_wait_ms=5) as batcher:
        with pytest.raises(InvalidContextError, match=message):
            batcher.submit(context).result(5)
    assert engine.batches == []  # never reached the engine (nor its batch-mates)
