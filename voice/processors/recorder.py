"""The call's observer at the end of the pipeline: events to the hub, turns to the database,
the call's audio to a WAV file, and the whole transcript (batch JSON schema) at call end, or when the
pipeline closes without an end (a call cut off at shutdown, a failed pipeline), so what was heard is kept.

Database and file writes run on one background thread shared by all calls (SQLite has one
writer), never on the event loop. A call-end save the database refuses is kept on disk and stored
later (voice.store.live.PendingSave). The audio is spooled to per-leg part files while the call runs
(voice/processors/audio_spool.py), so memory stays bounded and an interrupted call leaves its audio.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voice.audio import AudioInfo, safe_file_stem
from voice.frames import (
    AudioFrame,
    CallEndedFrame,
    CallStartedFrame,
    DtmfFrame,
    Frame,
    NluFrame,
    Role,
    TranscriptFinalFrame,
    word_dict,
)
from voice.processor import FrameProcessor
from voice.processors.audio_spool import AudioSpool
from voice.redaction import mask_metadata
from voice.server.calls import CallRegistry
from voice.server.events import frame_to_event
from voice.server.hub import EventHub
from voice.transcript import CallTranscript, EntityMention, Segment, Speaker

log = logging.getLogger(__name__)


class CallRecorder(FrameProcessor):
    """Publishes events, persists turns and, at the end, the transcript and audio of one call."""

    def __init__(self, *, hub: EventHub, registry: CallRegistry, live_store: Any, store: Any,
                 executor: Executor, audio_dir: Path | None, model_name: str, redacted: bool = False,
                 pending_dir: Path | None = None) -> None:
        """``redacted``: the pipeline redacts (voice/processors/redact.py); the stored transcript says so.
        ``pending_dir``: where a call-end save the database refused waits to be stored
        (``voice.store.live.replay_pending_saves``); None: such a save is lost (logged)."""
        super().__init__()
        self.hub, self.registry = hub, registry
        self.live_store, self.store, self.executor = live_store, store, executor
        self.audio_dir = audio_dir
        self.pending_dir = pending_dir
        self.model_name = model_name
        self.redacted = redacted
        self.started: CallStartedFrame | None = None
        self.finals: list[TranscriptFinalFrame] = []
        self.nlu: dict[str, NluFrame] = {}
        self.spool: AudioSpool | None = None
        """The call's audio on its way to disk; created at the call's start when ``audio_dir`` is set."""
        self._db_tasks: list[asyncio.Future[Any]] = []
        self._started_at: datetime | None = None
        self._row_ready = False  # set on the DB thread once start_call succeeded
        self._ended: CallEndedFrame | None = None
        self._finished = False

    async def process_frame(self, frame: Frame) -> None:
        """Record the frames this observer cares about; forward nothing (it is the end)."""
        if isinstance(frame, AudioFrame):
            if self.spool is not None:
                self.spool.push(frame.leg, frame.pts, frame.pcm, frame.sample_rate)
            return
        if isinstance(frame, CallStartedFrame):
            if self.redacted:  # the caller's number in SIP From, AudioHook's ani, ...
                frame = replace(frame, metadata=mask_metadata(frame.metadata))
            self.started, self._started_at = frame, datetime.now(UTC)
            if self.audio_dir is not None:
                self.spool = AudioSpool(self.audio_dir, frame.call_id, self.executor, leg_order=list(frame.legs))
            self.registry.started(frame)
            self._db(self._start_row)
        elif isinstance(frame, TranscriptFinalFrame):
            self.finals.append(frame)
            self._silence(frame.leg, frame.masked_audio)
            self._db(self._with_row, self.live_store.add_turn, self._call_id, _live_turn(frame))
        elif isinstance(frame, DtmfFrame):
            self._silence(frame.leg, frame.masked_audio)  # a key's tone, when redacting
        elif isinstance(frame, NluFrame):
            self.nlu[frame.turn_id] = frame
            self._db(self._with_row, self.live_store.set_turn_nlu, self._call_id, frame.turn_id, frame.intent,
                     frame.entities)
        event = frame_to_event(frame)
        if event is not None and self.started is not None:
            self.registry.observe(self._call_id, event)
            self.hub.publish(self._call_id, event)
        if isinstance(frame, CallEndedFrame):
            self._ended = frame
            await self._finish(frame)

    async def close(self) -> None:
        """Save what this call holds when it never finished (cut off at shutdown, or a failed pipeline)."""
        if self.started is None or self._finished:
            return
        if self._ended is not None:  # cancelled while saving: save again (the writes are upserts)
            await self._finish(self._ended)
            return
        audio_time = max((f.end for f in self.finals), default=0.0)
        log.warning("call %s was cut off before it ended: saving the %d turns it holds", self._call_id,
                    len(self.finals))
        await self.process_frame(CallEndedFrame(call_id=self._call_id, reason="cut off", audio_time=audio_time))

    def _silence(self, leg: str, spans: list[tuple[float, float]]) -> None:
        """Silence what redaction masked (the timeline stays: the samples become zeros)."""
        if self.spool is not None:
            for start, end in spans:
                self.spool.mask(leg, start, end)

    @property
    def _call_id(self) -> str:
        assert self.started is not None
        return self.started.call_id

    def _db(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        # A failed turn write is logged (_log_failure) and never retried: the call-end save
        # stores the whole transcript anyway, and when the database refuses that too it is kept
        # in pending_dir until the database is back (_persist). No second queue for turns.
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        future.add_done_callback(_log_failure)
        self._db_tasks.append(future)

    async def _finish(self, ended: CallEndedFrame) -> None:
        if self.started is None:
            return
        transcript = self._transcript(ended)
        audio_path = self._audio_path()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*self._db_tasks, return_exceptions=True)
        try:
            error = ended.reason if ended.error else None  # e.g. "error: ..." of a protocol error
            await loop.run_in_executor(self.executor, self._persist, transcript, audio_path, ended.audio_time, error)
        except Exception:
            log.exception("could not store the transcript of call %s", self._call_id)
        self.registry.ended(self._call_id, ended.reason)
        self.hub.close_call(self._call_id)
        self._finished = True

    def _start_row(self) -> None:
        """The call's row (DB thread); a failure is retried before the next turn write."""
        assert self.started is not None
        frame = self.started
        self.live_store.start_call(frame.call_id, tenant=frame.tenant, agent_id=frame.agent_id,
                                   source=frame.source, metadata=frame.metadata)
        self._row_ready = True

    def _with_row(self, fn: Any, *args: Any) -> None:
        # Why: a transient error on the start write would otherwise fail every turn write of
        # the call with CallNotFoundError, and nothing would be stored until the call ended.
        if not self._row_ready:
            self._start_row()
        fn(*args)

    def _persist(self, transcript: CallTranscript, audio_path: Path | None, duration: float,
                 error: str | None = None) -> None:
        from voice.store.live import PendingSave, pending_save_path, write_pending_save
        from voice.store.store import CallOwner

        assert self.started is not None
        ended_at = datetime.now(UTC)
        if audio_path is not None and self.spool is not None:
            try:
                self.spool.finish(audio_path, list(self.started.legs))
            except Exception:  # noqa: BLE001 - the transcript must still be saved; the parts stay
                log.exception("could not assemble the audio of call %s; its spool files are kept",
                              self._call_id)
                transcript = replace(transcript, audio=replace(transcript.audio, path=f"live:{self.started.source}"))
        owner = CallOwner("live", self.started.tenant, self.started.agent_id, self._started_at)
        try:
            self.store.save_transcript(transcript, source=self.started.source, owner=owner)
            self.live_store.end_call(self._call_id, duration=duration, error=error, ended_at=ended_at)
            if self.pending_dir is not None:  # kept by an earlier try of this save (cancelled, retried)
                pending_save_path(self.pending_dir, self._call_id).unlink(missing_ok=True)
        except Exception as exc:
            if self.pending_dir is None:
                raise
            # Why: the transcript lives only in this object; a database that was down at the
            # call's end lost the whole call (fault test: PostgreSQL stopped, the row stayed
            # `active` with 0 turns and was later swept `interrupted`).
            path = write_pending_save(self.pending_dir, PendingSave(
                transcript, self.started.source, owner, duration, error, ended_at,
                failure=f"{type(exc).__name__}: {exc}"))
            log.error("could not store the transcript of call %s (%s: %s); kept in %s, stored when the "
                      "database is back", self._call_id, type(exc).__name__, exc, path)

    def _audio_path(self) -> Path | None:
        if self.audio_dir is None or self.spool is None or not self.spool.has_audio:
            return None
        return self.audio_dir / f"{safe_file_stem(self._call_id)}.wav"

    def _transcript(self, ended: CallEndedFrame) -> CallTranscript:
        assert self.started is not None
        finals = sorted(self.finals, key=lambda f: (f.start, f.leg))
        legs = list(self.started.legs) or sorted({f.leg for f in finals})
        decided = _decided_roles(finals)
        segments, entities = [], []
        for index, final in enumerate(finals):
            speaker = final.speaker or final.leg
            role = final.role if final.role != "unknown" else decided.get(speaker, "unknown")
            segments.append(Segment(index, round(final.start, 3), round(final.end, 3), speaker, final.text,
                                    role, legs.index(final.leg) if final.leg in legs else None,
                                    list(final.words)))
            nlu = self.nlu.get(final.turn_id)
            for e in nlu.entities if nlu else []:
                entities.append(EntityMention(e["label"], e["text"], index, e.get("start", 0), e.get("end", 0),
                                              e.get("value")))
        speakers: dict[str, Speaker] = {}
        for seg in segments:
            spk = speakers.setdefault(seg.speaker, Speaker(seg.speaker, seg.role, seg.channel, 0.0))
            spk.talk_time = round(spk.talk_time + seg.end - seg.start, 3)
        audio_path = self._audio_path()
        info = AudioInfo(str(audio_path) if audio_path else f"live:{self.started.source}",
                         f"live/{self.started.source}", 16000, len(legs), round(ended.audio_time, 3))
        return CallTranscript(call_id=self._call_id, audio=info, speakers=list(speakers.values()),
                              segments=segments, entities=entities, redacted=self.redacted,
                              options={"model": self.model_name, "source": self.started.source,
                                       "tenant": self.started.tenant, "agent_id": self.started.agent_id,
                                       "legs": dict(self.started.legs)})


def _live_turn(frame: TranscriptFinalFrame) -> Any:
    from voice.store.live import LiveTurn

    return LiveTurn(frame.turn_id, frame.leg, frame.role, frame.start, frame.end, frame.text,
                    [word_dict(w) for w in frame.words], frame.speaker)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("database write failed: %s", future.exception())


def _decided_roles(finals: list[TranscriptFinalFrame]) -> dict[str, Role]:
    """Speaker -> role, from the turns heard after the call's roles were decided. A mixed leg's
    first turns go out with role ``unknown`` (the decision needs a few turns) and the decision
    never changes, so the stored transcript gives those turns their speaker's role."""
    roles: dict[str, Role] = {}
    for final in finals:
        if final.role != "unknown":
            roles.setdefault(final.speaker or final.leg, final.role)
    return roles
