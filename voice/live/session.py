"""Per-call sessions and the call manager the transports hand new calls to.

A transport calls ``CallManager.open_call`` once per call and then pushes frames into the
returned ``CallSession`` without ever waiting: the session queues them and one task per call
runs them through the call's pipeline in order. A failing call never affects another: each has
its own task, and an exception inside a pipeline becomes an ErrorFrame of that call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from voice.errors import VoiceError
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    EndOfInputFrame,
    ErrorFrame,
    Frame,
    audio_frame_problem,
)
from voice.processor import Pipeline
from voice.transport import CallOutput

log = logging.getLogger(__name__)

PipelineFactory = Callable[[CallStartedFrame, CallOutput], Pipeline]


class ServerDrainingError(VoiceError):
    """The server is shutting down and takes no new calls."""

    retryable = True


@dataclass
class _Clock:
    last_audio_time: float = 0.0


class CallSession:
    """One call: a frame queue and the task that feeds the call's pipeline."""

    def __init__(self, started: CallStartedFrame, output: CallOutput, pipeline: Pipeline,
                 on_done: Callable[[CallSession], None]) -> None:
        self.started = started
        self.output = output
        self.pipeline = pipeline
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue()
        self._on_done = on_done
        self._ended = False
        self._closed = False
        self._clock = _Clock()
        self.bad_frames = 0
        """Audio frames refused by :meth:`push` (unusable rate or pts; see AudioFrame)."""
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"call-{started.call_id}")

    @property
    def call_id(self) -> str:
        """The call's id."""
        return self.started.call_id

    def push(self, frame: Frame) -> None:
        """Queue a frame for the pipeline (never blocks, never raises for a bad frame: an unusable
        audio frame is dropped and reported to the call as a non-fatal ErrorFrame; frames after
        the end are ignored)."""
        if self._closed:
            return
        if isinstance(frame, CallEndedFrame):
            if self._ended:
                return
            self._ended = True
        if isinstance(frame, AudioFrame):
            # Re-checked here: a frame changed after it was built would raise in the transport.
            problem = audio_frame_problem(frame.sample_rate, frame.pts)
            if problem is not None:
                self._refuse(frame, problem)
                return
            self._clock.last_audio_time = max(self._clock.last_audio_time, frame.pts + frame.duration)
        self._queue.put_nowait(frame)

    def _refuse(self, frame: AudioFrame, problem: str) -> None:
        self.bad_frames += 1
        if self.bad_frames == 1:  # once per call: a broken ingress sends 50 of them a second
            message = f"audio on leg {frame.leg!r} dropped: {problem}"
            log.warning("call %s: %s", self.call_id, message)
            self._queue.put_nowait(ErrorFrame(message=message, fatal=False, source="session"))

    def close(self, reason: str) -> None:
        """The transport is done: end the call if it has not ended yet."""
        if self._closed:
            return
        if not self._ended:
            self.push(CallEndedFrame(call_id=self.call_id, reason=reason, audio_time=self._clock.last_audio_time))
        self._closed = True
        self._queue.put_nowait(None)

    async def _run(self) -> None:
        try:
            await self.pipeline.process_frame(self.started)
            while (frame := await self._queue.get()) is not None:
                await self.pipeline.process_frame(frame)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in one call must not leak into others
            log.exception("call %s failed", self.call_id)
        finally:
            try:
                await self.pipeline.close()
            finally:
                self._on_done(self)


DRAIN_TIMEOUT = 45.0
"""Seconds a shutdown waits for running calls to end. Longer than the ASR processor's
``flush_timeout`` (30 s, voice/processors/asr.py), which an end of input may spend waiting for the
last finals, plus time to save the transcript: a drain equal to it cut calls off mid-save."""
SAVE_TIMEOUT = 30.0
"""Seconds a shutdown then waits for the calls it cut off to save what their recorders hold."""


class CallManager:
    """The server's :class:`~voice.transport.CallHandler`: builds a pipeline per call."""

    def __init__(self, build_pipeline: PipelineFactory, *, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        self._build = build_pipeline
        self.sessions: dict[str, CallSession] = {}
        self.drain_timeout = drain_timeout
        self._draining = False

    async def open_call(self, started: CallStartedFrame, output: CallOutput) -> CallSession:
        """Create and start the session of a new call."""
        if self._draining:
            raise ServerDrainingError("the server is shutting down", hint="retry on another instance")
        if started.call_id in self.sessions:
            raise VoiceError(f"call {started.call_id!r} is already in progress", hint="call ids must be unique")
        session = CallSession(started, output, self._build(started, output), self._forget)
        self.sessions[started.call_id] = session
        return session

    def _forget(self, session: CallSession) -> None:
        self.sessions.pop(session.call_id, None)

    async def drain(self, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109 - one bound for the whole drain
        """Refuse new calls, end the running ones, and wait for their pipelines to flush.

        Calls still running after ``timeout`` (default :attr:`drain_timeout`) are cancelled: their
        pipelines close, and the recorder saves the turns it holds. Returns the ids of those calls.
        """
        self._draining = True
        for session in list(self.sessions.values()):
            for leg in session.started.legs:
                session.push(EndOfInputFrame(leg=leg, audio_time=session._clock.last_audio_time))
            session.close("server shutdown")
        running = {s.task: s.call_id for s in self.sessions.values()}
        if not running:
            return []
        limit = self.drain_timeout if timeout is None else timeout
        _, pending = await asyncio.wait(running, timeout=limit)
        cut = sorted(running[task] for task in pending)
        if cut:
            log.warning("%d calls had not ended %.0f s into the shutdown; cutting them off (finals still being "
                        "decoded are lost, the turns already heard are saved): %s", len(cut), limit, ", ".join(cut))
            for task in pending:
                task.cancel()
            _, stuck = await asyncio.wait(pending, timeout=SAVE_TIMEOUT)
            if stuck:
                log.error("%d calls could not save within %.0f s of being cut off: %s", len(stuck), SAVE_TIMEOUT,
                          ", ".join(sorted(running[task] for task in stuck)))
        return cut
