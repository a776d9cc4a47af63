"""QA review requests never block the event loop, even when the review fails at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.harness import Env, ServerThread, make_services, new_app, scripted
from tests.voice.console_app import add_people
from voice.server.review import ReviewService, ReviewUnavailableError

pytestmark = pytest.mark.unit


class _InlineExecutor:
    """Runs each job before ``submit`` returns: the future is done when callbacks are added."""

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future


def _returns_within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``'s result, failing (not hanging) when it does not return in time."""
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"no return within {seconds} s (deadlocked)"
    return result[0]


def test_a_review_request_without_a_model_is_answered_and_the_server_keeps_serving(tmp_path: Path) -> None:
    services = make_services(tmp_path)  # no --suggest-model, no --models-root
    tokens = add_people(services)
    with ServerThread(new_app(services)) as server:
        env = Env(None, services, tokens)
        env.run = lambda fn, *args: server.run(fn(*args))  # type: ignore[method-assign]
        scripted(env, "CA-1", "alice", end=True)
        headers = env.headers("alice")
        review = httpx.post(f"{server.url}/api/qa/calls/CA-1/review", headers=headers, timeout=10)
        assert review.status_code == 409 and "no suggestion model" in review.json()["detail"]
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        again = httpx.post(f"{server.url}/api/qa/calls/CA-1/review", headers=headers, timeout=10)
        assert again.status_code == 409  # a new attempt, not a stale shared future


def test_a_review_that_is_done_before_its_callback_is_added_does_not_deadlock(tmp_path: Path) -> None:
    config = make_services(tmp_path).config
    service = ReviewService(config, qa=None, store=None)  # type: ignore[arg-type]
    service._executor = _InlineExecutor()  # type: ignore[assignment]
    first = _returns_within(5, lambda: service.submit("CA-1", None))  # waited forever on its own lock
    assert isinstance(first.exception(timeout=1), ReviewUnavailableError)
    second = service.submit("CA-1", None)
    assert second is not first  # the finished ask was forgotten, the next one computes again
