"""Per-call locks of the real engine: batches that share calls never wait on each other forever.

Served by the demo's bundled (real, small) model with the MiniLM encoder attached.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest

from suggest.engine import SuggestionEngine, _Pending
from suggest.types import SuggestContext, SuggestResult, Turn

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def engine(bundled_suggestion_model: Path) -> SuggestionEngine:
    return SuggestionEngine.load(bundled_suggestion_model)


def _context(call_id: str, customer: str) -> SuggestContext:
    return SuggestContext(
        call_id=call_id,
        turns=(
            Turn("agent", "Hi! Would you consider donating to Save the Children today?"),
            Turn("customer", customer),
        ),
    )


def test_two_batches_holding_the_same_calls_in_opposite_orders_both_finish(
    engine: SuggestionEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batcher workers serving [A, B] and [B, A]: each used to hold its first call's lock
    and wait forever for the other's. Here both threads are made to take their first lock before
    either goes on (a barrier), which deadlocked every time before locks were taken in order."""
    a = _context("call-A", "I don't know, money is really tight for me right now.")
    b = _context("call-B", "Sure, tell me more about the charity.")
    both_took_a_lock = threading.Barrier(2, timeout=1.0)
    first = threading.local()
    take_lock = engine._pending

    def take_lock_then_meet(context: SuggestContext) -> _Pending:
        pending = take_lock(context)
        if not getattr(first, "taken", False):
            first.taken = True
            with contextlib.suppress(threading.BrokenBarrierError):  # the other thread waits
                both_took_a_lock.wait()  # on this very lock: the fixed order
        return pending

    monkeypatch.setattr(engine, "_pending", take_lock_then_meet)
    results: dict[str, list[SuggestResult]] = {}
    threads = [
        threading.Thread(target=lambda: results.__setitem__("AB", engine.suggest_batch([a, b]))),
        threading.Thread(target=lambda: results.__setitem__("BA", engine.suggest_batch([b, a]))),
    ]
    for thread in threads:
        thread.daemon = True  # a deadlocked thread must not hang the test run
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "suggest_batch deadlocked on the call locks"
    assert [r.call_id for r in results["AB"]] == ["call-A", "call-B"]  # each in its request's place
    assert [r.call_id for r in results["BA"]] == ["call-B", "call-A"]
    by_call = {r.call_id: r for r in results["AB"]}
    for result in results["BA"]:  # the second serving of a call reads the same state
        assert [s.action for s in result.suggestions] == [
            s.action for s in by_call[result.call_id].suggestions
        ]
    assert not any(lock.locked() for _state, lock in engine._calls.values())
    for call in ("call-A", "call-B"):
        engine.end_call(call)
