"""Which stream decodes next: one process-wide scheduler in front of one loaded ASR model.

Every live call leg asks for two kinds of decodes: *partials* (the open turn's growing buffer,
for words on the agent's screen) and *finals* (a closed turn decoded whole, for the stored
transcript and the suggestion engine). A fixed pool of worker threads serves them all:

- a final goes before any partial (FIFO among finals), except that under a backlog (more
  finals waiting than workers) partials keep a share of the workers: a due partial still goes
  first while partials took less than ``partial_share`` of the workers' time over the last
  ``window`` s. Under overload an open turn so still gets streamed words (a final that cannot
  be decoded in time falls back on them) instead of none;
- at most one partial waits per stream: a new one replaces the waiting one (coalescing), and
  its request is prepared only when a worker takes it, so it decodes the newest audio;
- among waiting partials, the stream served least recently goes first;
- partial rate adapts to load: while the workers' busy fraction stays above ``high_water``
  and work of other streams is waiting, each stream's partials are spaced further apart (up to
  ``max_spacing`` s); the spacing shrinks again below ``low_water``. One stream decoding back
  to back (one caller talking on a one-worker CPU server) is not overload and is not slowed;
- finals degrade instead of queueing without limit: a final taken while more than
  ``cheap_finals_after`` finals per worker wait is decoded the cheap way (the ``cheapen`` hook:
  on the live server greedy, in the partials' encoder window, without earlier turns' context);
- and when even cheap finals arrive faster than the workers decode them, finals are *shed*:
  once more than ``shed_finals_after`` finals per decode slot (worker x ``max_batch``) wait,
  the oldest beyond that limit are not decoded; their futures fail with :class:`FinalShed` at
  once (the caller's streamed words stand in). Oldest first: they are the least useful to a
  live suggestion, and resolving them keeps the head of each call's in-order emission moving.
  Among the waiting finals those submitted with ``stand_in=True`` (the caller has streamed
  words for the turn) are shed before those without, which would otherwise lose their turn.

What is *not* promised: that every closed turn gets its final decode. Under sustained overload
a shed final's turn carries its streamed (partial) words, or none (a turn too short or too
starved for a partial: not transcribed); ``finals_shed`` in :meth:`metrics`
(``nextline_asr_finals_shed`` on /metrics) counts the sheds and voice.processors.asr counts how
each turn was closed. The backlog is bounded (at most ``shed_finals_after`` x ``workers`` x
``max_batch`` finals wait), so a final that is decoded waits behind at most that many finals
(plus the partials' share); it is not promised to be on time: on one CPU worker whose cheap
finals take ~1 s, four waiting are ~4 s (docs/results/streaming.md). Shedding off (``None``):
the queue of finals grows without bound, and a call's end gives up its finals after its flush
timeout.

On CPU the live server runs one single-thread decode per core (two workers on 2 cores: a second
decode starts while one runs; voice.live.asr_runtime.decode_slots, docs/results/streaming.md);
batching streams pays only on CUDA, where ``max_batch`` > 1 hands a worker several requests at once.

Plain threads and ``concurrent.futures.Future``; no asyncio here (an event loop consumes the
futures with ``loop.call_soon_threadsafe``). ``clock`` is injectable for tests.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from voice.live.scheduler_metrics import Percentiles, SchedulerMetrics, percentiles_of

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

__all__ = [
    "DecodeKind",
    "DecodeScheduler",
    "FinalShed",
    "Percentiles",
    "SchedulerConfig",
    "SchedulerMetrics",
]

_SAMPLES_KEPT = 2000  # timing samples kept per kind for percentiles


class FinalShed(Exception):
    """A final decode not run: too many finals waited and it was among the oldest (or, among
    them, one whose caller had streamed words to stand in). Not a failure of the call: the
    decoders are overloaded and the caller's streamed words stand in for the final."""


class DecodeKind(StrEnum):
    """Priority class of a decode job."""

    FINAL = "final"
    PARTIAL = "partial"


@dataclass(frozen=True)
class SchedulerConfig:
    """Size and load policy of a :class:`DecodeScheduler`."""

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    """Worker threads, each running one decode at a time (the live server: one per core)."""
    max_batch: int = 1
    """Jobs handed to one ``decode_batch`` call (1 on CPU; more on CUDA, finals first)."""
    high_water: float = 0.85
    """Busy fraction above which partials are spaced further apart."""
    low_water: float = 0.6
    """Busy fraction below which the spacing shrinks again."""
    max_spacing: float = 3.0
    """Most seconds added between the end of a stream's partial decode and its next start."""
    window: float = 3.0
    """Seconds over which the busy fraction is measured."""
    cheap_finals_after: int = 2
    """Finals waiting per worker beyond which a final taken is decoded the cheap way (the
    scheduler's ``cheapen`` hook): a backlog of finals is cleared faster instead of growing."""
    shed_finals_after: int | None = 4
    """Finals waiting per decode slot (worker x ``max_batch``: a batching GPU worker clears
    that many at once) beyond which the oldest are shed (their futures fail with
    :class:`FinalShed` instead of decoding), so the backlog, and with it a decoded final's
    wait, stays bounded. ``None``: never shed (the backlog grows while finals arrive faster
    than even cheap decodes). Keep it above ``cheap_finals_after``: finals are cheapened only
    while more than that wait, and a limit close to it leaves most finals on the slow path.
    measured (3 SpokenWOZ calls, 60 s, one tiny.en worker, every decode 6x slower and beam
    finals 1.2 s more; docs/results/streaming.md, "Live ASR under overload"): off, backlog up
    to 19-27 and final delay p95 25-32 s; 4: backlog <= 4, p95 6.8-7.8 s, 38-39 of 50 turns
    with words (off: 26-36); 3: p95 6.6 s but 28 (fewer finals cheap, more shed); 6: p95
    13.7 s, 26. At the test's load (beam finals +1.2 s) 4 sheds 0-2 of 50 finals."""
    partial_share: float = 0.2
    """Share of the workers' time (over ``window``) that due partials may take ahead of finals
    while more finals wait than there are workers: under overload partials slow down but do
    not stop (their words stand in for finals that cannot be decoded in time). 0: finals
    always first."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.max_batch < 1:
            raise ValueError("workers and max_batch must be >= 1")
        if self.cheap_finals_after < 0 or not 0.0 <= self.partial_share <= 1.0:
            raise ValueError("need cheap_finals_after >= 0 and 0 <= partial_share <= 1")
        if self.shed_finals_after is not None and self.shed_finals_after < 1:
            raise ValueError("shed_finals_after must be >= 1 or None")
        if not 0.0 < self.low_water <= self.high_water <= 1.0:
            raise ValueError("need 0 < low_water <= high_water <= 1")


@dataclass
class _Job(Generic[Req, Res]):
    stream: Hashable
    kind: DecodeKind
    prepare: Callable[[], Req | None]
    future: Future[tuple[Req, Res] | None]
    submitted: float
    cheap: bool = False  # taken while the finals' backlog was over its limit
    stand_in: bool = False  # a final whose caller has streamed words for it: shed first
    speculative: bool = False  # an early final (its turn is still open): shed before any real final


@dataclass
class _StreamState:
    last_started: float = float("-inf")
    last_done: float = float("-inf")


class DecodeScheduler(Generic[Req, Res]):
    """Worker pool with final-first, coalesced, load-adaptive partial scheduling."""

    def __init__(
        self,
        decode_batch: Callable[[Sequence[Req]], Sequence[Res]],
        config: SchedulerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "asr",
        cheapen: Callable[[Req], Req] | None = None,
    ) -> None:
        """Start the workers.

        Args:
            decode_batch: decodes a list of prepared requests, results in the same order; runs
                on worker threads (several at once when ``workers`` > 1).
            config: pool size and load policy.
            clock: monotonic seconds (tests pass a fake).
            name: thread name prefix.
            cheapen: a cheaper request for the same final (runs on the worker), used while the
                finals' backlog is over ``config.cheap_finals_after``; the future then gives
                the cheap request with its result. ``None``: finals are never degraded.
        """
        self.config = config or SchedulerConfig()
        self._decode_batch = decode_batch
        self._cheapen = cheapen
        self._clock = clock
        self._cond = threading.Condition()
        self._finals: deque[_Job[Req, Res]] = deque()
        self._partials: dict[Hashable, _Job[Req, Res]] = {}
        self._streams: dict[Hashable, _StreamState] = {}
        self._running = 0
        # (start, end, share of partials) of finished work; (start, share of partials) running
        self._busy: deque[tuple[float, float, float]] = deque()
        self._running_since: dict[int, tuple[float, float]] = {}
        self._spacing = 0.0
        self._counts = {
            "finals": 0, "partials": 0, "coalesced": 0, "cancelled": 0, "failed": 0, "cheap": 0, "shed": 0
        }
        self._decode_samples: dict[DecodeKind, deque[float]] = {
            k: deque(maxlen=_SAMPLES_KEPT) for k in DecodeKind
        }
        self._wait_samples: dict[DecodeKind, deque[float]] = {
            k: deque(maxlen=_SAMPLES_KEPT) for k in DecodeKind
        }
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-decode-{i}", daemon=True)
            for i in range(self.config.workers)
        ]
        for thread in self._threads:
            thread.start()

    # --- submitting ---------------------------------------------------------------------------

    def submit_final(
        self, stream: Hashable, prepare: Callable[[], Req | None], *, stand_in: bool = False,
        speculative: bool = False,
    ) -> Future[tuple[Req, Res] | None]:
        """Queue a final decode (ahead of every partial); the stream's waiting partial is
        cancelled. The future gives ``(request, result)``, or ``None`` if ``prepare`` gave none,
        or fails with :class:`FinalShed` if the backlog of finals overflowed before a worker
        took it (``stand_in``: the caller has streamed words for this final, so it is shed
        before older finals without)."""
        with self._cond:
            self._cancel_partial_locked(stream)
            job = self._job(stream, DecodeKind.FINAL, prepare)
            job.stand_in = stand_in
            job.speculative = speculative  # an early final: may be cancelled when speech resumes
            self._finals.append(job)
            shed = self._shed_locked()
            self._cond.notify()
        self._resolve_shed(shed)
        return job.future

    def submit_partial(
        self, stream: Hashable, prepare: Callable[[], Req | None]
    ) -> Future[tuple[Req, Res] | None]:
        """Queue a partial decode for ``stream``, replacing one that still waits (its future is
        cancelled). ``prepare`` runs on the worker, just before decoding."""
        with self._cond:
            if self._cancel_partial_locked(stream):
                self._counts["coalesced"] += 1
                self._counts["cancelled"] -= 1
            job = self._job(stream, DecodeKind.PARTIAL, prepare)
            self._partials[stream] = job
            self._cond.notify()
            return job.future

    def cancel_partial(self, stream: Hashable) -> bool:
        """Drop the stream's waiting partial (a running one finishes); True if one was dropped."""
        with self._cond:
            return self._cancel_partial_locked(stream)

    def forget(self, stream: Hashable) -> None:
        """The stream ended: cancel its waiting partial and queued finals, drop its bookkeeping.

        Running decodes finish. Why the finals too: an ended call's finals would otherwise still
        decode, ahead of live calls' finals, for a consumer that no longer waits for them.
        """
        with self._cond:
            self._cancel_partial_locked(stream)
            kept: deque[_Job[Req, Res]] = deque()
            for job in self._finals:
                if job.stream == stream:
                    job.future.cancel()
                else:
                    kept.append(job)
            self._finals = kept
            self._streams.pop(stream, None)

    # --- observing ----------------------------------------------------------------------------

    def metrics(self) -> SchedulerMetrics:
        """Current queue depth, busy fraction and recent timing percentiles."""
        with self._cond:
            now = self._clock()
            return SchedulerMetrics(
                workers=self.config.workers,
                queued_finals=self._waiting_finals_locked(),  # not early finals cancelled since
                queued_partials=len(self._partials),
                running=self._running,
                busy_fraction=self._busy_fraction_locked(now),
                partial_spacing=self._spacing,
                finals_done=self._counts["finals"],
                partials_done=self._counts["partials"],
                finals_cheap=self._counts["cheap"],
                finals_shed=self._counts["shed"],
                partials_coalesced=self._counts["coalesced"],
                partials_cancelled=self._counts["cancelled"],
                failures=self._counts["failed"],
                workers_alive=sum(thread.is_alive() for thread in self._threads),
                decode_ms={k.value: percentiles_of(v) for k, v in self._decode_samples.items()},
                wait_ms={k.value: percentiles_of(v) for k, v in self._wait_samples.items()},
            )

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing running."""
        with self._cond:
            return not self._finals and not self._partials and self._running == 0

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until :attr:`idle` (replay harnesses); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._finals or self._partials or self._running:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 0.1)
            return True

    def close(self, *, wait: bool = True) -> None:
        """Stop taking work; waiting jobs are cancelled, running ones finish."""
        with self._cond:
            self._closed = True
            for job in [*self._finals, *self._partials.values()]:
                job.future.cancel()
            self._finals.clear()
            self._partials.clear()
            self._cond.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()

    # --- workers ------------------------------------------------------------------------------

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            with self._cond:
                jobs = self._take_locked()
                if jobs is None:
                    return
                started = self._clock()
                self._running += len(jobs)
                self._running_since[ident] = (started, _partial_part(jobs))
            try:
                self._run(jobs, started)
            except BaseException as exc:  # a worker must outlive any one batch
                # Why: a dead worker left its batch's futures RUNNING forever and every later
                # job of every call unserved; fail the batch and keep serving.
                log.exception("decode worker error on a batch of %d job(s)", len(jobs))
                self._fail([job for job in jobs if not job.future.done()], exc)
            finally:
                with self._cond:
                    end = self._clock()
                    self._running -= len(jobs)
                    del self._running_since[ident]
                    self._busy.append((started, end, _partial_part(jobs)))
                    for job in jobs:
                        if job.kind is DecodeKind.PARTIAL and job.stream in self._streams:
                            self._streams[job.stream].last_done = end
                    self._adapt_spacing_locked(end, {job.stream for job in jobs})
                    self._cond.notify_all()

    def _take_locked(self) -> list[_Job[Req, Res]] | None:
        """Wait for and claim up to ``max_batch`` jobs (finals first, save the partials' share
        under a backlog of finals); None once closed."""
        while True:
            if self._closed:
                return None
            now = self._clock()
            reserved, delay = self._reserved_partial_locked(now)
            jobs = self._take_finals_locked(self.config.max_batch - len(reserved)) + reserved
            while len(jobs) < self.config.max_batch:
                job, delay = self._next_partial_locked(now)
                if job is None:
                    break
                jobs.append(job)
            if jobs:
                for job in jobs:
                    self._wait_samples[job.kind].append(now - job.submitted)
                return jobs
            self._cond.wait(timeout=delay if delay is not None else None)

    def _reserved_partial_locked(self, now: float) -> tuple[list[_Job[Req, Res]], float | None]:
        """A due partial to take ahead of waiting finals: only while more finals wait than there
        are workers (a backlog) and partials took less than ``partial_share`` of the window."""
        backlog = self._waiting_finals_locked() > self.config.workers
        if not backlog or self._busy_fraction_locked(now, partials=True) >= self.config.partial_share:
            return [], None
        job, delay = self._next_partial_locked(now)
        return ([job] if job is not None else []), delay

    def _waiting_finals_locked(self) -> int:
        return sum(not job.future.cancelled() for job in self._finals)

    def _shed_locked(self) -> list[tuple[_Job[Req, Res], int]]:
        """Take the finals over ``shed_finals_after`` per decode slot out of the queue: the oldest
        with a stand-in first, then the oldest without; each with the backlog it was shed from.

        Called on every submission of a final, so at most the limit ever waits (a worker taking
        a final then leaves one fewer). Why at submission and not when a worker takes one: the
        shed turn's stand-in goes out at once instead of after the running decode.
        """
        limit = self._shed_limit()
        if limit is None:
            return []
        waiting = [job for job in self._finals if not job.future.cancelled()]
        excess = len(waiting) - limit
        if excess <= 0:
            return []
        # Speculative (early) finals go first: shedding a closed turn's final to make room for
        # one that speech resuming may cancel a moment later loses a decode for nothing.
        victims = [job for job in waiting if job.speculative][:excess]
        victims += [job for job in waiting if job.stand_in and not job.speculative][: excess - len(victims)]
        victims += [job for job in waiting if not job.stand_in and not job.speculative][: excess - len(victims)]
        gone = {id(job) for job in victims}
        self._finals = deque(job for job in self._finals if id(job) not in gone and not job.future.cancelled())
        self._counts["shed"] += len(victims)
        return [(job, len(waiting)) for job in victims]

    def _shed_limit(self) -> int | None:
        per_slot = self.config.shed_finals_after
        return None if per_slot is None else per_slot * self.config.workers * self.config.max_batch

    def _resolve_shed(self, shed: list[tuple[_Job[Req, Res], int]]) -> None:
        """Fail shed finals' futures (outside the lock: their callbacks are the caller's)."""
        for job, backlog in shed:
            reason = FinalShed(
                f"final of {job.stream!r} shed unrun: {backlog} finals waited, over the limit of "
                f"{self._shed_limit()} (decoders overloaded)"
            )
            try:
                job.future.set_exception(reason)
            except InvalidStateError:  # cancelled meanwhile (e.g. an early final whose speech resumed)
                pass

    def _take_finals_locked(self, room: int) -> list[_Job[Req, Res]]:
        """Up to ``room`` queued finals; one taken while more finals wait than
        ``cheap_finals_after`` per worker is marked to be decoded the cheap way."""
        limit = self.config.cheap_finals_after * self.config.workers
        jobs: list[_Job[Req, Res]] = []
        while self._finals and len(jobs) < room:
            job = self._finals.popleft()
            if job.future.cancelled():  # e.g. an early final whose speech resumed: not work
                continue
            job.cheap = self._cheapen is not None and 1 + self._waiting_finals_locked() > limit
            jobs.append(job)
        return jobs

    def _next_partial_locked(self, now: float) -> tuple[_Job[Req, Res] | None, float | None]:
        """The eligible partial of the least recently served stream, or how long to wait."""
        best: _Job[Req, Res] | None = None
        best_started = float("inf")
        soonest: float | None = None
        for stream, job in self._partials.items():
            state = self._streams.setdefault(stream, _StreamState())
            ready_at = state.last_done + self._spacing
            if ready_at > now:
                soonest = min(soonest or ready_at - now, ready_at - now)
                continue
            if state.last_started < best_started:
                best, best_started = job, state.last_started
        if best is None:
            return None, soonest
        del self._partials[best.stream]
        self._streams[best.stream].last_started = now
        return best, None

    def _run(self, jobs: list[_Job[Req, Res]], started: float) -> None:
        prepared: list[tuple[_Job[Req, Res], Req]] = []
        for job in jobs:
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                request = job.prepare()
                if request is not None and job.cheap and self._cheapen is not None:
                    request = self._cheapen(request)
            except Exception as exc:  # a bad request fails its own future only
                self._fail([job], exc)
                continue
            if request is None:
                job.future.set_result(None)
            else:
                prepared.append((job, request))
        if not prepared:
            return
        try:
            results = list(self._decode_batch([request for _, request in prepared]))
            if len(results) != len(prepared):
                raise RuntimeError(
                    f"decode_batch returned {len(results)} results for {len(prepared)} requests"
                )
        except Exception as exc:  # reported through every future of the batch
            log.exception("decode failed for %d request(s)", len(prepared))
            self._fail([job for job, _ in prepared], exc)
            return
        share = (self._clock() - started) / len(prepared)
        with self._cond:
            for job, _ in prepared:
                self._decode_samples[job.kind].append(share)
                self._counts["finals" if job.kind is DecodeKind.FINAL else "partials"] += 1
                self._counts["cheap"] += job.cheap
        for (job, request), result in zip(prepared, results, strict=True):
            job.future.set_result((request, result))

    def _fail(self, jobs: list[_Job[Req, Res]], exc: BaseException) -> None:
        with self._cond:
            self._counts["failed"] += len(jobs)
        for job in jobs:
            try:
                job.future.set_exception(exc)
            except InvalidStateError:  # cancelled meanwhile (a job not yet marked running)
                pass

    # --- bookkeeping --------------------------------------------------------------------------

    def _job(
        self, stream: Hashable, kind: DecodeKind, prepare: Callable[[], Req | None]
    ) -> _Job[Req, Res]:
        if self._closed:
            raise RuntimeError("the decode scheduler is closed")
        self._streams.setdefault(stream, _StreamState())
        return _Job(stream, kind, prepare, Future(), self._clock())

    def _cancel_partial_locked(self, stream: Hashable) -> bool:
        job = self._partials.pop(stream, None)
        if job is None:
            return False
        job.future.cancel()
        self._counts["cancelled"] += 1
        return True

    def _busy_fraction_locked(self, now: float, *, partials: bool = False) -> float:
        """Share of worker time spent decoding over the last ``window`` s (``partials``: on
        partials only)."""
        start = now - self.config.window
        while self._busy and self._busy[0][1] < start:
            self._busy.popleft()
        busy = sum((min(e, now) - max(s, start)) * (p if partials else 1.0) for s, e, p in self._busy if e > start)
        busy += sum((now - max(s, start)) * (p if partials else 1.0) for s, p in self._running_since.values())
        return min(1.0, busy / (self.config.workers * self.config.window))

    def _adapt_spacing_locked(self, now: float, decoded: set[Hashable]) -> None:
        busy = self._busy_fraction_locked(now)
        # measured (1 call, 2 cores): a caller's long turn alone keeps the one worker 85-95 %
        # busy; spacing on busy time alone put that caller's partials up to 2.4 s apart
        # (commit p95 2.1-3.4 s over 5 runs, 2.0-2.7 s over 6 when contention must start it).
        contended = bool(self._finals) or any(stream not in decoded for stream in self._partials)
        if busy > self.config.high_water and contended:
            self._spacing = min(self.config.max_spacing, self._spacing * 1.5 + 0.1)
        elif busy < self.config.low_water:
            self._spacing = max(0.0, self._spacing / 1.5 - 0.05)


def _partial_part(jobs: Sequence[_Job[Req, Res]]) -> float:
    """Share of a batch's decode time that went to partials."""
    return sum(job.kind is DecodeKind.PARTIAL for job in jobs) / len(jobs)
