"""Micro-batching front of the engine: concurrent requests from many calls, one embedding pass.

Callers (one per live call, from any thread) ``submit`` a context and get a Future. A worker
thread takes the first waiting request, keeps collecting for at most ``max_wait_ms`` or until
``max_batch`` requests are in, and serves them with one ``engine.suggest_batch``. Batching
amortises onnxruntime's per-call overhead and runs the encoder on a wider matrix; the bounded
wait caps the latency it adds. Several workers let one batch encode (onnxruntime releases the
GIL) while another does its Python work.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Protocol

from suggest.engine import validate
from suggest.errors import SuggestError
from suggest.types import SuggestContext, SuggestResult


class BatchEngine(Protocol):
    """What the batcher needs of an engine."""

    def suggest_batch(
        self, contexts: Sequence[SuggestContext], queue_ms: Sequence[float] | None = None
    ) -> list[SuggestResult]:
        """Serve many contexts at once."""
        ...


log = logging.getLogger(__name__)


class BatcherClosedError(SuggestError):
    """The batcher was closed; no more requests are accepted."""


class BatcherBugError(SuggestError):
    """The micro-batcher itself failed on a batch (a bug: see the log); the request was lost."""

    retryable = True


@dataclass
class _Request:
    context: SuggestContext
    future: Future[SuggestResult]
    arrived: float


_STOP = object()


class MicroBatcher:
    """Bounded-wait request batching in front of a :class:`~suggest.engine.SuggestionEngine`."""

    def __init__(
        self,
        engine: BatchEngine,
        *,
        max_batch: int = 16,
        max_wait_ms: float = 4.0,
        workers: int = 2,
    ) -> None:
        """Start ``workers`` threads serving ``engine``."""
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Request | object] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        """Makes "not closed, so queue it" one step w.r.t. :meth:`close`: a request queued after
        the stop markers would never be served, its Future never resolved."""
        self._workers = [
            threading.Thread(target=self._run, name=f"suggest-batcher-{i}", daemon=True)
            for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, context: SuggestContext) -> Future[SuggestResult]:
        """Queue a request; the Future holds its result (or its error, e.g. an invalid context)."""
        future: Future[SuggestResult] = Future()
        if self._closed:  # checked again under the lock; this spares a closed batcher validation
            future.set_exception(_closed_error())
            return future
        try:
            # a bad context fails alone, never its batch (no lock held); an engine that knows the
            # call's turns checks only the new ones
            getattr(self.engine, "check_context", validate)(context)
        except SuggestError as error:
            future.set_exception(error)
            return future
        with self._lock:  # close() cannot slip in between this check and the put
            queued = not self._closed
            if queued:
                self._queue.put(_Request(context, future, time.perf_counter()))
        if not queued:
            future.set_exception(_closed_error())
        return future

    def suggest(self, context: SuggestContext, timeout: float | None = None) -> SuggestResult:
        """Blocking convenience: submit and wait."""
        return self.submit(context).result(timeout)

    def close(self) -> None:
        """Serve what is queued, then stop the workers; requests submitted from now on fail with
        :class:`BatcherClosedError`."""
        with self._lock:  # every request queued before the stop markers is served
            if self._closed:
                return
            self._closed = True
            for _ in self._workers:
                self._queue.put(_STOP)
        for worker in self._workers:
            worker.join()

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            batch, stop = self._collect()
            try:
                self._serve(batch)
            except Exception:  # a bug here must never kill the worker: its callers would hang
                log.exception("suggest micro-batcher: serving a batch of %d failed", len(batch))
                for request in batch:
                    _settle(
                        request,
                        error=BatcherBugError(
                            "the micro-batcher failed on this request's batch",
                            hint="ask again; report the traceback logged by suggest.batching",
                        ),
                    )
            if stop:
                return

    def _collect(self) -> tuple[list[_Request], bool]:
        """The next batch: first request (blocking), then more until full or the wait ends."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        assert isinstance(first, _Request)
        batch = [first]
        deadline = first.arrived + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # leave it for after this batch
                break
            assert isinstance(item, _Request)
            batch.append(item)
        return batch, False

    def _serve(self, batch: list[_Request]) -> None:
        # A caller that gave up (a cancelled future, e.g. asyncio.wait_for timing out) is not
        # served: setting its result would raise InvalidStateError.
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        waits = [(started - r.arrived) * 1e3 for r in live]
        try:
            results = self.engine.suggest_batch([r.context for r in live], queue_ms=waits)
        except Exception as error:  # noqa: BLE001 - delivered to the caller(s), never lost
            if len(live) == 1:
                _settle(live[0], error=error)
                return
            # One bad request must not fail its batch-mates (other calls): each is retried alone.
            for request, wait in zip(live, waits, strict=True):
                self._serve_alone(request, wait)
            return
        for request, result in zip(live, results, strict=True):
            _settle(request, result=result)

    def _serve_alone(self, request: _Request, wait_ms: float) -> None:
        try:
            [result] = self.engine.suggest_batch([request.context], queue_ms=[wait_ms])
        except Exception as error:  # noqa: BLE001 - this request's own error, for its caller
            _settle(request, error=error)
        else:
            _settle(request, result=result)


def _closed_error() -> BatcherClosedError:
    return BatcherClosedError("the micro-batcher is closed")


def _settle(
    request: _Request, *, result: SuggestResult | None = None, error: BaseException | None = None
) -> None:
    """Answer a request; one already answered or cancelled is left as it is."""
    try:
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(result)  # type: ignore[arg-type]
    except InvalidStateError:
        pass  # the caller cancelled meanwhile: nobody is waiting for this answer
