"""DecodeScheduler under faults: a bad batch fails only its jobs, workers survive, /healthz tells,
and an ended stream's queued finals are cancelled."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from voice.live.scheduler import DecodeScheduler, SchedulerConfig

pytestmark = pytest.mark.unit

TIMEOUT = 5.0


class Crash(BaseException):
    """Not an ``Exception``: gets past the decode's own ``except Exception``."""


def test_a_wrong_result_count_fails_its_batch_and_the_worker_goes_on() -> None:
    def decode(requests: Sequence[str]) -> list[str]:
        return [] if "bad" in requests else [r.upper() for r in requests]

    scheduler: DecodeScheduler[str, str] = DecodeScheduler(decode, SchedulerConfig(workers=1))
    try:
        bad = scheduler.submit_final("a", lambda: "bad")
        with pytest.raises(RuntimeError, match="0 results for 1 requests"):
            bad.result(TIMEOUT)
        assert scheduler.submit_final("b", lambda: "good").result(TIMEOUT) == ("good", "GOOD")
        assert scheduler.submit_partial("c", lambda: "next").result(TIMEOUT) == ("next", "NEXT")
        metrics = scheduler.metrics()
        assert metrics.workers_alive == 1 and metrics.failures == 1
    finally:
        scheduler.close()


def test_any_error_in_a_batch_fails_its_jobs_instead_of_the_worker() -> None:
    def decode(requests: Sequence[str]) -> list[str]:
        if "crash" in requests:
            raise Crash("backend blew up")
        return list(requests)

    scheduler: DecodeScheduler[str, str] = DecodeScheduler(decode, SchedulerConfig(workers=1))
    try:
        with pytest.raises(Crash):
            scheduler.submit_final("a", lambda: "crash").result(TIMEOUT)
        assert scheduler.submit_final("b", lambda: "fine").result(TIMEOUT) == ("fine", "fine")
        assert scheduler.metrics().workers_alive == 1
    finally:
        scheduler.close()


def test_workers_alive_counts_running_threads() -> None:
    scheduler: DecodeScheduler[str, str] = DecodeScheduler(list, SchedulerConfig(workers=2))
    assert scheduler.metrics().workers_alive == 2
    scheduler.close()
    assert scheduler.metrics().workers_alive == 0


def test_forget_cancels_the_streams_queued_finals_but_not_others() -> None:
    gate, started = threading.Event(), threading.Event()
    order: list[str] = []

    def decode(requests: Sequence[str]) -> list[str]:
        started.set()
        assert gate.wait(TIMEOUT)
        order.extend(requests)
        return list(requests)

    scheduler: DecodeScheduler[str, str] = DecodeScheduler(decode, SchedulerConfig(workers=1))
    try:
        blocker = scheduler.submit_final("other", lambda: "blocker")
        assert started.wait(TIMEOUT)
        ended = [scheduler.submit_final("ended", lambda: "ended-final") for _ in range(3)]
        live = scheduler.submit_final("live", lambda: "live-final")
        scheduler.forget("ended")
        assert all(f.cancelled() for f in ended)
        assert scheduler.metrics().queued_finals == 1
        gate.set()
        assert live.result(TIMEOUT) == ("live-final", "live-final")
        assert blocker.result(TIMEOUT) == ("blocker", "blocker")
        assert order == ["blocker", "live-final"]
    finally:
        gate.set()
        scheduler.close()


def _healthz(asr_metrics: dict[str, Any], tmp_path: Any) -> Any:
    from voice.config import ServerConfig
    from voice.server.app import create_app

    services = SimpleNamespace(
        manager=SimpleNamespace(sessions={}),
        hub=SimpleNamespace(observers=[]),
        asr=SimpleNamespace(metrics=lambda: asr_metrics, scheduler=None, early_final_counts={}),
    )
    app = create_app(ServerConfig(data_dir=str(tmp_path), sip_port=-1), services)  # type: ignore[arg-type]
    return TestClient(app).get("/healthz")  # outside `with`: no lifespan


def test_healthz_fails_when_a_decode_worker_died(tmp_path: Any) -> None:
    dead = _healthz({"workers": 2, "workers_alive": 1}, tmp_path)
    assert dead.status_code == 503 and dead.json()["status"] == "degraded"
    fine = _healthz({"workers": 2, "workers_alive": 2}, tmp_path)
    assert fine.status_code == 200 and fine.json()["status"] == "ok"
