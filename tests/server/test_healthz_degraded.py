"""/healthz tells a load balancer when the process cannot do its work: 503 ``degraded`` while every
decode fails. While the database is unavailable (the last heartbeat round failed) it says
``degraded`` with the storage problem but keeps 200: the database is shared, so a 503 would drain
every server at once, while each still takes calls and keeps their transcripts as pending saves.
The healthy answer keeps its fields."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.server.harness import make_services, new_app
from voice.errors import StorageError
from voice.server.app import DecodeFailureWindow

pytestmark = pytest.mark.unit


class _Asr:
    """The ASR runtime's metrics as the decode scheduler reports them (cumulative counts)."""

    def __init__(self) -> None:
        self.counts = {"workers": 2, "workers_alive": 2, "failures": 0, "finals_done": 0, "partials_done": 0}

    def metrics(self) -> dict[str, Any]:
        return dict(self.counts)

    def close(self) -> None:
        pass


def test_healthz_is_degraded_while_the_heartbeat_round_cannot_reach_the_database(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    real = services.store.session
    down = False

    @contextlib.contextmanager
    def session() -> Iterator[Any]:
        if down:
            raise StorageError("database sqlite:///nextline.db: database is locked", hint="retry")
        with real() as opened:
            yield opened

    services.store.session = session  # type: ignore[method-assign]
    client = TestClient(new_app(services))  # no lifespan: the rounds are run by hand below
    try:
        asyncio.run(services._liveness_round())
        healthy = client.get("/healthz")
        assert healthy.status_code == 200 and set(healthy.json()) == {"status", "active_calls", "asr"}

        down = True
        asyncio.run(services._liveness_round())
        answer = client.get("/healthz")
        assert answer.status_code == 200 and answer.json()["status"] == "degraded"
        assert "database is locked" in answer.json()["storage"]["error"]
        assert answer.json()["storage"]["pending_saves"] == 0

        down = False
        asyncio.run(services._liveness_round())
        assert client.get("/healthz").json()["status"] == "ok"
    finally:
        services.db_executor.shutdown()
        services.store.close()


def test_healthz_is_degraded_while_every_decode_fails(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    asr = services.asr = _Asr()
    client = TestClient(new_app(services))
    try:
        assert client.get("/healthz").status_code == 200  # nothing decoded yet
        asr.counts["failures"] = 12
        answer = client.get("/healthz")
        assert answer.status_code == 503 and answer.json()["status"] == "degraded"
        assert "12 decodes failed and none succeeded" in answer.json()["asr"]["problem"]
        assert answer.json()["asr"]["failures"] == 12  # the metrics are still there
        asr.counts["finals_done"] = 3  # one worked again
        assert client.get("/healthz").status_code == 200
        asr.counts["workers_alive"] = 1
        dead = client.get("/healthz").json()
        assert dead["status"] == "degraded" and dead["asr"]["problem"] == "1 of 2 decode workers alive"
    finally:
        services.store.close()


def test_the_decode_window_judges_the_last_minute_only() -> None:
    window = DecodeFailureWindow(60.0)
    assert window.problem(0.0, failures=0, done=100) is None
    assert window.problem(30.0, failures=5, done=150) is None  # a few failures among decodes that work
    assert window.problem(70.0, failures=9, done=180) is None
    assert window.problem(100.0, failures=40, done=180) is None  # decodes worked within the last minute
    assert window.problem(140.0, failures=45, done=180) == "36 decodes failed and none succeeded in the last 70 s"
    assert window.problem(300.0, failures=45, done=180) is None  # nothing decoded at all: no calls, fine
    assert window.problem(330.0, failures=46, done=180) is None  # one failed decode on an idle server


def test_one_failed_decode_on_an_idle_server_is_no_outage() -> None:
    """The only final of a lone call failed, nothing else ran: no 503 (it lasted 60 s and more)."""
    window = DecodeFailureWindow(60.0)
    assert [window.problem(float(t), failures=int(t >= 30), done=0) for t in range(0, 130, 10)] == [None] * 13
    assert DecodeFailureWindow(60.0).problem(1000.0, failures=1, done=0) is None  # first poll after start


def test_failures_that_stopped_with_the_last_call_are_no_outage() -> None:
    """A busy server's last call ended with failed finals, then it is idle: not 503 ~45 s later."""
    window = DecodeFailureWindow(60.0)
    polls = [(0, 0, 0), (10, 0, 500), (20, 6, 500), (30, 6, 500), (75, 6, 500), (85, 6, 500), (140, 6, 500)]
    assert [window.problem(float(t), failures=f, done=d) for t, f, d in polls] == [None] * len(polls)


def test_every_decode_failing_for_a_minute_is_still_an_outage() -> None:
    window = DecodeFailureWindow(60.0)
    answers = [window.problem(float(t), failures=max(0, t - 100),
                                  done=5 * min(t, 100)) for t in range(0, 200, 10)]
    assert answers[:16] == [None] * 16  # decodes worked until t=100: judged only once a minute failed
    assert answers[16] == "60 decodes failed and none succeeded in the last 60 s"
    assert all(answer is not None for answer in answers[16:])


def test_healthz_shows_call_end_saves_still_waiting_once_the_database_works(tmp_path: Path) -> None:
    """The database is back but a save stays (refused, unreadable): degraded with 200, not ok."""
    services = make_services(tmp_path)
    (tmp_path / "pending").mkdir()
    (tmp_path / "pending" / "CA-9-0123456789ab.json").write_text("{not json")
    client = TestClient(new_app(services))  # no lifespan: the round is run by hand
    try:
        asyncio.run(services._liveness_round())
        answer = client.get("/healthz")
        assert answer.status_code == 200 and answer.json()["status"] == "degraded"
        assert answer.json()["storage"]["pending_saves"] == 1 and answer.json()["storage"]["error"] is None
        (tmp_path / "pending" / "CA-9-0123456789ab.json").unlink()  # the operator dealt with it
        asyncio.run(services._liveness_round())
        assert client.get("/healthz").json() == {"status": "ok", "active_calls": 0,
                                                 "asr": client.get("/healthz").json()["asr"]}
    finally:
        services.db_executor.shutdown()
        services.store.close()
