"""Streaming ASR for one call: per leg VAD turns, LocalAgreement partials and whole-turn finals.

Per leg the processor keeps a 16 kHz resampler (soxr stream), a :class:`~voice.vad.VadStream`
and an :class:`asr.streaming.StreamingTranscriber`. Audio frames feed both; VAD events become
``SpeechStartedFrame`` / ``SpeechStoppedFrame``; while a turn is open, partial decodes go to the
process-wide :class:`~voice.live.scheduler.DecodeScheduler` (coalesced, newest audio first) and
come back as ``TranscriptPartialFrame``; when the VAD closes the turn, its final pass is
submitted ahead of every partial and comes back as ``TranscriptFinalFrame``.

Guarantees per leg: partials of a turn are never emitted after that turn's final; stale partial
results are dropped; finals come out in turn order, and a partial of the next turn waits until
the previous turn's final is out. ``EndOfInputFrame`` and ``CallEndedFrame`` close open turns
and are forwarded only after their finals. A jump in a leg's timeline (frame pts past the
samples so far: a hold) closes its open turn and moves its clocks to the new pts. Results come
back from worker threads through ``loop.call_soon_threadsafe`` and are applied and pushed on the
event loop by one task, under the same lock as forwarded frames, so downstream sees one ordered
stream from this processor.

Bad audio (odd dtype, changing rate, garbage) is reported as a non-fatal ``ErrorFrame`` and the
call goes on. A final that is not decoded (its decode failed, it was still queued when the
flush timeout gave it up, or the scheduler shed it under overload) still emits the turn, from
the words streamed so far (the newest partial's); ``stand_ins`` counts them all. A failed or
given-up final is reported in an ``ErrorFrame`` (naming a turn with no words as not
transcribed); a shed one is not an error of the call (the decoders are overloaded, /metrics
counts it): the call logs its first shed and, at its end, how many were shed and which turns
had no words.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import Future
from typing import Any

import numpy as np

from asr.streaming import (
    DecodeRequest,
    StreamingConfig,
    StreamingTranscriber,
    TranscriptUpdate,
    TurnTranscript,
)
from asr.types import Word
from voice.frames import (
    PTS_JUMP,
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    EndOfInputFrame,
    ErrorFrame,
    Frame,
    Role,
    SpeechStartedFrame,
    SpeechStoppedFrame,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
)
from voice.live.scheduler import DecodeKind, DecodeScheduler, FinalShed
from voice.processor import FrameProcessor
from voice.processors.asr_legs import AsrLeg, DecodeResult, EarlyFinal, ShedLog, same_request, timed
from voice.vad import VadEvent, VadEventType, VadParams, VadStream

log = logging.getLogger(__name__)

__all__ = ["AsrScheduler", "StreamingAsrProcessor"]

AsrScheduler = DecodeScheduler[DecodeRequest, list[Word]]
"""The process-wide scheduler type this processor submits to."""


FEED_PIECE = 1600
"""Samples (0.1 s at 16 kHz) fed to the transcriber and the VAD at a time. Outside a turn the
transcriber keeps only its pre-roll plus 1 s, so a longer message (a sender that batches, or
catches up after a stall) fed whole would drop the start of a turn before the VAD opens it."""
MIXED_SPLIT_PAUSE = 0.15
"""Seconds of pause inside speech at which a long mixed-leg turn may be split: a gap between
words or speakers, not a dip inside a word (the demo call lost "Texas" to a split at the first
non-speech VAD step)."""


class StreamingAsrProcessor(FrameProcessor):
    """Two-pass streaming ASR over every leg of one call (see the module docstring)."""

    def __init__(
        self,
        scheduler: AsrScheduler,
        *,
        config: StreamingConfig = StreamingConfig(),  # noqa: B008 - frozen
        vad_params: VadParams = VadParams(),  # noqa: B008 - frozen
        max_turn: float = 30.0,
        mixed_turn_split: float = 8.0,
        flush_timeout: float = 30.0,
        early_final_totals: Counter[str] | None = None,
        stand_in_totals: Counter[str] | None = None,
        name: str | None = None,
    ) -> None:
        """Build the processor of one call.

        Args:
            scheduler: the process-wide decode scheduler (owns the model and its workers).
            config: streaming policy and latency contract of every leg.
            vad_params: endpointing of every leg.
            max_turn: a turn longer than this is finalised and a new one opened at once, so a
                monologue still gets final text (and prompts) at a bounded delay.
            mixed_turn_split: on a leg carrying both parties (role unknown), a turn longer
                than this is finalised at its next short pause (a VAD step below threshold
                inside speech): two people talking back and forth rarely leave the 0.6 s of
                silence that ends a turn, and the demo call's second turn ran 22 s without one.
            flush_timeout: seconds an end of input (or the call's end) waits for the finals of
                its legs, all against one deadline, before it is forwarded anyway: finals still
                outstanding then are given up for good (their streamed words stand in, queued
                decodes are cancelled, an ErrorFrame reports them and names the turns that had
                no words: those are not transcribed).
            early_final_totals: process-wide counts that this call's early finals are added to
                (the server's /metrics), beside the call's own ``early_finals``.
            stand_in_totals: process-wide counts that this call's ``stand_ins`` are added to.
            name: processor name in logs.
        """
        super().__init__(name)
        self.scheduler = scheduler
        self.config = config
        self.vad_params = vad_params
        self.max_turn = max_turn
        self.mixed_turn_split = mixed_turn_split
        self.flush_timeout = flush_timeout
        self._flush_deadline: float | None = None
        self._flush_timed_out_at: float | None = None
        self.call_id = ""
        self.early_finals = {"started": 0, "adopted": 0}
        """Early finals started, and those the VAD's close used as the turn's final."""
        self._early_final_totals = early_final_totals
        self.stand_ins: Counter[str] = Counter()
        """Turns closed without their final decode (failed, given up or shed): ``streamed``
        (partial words stand in) and ``untranscribed`` (no words at all; an ErrorFrame names
        them, or for shed finals the call's log line at its end)."""
        self._stand_in_totals = stand_in_totals
        self._shed = ShedLog()
        self._roles: dict[str, Role] = {}
        self._legs: dict[str, AsrLeg] = {}
        self._push_lock = asyncio.Lock()
        self._quiet = asyncio.Event()  # set whenever a result was handled (see drained)
        self._results: asyncio.Queue[DecodeResult] = asyncio.Queue()
        self._drain_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- frames in ----------------------------------------------------------------------------

    async def process_frame(self, frame: Frame) -> None:
        """Handle audio and call lifecycle frames; forward every frame."""
        self._ensure_drain_task()
        if isinstance(frame, AudioFrame):
            await self._on_audio(frame)
        elif isinstance(frame, CallStartedFrame):
            self.call_id = frame.call_id
            self._roles = dict(frame.legs)
        elif isinstance(frame, EndOfInputFrame):
            await self._flush_legs([frame.leg])
        elif isinstance(frame, CallEndedFrame):
            await self._flush_legs(list(self._legs))
            self._shed.summarise(self.name, self.call_id)
        await self._emit(frame)

    @property
    def busy(self) -> bool:
        """Whether a decode of this call is queued, running, or its result not yet pushed."""
        pending = any(
            leg.partial_pending or leg.finals_outstanding or (leg.early is not None and not leg.early.delivered)
            for leg in self._legs.values()
        )
        return pending or self._results.qsize() > 0

    async def drained(self) -> None:
        """Wait until :attr:`busy` is false (replay harnesses; the server never needs it)."""
        while self.busy:
            self._quiet.clear()
            await self._quiet.wait()

    async def close(self) -> None:
        """Stop the result task and forget this call's streams in the scheduler."""
        self._shed.summarise(self.name, self.call_id)  # a call closed without its CallEndedFrame
        for leg in self._legs.values():
            self.scheduler.forget(leg.key)
        if self._drain_task is not None:
            self._drain_task.cancel()
            self._drain_task = None

    # --- audio --------------------------------------------------------------------------------

    async def _on_audio(self, frame: AudioFrame) -> None:
        leg = self._leg(frame.leg)
        if leg.ended:
            return
        if leg.started and frame.pts - leg.next_pts > PTS_JUMP:
            await self._skip(leg, frame.pts - leg.next_pts)
        try:
            samples = leg.to_16k(frame)
        except (ValueError, TypeError) as exc:
            await self._error(f"bad audio on leg {frame.leg!r}: {exc}")
            return
        if not leg.started:
            leg.started = True
            leg.next_pts = leg.vad.start_time = frame.pts
            leg.transcriber.reset(frame.pts)
        leg.next_pts += np.size(frame.pcm) / frame.sample_rate
        await self._feed(leg, samples)

    async def _skip(self, leg: AsrLeg, gap: float) -> None:
        """No audio for ``gap`` s: end the open turn as at end of input, move the clocks on (not
        fed as silence: a hold may last minutes). Why: counting samples put every later turn a
        gap early, and redaction then silenced the wrong span of the recording (placed by pts)."""
        for event in leg.vad.finish():
            await self._on_vad(leg, event)
        leg.transcriber.insert_audio(np.zeros(0, dtype=np.float32), at=leg.transcriber.time + gap)
        # A fresh VAD (a finished one is not used again), at the transcriber's clock (the old
        # one's lags by the samples it has not decided yet).
        leg.vad = VadStream(self.vad_params, start_time=leg.transcriber.time)
        leg.next_pts += gap

    async def _feed(self, leg: AsrLeg, samples: np.ndarray) -> None:
        for start in range(0, len(samples), FEED_PIECE):
            await self._feed_piece(leg, samples[start : start + FEED_PIECE])

    async def _feed_piece(self, leg: AsrLeg, samples: np.ndarray) -> None:
        before = leg.vad.time
        leg.transcriber.insert_audio(samples)
        leg.note_level(samples)
        for event in leg.vad.process(samples):
            await self._on_vad(leg, event)
        self._note_pause(leg)
        self._resume_split_turn(leg, before)
        self._submit_early_final(leg)
        transcriber = leg.transcriber
        turn_start = transcriber.turn_start
        if turn_start is not None and (
            leg.vad.time - turn_start > self.max_turn or self._split_mixed_turn(leg, turn_start)
        ):
            await self._split_turn(leg)
        if not leg.partial_pending and transcriber.partial_due():
            self._submit_partial(leg)

    async def _split_turn(self, leg: AsrLeg) -> None:
        """Finalise a long turn now; the VAD's turn goes on."""
        vad = leg.vad
        if vad.last_speech_end < vad.time - 1e-6:
            # In a pause, the old turn ends where its speech did and the next opens when speech
            # resumes. Why: opened here, the next turn was closed at the pause's start if the
            # pause lasted (end < start), and its final decoded the silence.
            await self._close_turn(leg, vad.last_speech_end, emit_stop=False)
            leg.resume_after = vad.last_speech_end
        else:
            # Inside speech: cut between words (AsrLeg.split_point); the final's audio ends at
            # the cut (closed end_pad before it: no pad of the next word) and the next turn
            # starts there.
            turn_start = leg.transcriber.turn_start
            cut = leg.split_point(vad.time, vad.time if turn_start is None else turn_start)
            leg.split_ends[leg.transcriber.turn_index] = cut
            await self._close_turn(leg, cut - self.config.end_pad, emit_stop=False)
            leg.transcriber.begin_turn(cut, pre_roll=False)

    def _resume_split_turn(self, leg: AsrLeg, piece_start: float) -> None:
        """Open the next turn of a turn split in a pause once speech resumes (in this piece)."""
        after = leg.resume_after
        if after is None or not leg.vad.in_speech or leg.vad.last_speech_end <= after:
            return
        leg.resume_after = None
        leg.last_speech = leg.vad.time
        leg.transcriber.begin_turn(max(piece_start, after), not_before=after)

    def _split_mixed_turn(self, leg: AsrLeg, turn_start: float) -> bool:
        mixed = self._roles.get(leg.name) not in ("agent", "customer")
        long = leg.vad.time - turn_start > self.mixed_turn_split
        paused = leg.vad.in_speech and leg.vad.time - leg.last_speech >= MIXED_SPLIT_PAUSE
        return mixed and long and paused

    def _note_pause(self, leg: AsrLeg) -> None:
        if not leg.vad.in_speech:
            return
        if leg.vad.frame_is_speech:
            leg.last_speech = leg.vad.time
            leg.transcriber.note_pause(None)
            if leg.early is not None and leg.early.adopted is None:
                leg.early.future.cancel()  # still queued: not needed; done: its words stay useful
        else:
            leg.transcriber.note_pause(leg.vad.last_speech_end)

    async def _on_vad(self, leg: AsrLeg, event: VadEvent) -> None:
        leg.resume_after = None
        if event.type is VadEventType.SPEECH_STARTED:
            leg.last_speech = leg.vad.time
            leg.transcriber.begin_turn(event.time)
            await self._emit(SpeechStartedFrame(leg=leg.name, audio_time=event.time))
            return
        turn_start = leg.transcriber.turn_start
        if turn_start is not None and event.time <= turn_start:
            await self._drop_turn(leg)  # it would end before it began: nothing to decode
        await self._close_turn(leg, event.time, turn_start=event.speech_start)

    async def _drop_turn(self, leg: AsrLeg) -> None:
        turn = leg.transcriber.drop_turn()
        if turn is not None:  # a final with nothing to show, so later finals keep their order
            leg.updates.pop(turn, None)
            leg.finals_submitted += 1
            leg.ready_finals[turn] = None
            await self._emit_ready_finals(leg)

    async def _close_turn(
        self, leg: AsrLeg, end: float, *, turn_start: float | None = None, emit_stop: bool = True
    ) -> None:
        request = leg.transcriber.close_turn(end)
        early, leg.early = leg.early, None
        if early is not None and early.future.done() and not early.future.cancelled() \
                and isinstance(early.future.exception(), FinalShed):
            early = None  # shed while the turn was open: the close submits the turn's real final
        if request is not None and early is not None and same_request(early.request, request):
            leg.finals_submitted += 1
            leg.finals_done.clear()
            early.adopted = request  # its decode is (or will be) this turn's final
            leg.finals[request.turn] = (request, early.future)
            self._count_early_final("adopted")
            if early.delivered:
                self._results.put_nowait(DecodeResult(leg, DecodeKind.FINAL, early.future, request))
        elif request is not None:  # submitted before anything is awaited: finals go first
            if early is not None:
                early.future.cancel()
            leg.finals_submitted += 1
            leg.finals_done.clear()
            future = self.scheduler.submit_final(leg.key, lambda: request, stand_in=self._has_words(leg, request.turn))
            leg.finals[request.turn] = (request, future)
            result = lambda f: DecodeResult(leg, DecodeKind.FINAL, f, request)  # noqa: E731
            future.add_done_callback(lambda f: self._from_worker(result(f)))
        if emit_stop:
            start = turn_start if turn_start is not None else end
            await self._emit(SpeechStoppedFrame(leg=leg.name, audio_time=end, turn_start=start))

    def _count_early_final(self, outcome: str) -> None:
        self.early_finals[outcome] += 1
        if self._early_final_totals is not None:
            self._early_final_totals[outcome] += 1

    def _submit_early_final(self, leg: AsrLeg) -> None:
        request = leg.transcriber.early_final_request()
        if request is None:
            return
        future = self.scheduler.submit_final(leg.key, lambda: request, stand_in=self._has_words(leg, request.turn),
                                             speculative=True)
        early = EarlyFinal(request, future)
        leg.early = early
        self._count_early_final("started")
        future.add_done_callback(
            lambda f: self._from_worker(DecodeResult(leg, DecodeKind.FINAL, f, request, early))
        )

    def _submit_partial(self, leg: AsrLeg) -> None:
        leg.partial_pending = True
        future = self.scheduler.submit_partial(leg.key, leg.transcriber.partial_request)
        future.add_done_callback(lambda f: self._from_worker(DecodeResult(leg, DecodeKind.PARTIAL, f)))

    # --- results (worker thread -> event loop) ------------------------------------------------

    def _from_worker(self, result: DecodeResult) -> None:
        """Runs on a worker thread (or inline when cancelled): hand the result to the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._results.put_nowait, result)
        except RuntimeError:  # loop shut down while the decode ran
            pass

    async def _drain_results(self) -> None:
        while True:
            result = await self._results.get()
            leg = result.leg
            try:
                if result.early is not None:
                    await self._on_early(leg, result.early)
                elif result.kind is DecodeKind.PARTIAL:
                    await self._on_partial(leg, result.future)
                else:
                    assert result.request is not None
                    await self._on_final(leg, result.future, result.request)
            except Exception as exc:  # one bad result must not stop the call's transcripts
                log.exception("ASR result handling failed on leg %s", leg.name)
                await self._error(f"ASR result on leg {leg.name!r}: {exc}")
            finally:
                self._results.task_done()
                self._quiet.set()

    async def _on_partial(self, leg: AsrLeg, future: Future[Any]) -> None:
        leg.partial_pending = False
        if not future.cancelled():
            exc = future.exception()
            if exc is not None:
                await self._error(f"partial decode failed on leg {leg.name!r}: {exc}")
            elif future.result() is not None:
                request, words = future.result()
                update = leg.transcriber.apply_partial(request, words)
                if update is not None:
                    await self._show_partial(leg, update)
        if not leg.ended and leg.transcriber.partial_due():
            self._submit_partial(leg)

    async def _on_early(self, leg: AsrLeg, early: EarlyFinal) -> None:
        early.delivered = True
        if early.adopted is not None:  # the turn closed at the early final's pause
            await self._on_final(leg, early.future, early.adopted)
            return
        future = early.future
        if future.cancelled() or future.exception() is not None or future.result() is None:
            return  # speech resumed before it ran, or it failed: the close will decode again
        request, words = future.result()
        update = leg.transcriber.apply_early(request, words)
        if update is not None:
            await self._show_partial(leg, update)

    async def _show_partial(self, leg: AsrLeg, update: TranscriptUpdate) -> None:
        leg.updates[update.turn] = update  # shown or held, its words stand in for a lost final
        if leg.finals_outstanding:  # an earlier turn's final goes first
            leg.held_partial = update
            return
        leg.shown_turns.add(update.turn)
        await self._emit(
            TranscriptPartialFrame(
                leg=leg.name,
                committed=timed(update.committed),
                tentative=timed(update.tentative),
                audio_time=update.audio_end,
                role=leg.role,
            )
        )

    async def _on_final(self, leg: AsrLeg, future: Future[Any], request: DecodeRequest) -> None:
        if leg.finals.pop(request.turn, None) is None:
            return  # given up at the end of input: its fallback went out already
        exc = None if future.cancelled() else future.exception()
        if exc is None and not future.cancelled() and future.result() is not None:
            decoded, words = future.result()  # the request decoded: cheaper under a backlog
            turn = leg.transcriber.apply_final(decoded, words)
        elif isinstance(exc, FinalShed):  # overload, not an error of the call: logged, counted
            turn = self._fallback(leg, request)
            self._shed.note(leg.name, turn, self.name, self.call_id)
        else:
            turn = self._fallback(leg, request)
            lost = "" if turn.words else f"; turn {turn.turn + 1} has no words: not transcribed"
            await self._error(f"final decode failed on leg {leg.name!r}: {exc or 'cancelled'}{lost}")
        leg.ready_finals[turn.turn] = self._final_frame(leg, turn)
        await self._emit_ready_finals(leg)

    def _has_words(self, leg: AsrLeg, turn: int) -> bool:
        """Whether streamed words would stand in for the turn's final (the scheduler sheds such
        finals before those of turns without)."""
        update = leg.updates.get(turn)
        return update is not None and any(w.text.strip() for w in [*update.committed, *update.tentative])

    def _final_frame(self, leg: AsrLeg, turn: TurnTranscript) -> TranscriptFinalFrame | None:
        leg.updates.pop(turn.turn, None)
        end = leg.split_ends.pop(turn.turn, turn.end)
        if not turn.words and turn.turn not in leg.shown_turns:
            return None  # nothing to show, and no partial to clear
        return TranscriptFinalFrame(
            turn_id=f"{leg.name}-{turn.turn + 1}",
            leg=leg.name,
            text=turn.text,
            words=timed(turn.words),
            start=turn.start,
            end=end,
            audio_time=end,
            role=leg.role,
        )

    def _fallback(self, leg: AsrLeg, request: DecodeRequest) -> TurnTranscript:
        """The turn without its final: its newest partial words stand in (counted)."""
        closed = leg.transcriber.apply_final(request, [])
        end = leg.split_ends.get(closed.turn, closed.end + self.config.end_pad)
        words = leg.stand_in(closed.turn, end, closed.streamed)
        outcome = "streamed" if words else "untranscribed"
        self.stand_ins[outcome] += 1
        if self._stand_in_totals is not None:
            self._stand_in_totals[outcome] += 1
        return TurnTranscript(closed.turn, closed.start, closed.end, words, closed.streamed)

    async def _emit_ready_finals(self, leg: AsrLeg) -> None:
        while leg.next_final in leg.ready_finals:
            frame = leg.ready_finals.pop(leg.next_final)
            leg.shown_turns.discard(leg.next_final)
            leg.next_final += 1
            if frame is not None:
                await self._emit(frame)
        if leg.finals_outstanding == 0:
            leg.finals_done.set()
            held, leg.held_partial = leg.held_partial, None
            open_turn = leg.transcriber.turn_index if leg.transcriber.in_turn else None
            if held is not None and held.turn == open_turn:
                await self._show_partial(leg, held)

    # --- flushing -----------------------------------------------------------------------------

    async def _flush_legs(self, names: list[str]) -> None:
        legs = [self._legs[n] for n in names if n in self._legs]
        for leg in legs:
            if leg.ended:
                continue
            await self._feed(leg, leg.pcm.flush())
            for event in leg.vad.finish():
                await self._on_vad(leg, event)
            leg.ended = True
            self.scheduler.cancel_partial(leg.key)
        try:
            # One deadline for all the legs, shared with any flush still within its own: waiting
            # per leg (or per end-of-input frame, as a shutdown drain sends one per leg before the
            # call's end) made a call's end take n_legs x flush_timeout when finals were stuck.
            async with asyncio.timeout_at(self._flush_deadline_for_now()):
                for leg in legs:
                    if leg.finals_outstanding:
                        await leg.finals_done.wait()
        except TimeoutError:
            self._flush_timed_out_at = asyncio.get_running_loop().time()
        for leg in legs:
            if leg.finals:
                await self._give_up_finals(leg)

    def _flush_deadline_for_now(self) -> float:
        """The deadline of a flush starting now: a flush still within its deadline shares it, and
        right after one timed out (this call's decodes are stuck) the next one does not wait again."""
        now = asyncio.get_running_loop().time()
        if self._flush_deadline is not None and now < self._flush_deadline:
            return self._flush_deadline
        if self._flush_timed_out_at is not None and now - self._flush_timed_out_at < self.flush_timeout:
            return now
        self._flush_deadline = now + self.flush_timeout
        return self._flush_deadline

    async def _give_up_finals(self, leg: AsrLeg) -> None:
        """Close the leg's outstanding finals with their streamed words, for good: a later flush
        does not wait for them again, and their queued decodes are cancelled."""
        given_up = sorted(leg.finals.items())
        leg.finals.clear()  # first, before any await: late results are then ignored
        silent = []
        for turn, (request, _) in given_up:
            stand_in = self._fallback(leg, request)
            if not stand_in.words:
                silent.append(f"{turn + 1} ({stand_in.start:.1f}-{stand_in.end:.1f} s)")
            leg.ready_finals[turn] = self._final_frame(leg, stand_in)
        self.scheduler.forget(leg.key)  # the leg has ended: cancels its queued finals
        for _, (_, future) in given_up:
            future.cancel()  # e.g. an adopted early final that was still queued
        turns = ", ".join(str(turn + 1) for turn, _ in given_up)
        lost = f"; {len(silent)} had no words and are NOT transcribed: turns {', '.join(silent)}" if silent else ""
        await self._error(f"leg {leg.name!r}: {len(given_up)} finals still pending at end of input (turns {turns}); "
                          f"{len(given_up) - len(silent)} stand in with their streamed words{lost}")  # fmt: skip
        await self._emit_ready_finals(leg)

    # --- helpers ------------------------------------------------------------------------------

    def _leg(self, name: str) -> AsrLeg:
        leg = self._legs.get(name)
        if leg is None:
            leg = AsrLeg(
                name=name,
                role=self._roles.get(name, "unknown"),
                key=(self.call_id, id(self), name),
                vad=VadStream(self.vad_params),
                transcriber=StreamingTranscriber(config=self.config),
            )
            self._legs[name] = leg
        return leg

    def _ensure_drain_task(self) -> None:
        if self._drain_task is None:
            self._loop = asyncio.get_running_loop()
            self._drain_task = self._loop.create_task(
                self._drain_results(), name=f"{self.name}-results"
            )

    async def _emit(self, frame: Frame) -> None:
        async with self._push_lock:
            await self.push_frame(frame)

    async def _error(self, message: str) -> None:
        log.warning("%s: %s", self.name, message)
        await self._emit(ErrorFrame(message=message, fatal=False, source=self.name))
