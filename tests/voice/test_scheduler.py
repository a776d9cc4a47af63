"""DecodeScheduler with fake decode functions: priorities, coalescing, load adaptation, errors."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from voice.live.scheduler import DecodeScheduler, SchedulerConfig

pytestmark = pytest.mark.unit

TIMEOUT = 5.0


class GatedDecoder:
    """Records the order of decoded requests; the first decode blocks until ``gate`` opens."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, requests: Sequence[str]) -> list[str]:
        if not self.started.is_set():
            self.started.set()
            assert self.gate.wait(TIMEOUT)
        self.batches.append(list(requests))
        self.order.extend(requests)
        return [r.upper() for r in requests]


@pytest.fixture
def decoder() -> GatedDecoder:
    return GatedDecoder()


def blocked_scheduler(decoder: GatedDecoder, **config: object) -> DecodeScheduler[str, str]:
    """One worker, busy with a 'blocker' job until the test opens the gate."""
    scheduler: DecodeScheduler[str, str] = DecodeScheduler(
        decoder, SchedulerConfig(workers=1, **config)  # type: ignore[arg-type]
    )
    scheduler.submit_final("other", lambda: "blocker")
    assert decoder.started.wait(TIMEOUT)
    return scheduler


def test_finals_go_before_partials(decoder: GatedDecoder) -> None:
    scheduler = blocked_scheduler(decoder)
    p1 = scheduler.submit_partial("a", lambda: "partial-a")
    p2 = scheduler.submit_partial("b", lambda: "partial-b")
    f1 = scheduler.submit_final("c", lambda: "final-c")
    decoder.gate.set()
    assert f1.result(TIMEOUT) == ("final-c", "FINAL-C")
    p1.result(TIMEOUT), p2.result(TIMEOUT)
    assert decoder.order == ["blocker", "final-c", "partial-a", "partial-b"]
    scheduler.close()


def test_partials_coalesce_per_stream_and_prepare_late(decoder: GatedDecoder) -> None:
    scheduler = blocked_scheduler(decoder)
    audio = ["up to 1 s"]
    first = scheduler.submit_partial("a", lambda: f"a:{audio[0]}")
    second = scheduler.submit_partial("a", lambda: f"a:{audio[0]}")
    audio[0] = "up to 3 s"  # more audio arrived before a worker took the job
    decoder.gate.set()
    assert second.result(TIMEOUT) == ("a:up to 3 s", "A:UP TO 3 S")
    assert first.cancelled()
    assert decoder.order == ["blocker", "a:up to 3 s"]
    assert scheduler.metrics().partials_coalesced == 1
    scheduler.close()


def test_a_final_cancels_its_streams_waiting_partial(decoder: GatedDecoder) -> None:
    scheduler = blocked_scheduler(decoder)
    partial = scheduler.submit_partial("a", lambda: "partial-a")
    final = scheduler.submit_final("a", lambda: "final-a")
    decoder.gate.set()
    final.result(TIMEOUT)
    assert partial.cancelled()
    assert decoder.order == ["blocker", "final-a"]
    scheduler.close()


def test_least_recently_served_stream_goes_first(decoder: GatedDecoder) -> None:
    scheduler = blocked_scheduler(decoder)
    decoder.gate.set()
    scheduler.submit_partial("a", lambda: "a1").result(TIMEOUT)
    assert scheduler.wait_idle(TIMEOUT)
    decoder.started.clear()
    decoder.gate.clear()
    scheduler.submit_final("other", lambda: "blocker2")
    assert decoder.started.wait(TIMEOUT)
    pa = scheduler.submit_partial("a", lambda: "a2")
    pb = scheduler.submit_partial("b", lambda: "b1")  # b never decoded: it goes before a
    decoder.gate.set()
    pa.result(TIMEOUT), pb.result(TIMEOUT)
    assert decoder.order[-2:] == ["b1", "a2"]
    scheduler.close()


def test_batches_take_finals_first(decoder: GatedDecoder) -> None:
    scheduler = blocked_scheduler(decoder, max_batch=3)
    futures = [scheduler.submit_partial(s, lambda s=s: f"p-{s}") for s in "ab"]
    futures += [scheduler.submit_final(s, lambda s=s: f"f-{s}") for s in "cd"]
    decoder.gate.set()
    for future in futures:
        future.result(TIMEOUT)
    assert decoder.batches[1] == ["f-c", "f-d", "p-a"]
    assert decoder.batches[2] == ["p-b"]
    scheduler.close()


def test_failures_reach_their_futures_only() -> None:
    def decode(requests: Sequence[str]) -> list[str]:
        if "bad" in requests:
            raise RuntimeError("decoder exploded")
        return list(requests)

    scheduler: DecodeScheduler[str, str] = DecodeScheduler(decode, SchedulerConfig(workers=1))
    bad = scheduler.submit_final("a", lambda: "bad")
    with pytest.raises(RuntimeError, match="exploded"):
        bad.result(TIMEOUT)

    def broken_prepare() -> str:
        raise ValueError("no audio")

    with pytest.raises(ValueError):
        scheduler.submit_partial("b", broken_prepare).result(TIMEOUT)
    assert scheduler.submit_partial("c", lambda: None).result(TIMEOUT) is None
    assert scheduler.submit_final("d", lambda: "good").result(TIMEOUT) == ("good", "good")
    assert scheduler.metrics().failures == 2
    scheduler.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_partials_are_spaced_out_under_load_and_not_when_idle() -> None:
    clock = FakeClock()

    def decode(requests: Sequence[str]) -> list[str]:
        clock.now += 1.0  # every decode takes 1 s of the fake clock: workers always busy
        return list(requests)

    config = SchedulerConfig(workers=1, window=3.0, high_water=0.8, low_water=0.5)
    scheduler: DecodeScheduler[str, str] = DecodeScheduler(decode, config, clock=clock)
    for i in range(6):  # one stream back to back: busy, but nothing else waits
        scheduler.submit_partial("alone", lambda i=i: f"p{i}").result(TIMEOUT)
    assert scheduler.metrics().busy_fraction > 0.8
    assert scheduler.metrics().partial_spacing == 0.0
    for i in range(6):  # streams competing (new ones each round: none held back by its spacing)
        streams = [f"s{i}-{k}" for k in range(3)]
        pending = [scheduler.submit_partial(s, lambda s=s: f"p-{s}") for s in streams]
        for future in pending:
            future.result(TIMEOUT)
    loaded = scheduler.metrics()
    assert loaded.busy_fraction > 0.8
    assert loaded.partial_spacing > 0.5
    assert loaded.decode_ms["partial"].p50 == pytest.approx(1000.0)
    clock.now += 60.0  # a quiet minute: the next decodes find the workers idle
    for i in range(8):
        scheduler.submit_final("a", lambda i=i: f"f{i}").result(TIMEOUT)
        clock.now += 10.0
    assert scheduler.metrics().partial_spacing == 0.0
    scheduler.close()


def test_spaced_partials_still_run_after_their_delay() -> None:
    clock = FakeClock()
    config = SchedulerConfig(workers=1)
    scheduler: DecodeScheduler[str, str] = DecodeScheduler(list, config, clock=clock)
    scheduler._spacing = 0.05  # as if loaded; the real clock is not used here
    scheduler.submit_partial("a", lambda: "a1").result(TIMEOUT)
    clock.now += 0.01
    later = scheduler.submit_partial("a", lambda: "a2")
    clock.now += 0.1  # the worker's timed wait re-checks eligibility
    assert later.result(TIMEOUT) == ("a2", "a2")
    scheduler.close()


def test_close_cancels_waiting_jobs(decoder: GatedDecoder) -> None:
    scheduler = blocked_scheduler(decoder)
    waiting = scheduler.submit_partial("a", lambda: "never")
    decoder.gate.set()
    scheduler.close()
    assert waiting.cancelled() or waiting.result(TIMEOUT) == ("never", "NEVER")
    with pytest.raises(RuntimeError):
        scheduler.submit_final("a", lambda: "late")
