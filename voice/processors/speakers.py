"""Speaker and role on the transcripts of a mixed leg (both parties in one channel), live.

Sits after the streaming ASR processor. For every leg whose role is ``unknown`` in the
``CallStartedFrame`` (leg ``mixed`` of plain SIP from a recorder port or of a WebRTC
conference), the leg's audio feeds a per-call :class:`diarize.streaming.OnlineSpeakerAttributor`
on a small executor (CAM++ costs 0.1-0.3 s per window on this machine; never on the event
loop), and the leg's transcripts are rewritten:

- ``TranscriptPartialFrame``: the speaker of most of the open turn so far, from the labels as
  they stand (provisional, at most ``step`` behind the audio); no waiting;
- ``TranscriptFinalFrame``: waits (bounded) until the attributor has caught up with the turn's
  end, then splits the turn where the speaker changes (word timestamps) into one final per
  speaker run; the first piece keeps the ``turn_id``, the others get ``<turn_id>.1``, ...

Roles are decided once per call by :class:`SpeakerRoles` from the text of the first turns
(:func:`voice.roles.decide_agent`: agent and customer phrases, else first speaker = agent)
and then kept; until then the leg's transcripts carry role ``unknown``. Legs that already
have a role (stereo ingresses) and every other frame pass through untouched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diarize.streaming import (
    EmbeddingModel,
    OnlineAttributionConfig,
    OnlineSpeakerAttributor,
    SpeakerRun,
)
from voice.frames import (
    PTS_JUMP,
    AudioFrame,
    CallStartedFrame,
    ErrorFrame,
    Frame,
    Role,
    TimedWord,
    TranscriptFinalFrame,
    TranscriptPartialFrame,
    join_words,
)
from voice.processor import FrameProcessor
from voice.processors.pcm import FrameResampler
from voice.roles import SpokenTurn, decide_agent

log = logging.getLogger(__name__)

__all__ = ["SpeakerAttributionProcessor", "SpeakerRoles"]

CATCH_UP_TIMEOUT = 2.0
"""Most seconds a final waits for the attributor to reach the turn's end; after that it is
labelled from what is there (a stalled executor must not stall the call's transcripts)."""


class SpeakerRoles:
    """Which speaker is the agent, decided once from the first turns, then kept (pure).

    :func:`voice.roles.decide_agent` scores what each speaker said (agent minus customer
    phrases, doubled in the first minute). The roles are decided as soon as one speaker leads
    by ``min_margin`` (two phrases), after ``decide_after_turns`` turns when one leads at all,
    and after ``give_up_turns`` turns without any lead by the weak rule that the first speaker
    is the agent (who answers an inbound call). Speakers first heard after the decision get
    the role left over. measured (SpokenWOZ, reference words): deciding on the first phrase,
    or falling back to the first speaker on a tie after 4 turns, inverted SNG0696, whose
    customer opens with "is this Nan's customer service center?" (an agent phrase). The
    fallback comes after 6 turns: a casual call (the demo's) has no role phrases at all, and a
    call whose roles stay unknown gets no suggestions.
    """

    def __init__(
        self, *, decide_after_turns: int = 4, min_margin: float = 4.0, give_up_turns: int = 6
    ) -> None:
        self.decide_after_turns = decide_after_turns
        self.min_margin = min_margin
        self.give_up_turns = give_up_turns
        self._turns: list[SpokenTurn] = []
        self._speakers: list[str] = []
        self._roles: dict[str, Role] = {}
        self.method: str | None = None
        """How the roles were decided (``phrases``, ``first-speaker``), ``None`` before."""

    @property
    def decided(self) -> bool:
        """Whether the roles are known (they never change afterwards)."""
        return bool(self._roles)

    def observe(self, speaker: str, start: float, text: str) -> None:
        """Note a finished turn (or piece of one) of ``speaker``."""
        if speaker not in self._speakers:
            self._speakers.append(speaker)
        if not self.decided:
            self._turns.append(SpokenTurn(speaker, start, text))
            self._decide()

    def role_of(self, speaker: str | None) -> Role:
        """The speaker's role; ``unknown`` before the decision or for no speaker."""
        if speaker is None or not self.decided:
            return "unknown"
        if speaker not in self._roles:
            self._roles[speaker] = "customer" if "agent" in self._roles.values() else "agent"
        return self._roles[speaker]

    def _decide(self) -> None:
        decision = decide_agent(self._turns, self._speakers)
        scores = sorted(decision.scores.values(), reverse=True)
        margin = abs(scores[0]) if len(scores) == 1 else scores[0] - scores[1]
        turns = len(self._turns)
        if not (
            margin >= self.min_margin
            or (margin > 0 and turns >= self.decide_after_turns)
            or turns >= self.give_up_turns
        ):
            return
        if len(self._speakers) == 1:
            (speaker,) = self._speakers
            self._roles[speaker] = "customer" if scores[0] < 0 else "agent"
            self.method = "phrases" if scores[0] else "first-speaker"
        else:
            for speaker in self._speakers:
                self._roles[speaker] = "agent" if speaker == decision.agent else "customer"
            self.method = decision.method


@dataclass
class _MixedLeg:
    """Per mixed leg state; touched only on the event loop (the attributor also by its job)."""

    attributor: OnlineSpeakerAttributor
    roles: SpeakerRoles = field(default_factory=SpeakerRoles)
    pcm: FrameResampler = field(default_factory=lambda: FrameResampler(OnlineSpeakerAttributor.sample_rate))
    next_pts: float | None = None
    """Call-audio time at which the next frame should start (input samples counted)."""
    clock: float = 0.0
    """Call-audio time of the next 16 kHz sample."""
    fed_until: float = 0.0
    """Call-audio time up to which audio has been handed to the attributor."""
    pending: list[tuple[float, list[np.ndarray]]] = field(default_factory=list)
    """Audio not yet handed over: runs of contiguous chunks, each from a call-audio time."""
    pending_samples: int = 0
    new_run: bool = False
    """The next samples start a run (they come after a jump in the leg's timeline)."""
    job: asyncio.Future[Any] | None = None
    job_start: float = 0.0
    """Call-audio time of the first sample of the running job."""
    errors: list[BaseException] = field(default_factory=list)

    def advance(self, frame: AudioFrame) -> None:
        """Account for the frame's place in the leg's timeline: a gap before it of more than
        :data:`PTS_JUMP` moves the clock to its pts. Why: with samples counted, every window
        after a hold was labelled a hold's length early, and the finals then found no labels."""
        if self.next_pts is None:
            self.next_pts = self.clock = self.fed_until = frame.pts
        elif frame.pts - self.next_pts > PTS_JUMP:
            self.clock += frame.pts - self.next_pts
            self.next_pts, self.new_run = frame.pts, True
        self.next_pts += np.size(frame.pcm) / frame.sample_rate

    def add(self, samples: np.ndarray) -> None:
        """Queue 16 kHz samples at :attr:`clock`."""
        if self.new_run or not self.pending:
            self.pending.append((self.clock, []))
            self.new_run = False
        self.pending[-1][1].append(samples)
        self.pending_samples += len(samples)
        self.clock += len(samples) / OnlineSpeakerAttributor.sample_rate


class SpeakerAttributionProcessor(FrameProcessor):
    """Labels the transcripts of mixed legs with speaker and role (see the module docstring)."""

    def __init__(
        self,
        *,
        embedder: EmbeddingModel,
        executor: Executor,
        config: OnlineAttributionConfig | None = None,
        decide_after_turns: int = 4,
        name: str | None = None,
    ) -> None:
        """Build the processor of one call.

        Args:
            embedder: the process-wide CAM++ model (``diarize.embedding.SpeakerEmbedder``).
            executor: a small pool shared by calls; one job per leg runs at a time.
            config: the attributor's tunables (window, step, speaker count).
            decide_after_turns: turns without role evidence after which the first speaker
                is taken for the agent.
            name: processor name in logs.
        """
        super().__init__(name)
        self.embedder = embedder
        self.executor = executor
        self.config = config or OnlineAttributionConfig()
        self.decide_after_turns = decide_after_turns
        self._legs: dict[str, _MixedLeg] = {}
        # Feed the attributor one step of audio per job: fewer thread hand-offs than per frame,
        # and no window waits longer than one step for its audio.
        self._feed_samples = round(self.config.step * OnlineSpeakerAttributor.sample_rate)

    async def process_frame(self, frame: Frame) -> None:
        """Label the mixed legs' transcripts; forward every frame."""
        leg = self._legs.get(getattr(frame, "leg", ""))
        if isinstance(frame, CallStartedFrame):
            self._start_call(frame)
        elif leg is not None and isinstance(frame, AudioFrame):
            await self._on_audio(leg, frame)
        elif leg is not None and isinstance(frame, TranscriptPartialFrame):
            frame = self._label_partial(leg, frame)
        elif leg is not None and isinstance(frame, TranscriptFinalFrame):
            for piece in await self._label_final(leg, frame):
                await self.push_frame(piece)
            return
        await self._report_errors()
        await self.push_frame(frame)

    async def close(self) -> None:
        """Wait for attribution jobs still running (they hold the call's audio)."""
        jobs = [leg.job for leg in self._legs.values() if leg.job is not None]
        if jobs:
            await asyncio.wait(jobs, timeout=CATCH_UP_TIMEOUT)

    async def drained(self) -> None:
        """Wait until every mixed leg's received audio is attributed (replay harnesses)."""
        for leg in self._legs.values():
            await self._catch_up(leg, float("inf"), patience=float("inf"))

    def role_method(self, leg: str) -> str | None:
        """How the roles of a mixed leg were decided (``phrases``, ``first-speaker``), if yet."""
        mixed = self._legs.get(leg)
        return mixed.roles.method if mixed is not None else None

    def speakers_of(self, leg: str) -> dict[str, Role]:
        """Speakers found on a mixed leg so far and their roles (for status and tests)."""
        mixed = self._legs.get(leg)
        if mixed is None:
            return {}
        return {s: mixed.roles.role_of(s) for s in mixed.attributor.speakers}

    # --- audio --------------------------------------------------------------------------------

    def _start_call(self, frame: CallStartedFrame) -> None:
        for leg, role in frame.legs.items():
            if role == "unknown" and leg not in self._legs:
                self._legs[leg] = _MixedLeg(
                    OnlineSpeakerAttributor(self.embedder, self.config),
                    SpeakerRoles(decide_after_turns=self.decide_after_turns),
                )

    async def _on_audio(self, leg: _MixedLeg, frame: AudioFrame) -> None:
        try:
            samples = leg.pcm(frame)
        except (ValueError, TypeError) as exc:
            await self.push_frame(
                ErrorFrame(message=f"speaker attribution: bad audio: {exc}", source=self.name)
            )
            return
        leg.advance(frame)
        if len(samples):
            leg.add(samples)
        if leg.job is None and leg.pending_samples >= self._feed_samples:
            self._submit(leg)


    def _submit(self, leg: _MixedLeg) -> None:
        """Hand the pending audio to the attributor on the executor (one job per leg at a time)."""
        runs = [(np.concatenate(chunks), start) for start, chunks in leg.pending]
        leg.pending, leg.pending_samples = [], 0
        leg.fed_until = leg.clock
        leg.job_start = runs[0][1]
        job = asyncio.get_running_loop().run_in_executor(self.executor, _attribute, leg.attributor, runs)
        leg.job = job
        job.add_done_callback(lambda done: self._job_done(leg, done))

    def _job_done(self, leg: _MixedLeg, job: asyncio.Future[Any]) -> None:
        """Runs on the event loop when a job ends: note its error, start the next one."""
        if leg.job is job:
            leg.job = None
        if not job.cancelled() and job.exception() is not None:
            leg.errors.append(job.exception())  # type: ignore[arg-type]
        if leg.job is None and leg.pending_samples >= self._feed_samples:
            self._submit(leg)

    async def _catch_up(
        self, leg: _MixedLeg, until: float, patience: float = CATCH_UP_TIMEOUT
    ) -> None:
        """Wait (at most ``patience`` s) until the attributor has processed the audio received
        up to ``until``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            if leg.job is None:
                if not leg.pending_samples or leg.fed_until >= until:
                    return
                self._submit(leg)  # the audio before ``until`` is still pending
            assert leg.job is not None
            if leg.job_start >= until or loop.time() >= deadline:
                break  # the job holds only later audio, or the executor is stalled
            remaining = deadline - loop.time()
            await asyncio.wait([leg.job], timeout=None if remaining == float("inf") else remaining)
        if leg.job_start < until:
            log.warning(
                "%s: speaker attribution is behind the transcript at %.1f s", self.name, until
            )

    async def _report_errors(self) -> None:
        for leg_name, leg in self._legs.items():
            while leg.errors:
                exc = leg.errors.pop(0)
                log.warning(
                    "%s: speaker attribution failed on leg %s: %s", self.name, leg_name, exc
                )
                await self.push_frame(
                    ErrorFrame(
                        message=f"speaker attribution on leg {leg_name!r}: "
                        f"{type(exc).__name__}: {exc}",
                        source=self.name,
                    )
                )

    # --- transcripts --------------------------------------------------------------------------

    def _label_partial(
        self, leg: _MixedLeg, frame: TranscriptPartialFrame
    ) -> TranscriptPartialFrame:
        words = [*frame.committed, *frame.tentative]
        if not words:
            return frame
        speaker = leg.attributor.speaker_at(words[0].start, words[-1].end)
        return dataclasses.replace(frame, speaker=speaker, role=leg.roles.role_of(speaker))

    async def _label_final(
        self, leg: _MixedLeg, frame: TranscriptFinalFrame
    ) -> list[TranscriptFinalFrame]:
        await self._catch_up(leg, frame.end)
        words = frame.words
        if words:
            runs = leg.attributor.split_turn([(w.start, w.end) for w in words])
        else:
            runs = [SpeakerRun(0, 0, leg.attributor.speaker_at(frame.start, frame.end))]
        pieces = (
            [frame] if len(runs) == 1 else [_piece(frame, run, i) for i, run in enumerate(runs)]
        )
        for piece, run in zip(pieces, runs, strict=True):
            if run.speaker is not None and piece.text.strip():
                leg.roles.observe(run.speaker, piece.start, piece.text)
        return [
            dataclasses.replace(piece, speaker=run.speaker, role=leg.roles.role_of(run.speaker))
            for piece, run in zip(pieces, runs, strict=True)
        ]


def _attribute(attributor: OnlineSpeakerAttributor, runs: list[tuple[np.ndarray, float]]) -> None:
    """Feed runs of audio, each at its call-audio time (the attributor fills a gap itself)."""
    for chunk, start in runs:
        attributor(chunk, start)


def _piece(frame: TranscriptFinalFrame, run: SpeakerRun, index: int) -> TranscriptFinalFrame:
    """The part of a final turn spoken by one speaker (words ``run.first:run.stop``); pieces
    after the first are new frames (own ``id``, ``turn_id`` suffixed)."""
    words: list[TimedWord] = frame.words[run.first : run.stop]
    changes: dict[str, Any] = {
        "text": join_words(words),
        "words": words,
        "start": words[0].start,
        "end": words[-1].end,
    }
    if index == 0:
        return dataclasses.replace(frame, **changes)
    kept = {
        f.name: getattr(frame, f.name)
        for f in dataclasses.fields(frame)
        if f.init and f.name != "id"
    }
    return TranscriptFinalFrame(**{**kept, **changes, "turn_id": f"{frame.turn_id}.{index}"})
