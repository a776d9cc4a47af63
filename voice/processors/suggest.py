"""Next-best-line suggestions after each finished turn, from the call's tenant model.

Triggered by the turn's NluFrame (which follows its final transcript within milliseconds), so
the engine sees the turn's entities for refilling. The engine runs behind a micro-batcher
shared by all calls of the process; this processor only awaits its future.

The call's history is kept in the order the turns were finalised, i.e. the order in which the
agent had heard each of them to its end, not sorted by start time. A customer's "mm-hmm" said
during a longer agent turn ends, and is finalised, first; the agent's next line follows the
agent's own finished turn, which came after it. This order also only ever grows at its end, so
the engine extends the call's state by one turn per suggestion; inserting the longer turn before
the backchannel (start order) rewrote a history the engine had already consumed and made it
rebuild the call from its first turn, at a cost growing with the call's length.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from voice.frames import (
    CallEndedFrame,
    CallStartedFrame,
    ErrorFrame,
    Frame,
    NluFrame,
    SuggestionFrame,
    TranscriptFinalFrame,
)
from voice.processor import FrameProcessor

log = logging.getLogger(__name__)


class SuggestionService(Protocol):
    """What the processor needs of the engine: a non-blocking submit returning a future."""

    def submit(self, context: Any) -> Future[Any]:
        """Queue a suggestion request; the future resolves to a ``suggest.types.SuggestResult``."""
        ...


class SuggestProcessor(FrameProcessor):
    """Asks the suggestion engine for the next agent line after every customer and agent turn."""

    def __init__(self, *, service: SuggestionService, arm: str | None = None, k: int = 3,
                 end_call: Callable[[str], None] | None = None) -> None:
        """``end_call(call_id)``: the service forgets the call once its last suggestion is done
        (the engine keeps each call's state between turns; nothing else ever drops it)."""
        super().__init__()
        self.service = service
        self.arm = arm
        self.k = k
        self._end_call = end_call
        self.started: CallStartedFrame | None = None
        self._finals: dict[str, tuple[int, TranscriptFinalFrame]] = {}
        """Finals awaiting their understanding, with the order they were finalised in."""
        self._heard = 0
        self._turns: list[tuple[int, Any]] = []
        """(order finalised, ``suggest.types.Turn``): the call's history, in that order."""
        self._unresolved: list[tuple[int, TranscriptFinalFrame, NluFrame]] = []
        """Turns of a mixed leg heard before its speakers' roles were decided."""
        self._pending: set[asyncio.Task[None]] = set()
        self._asked = 0
        self._shown = 0
        """Number of the newest request whose suggestion was pushed (requests count from 1)."""
        self.stale_dropped = 0
        """Suggestions dropped because one for a newer turn had been pushed before them."""

    async def process_frame(self, frame: Frame) -> None:
        """Forward everything; request a suggestion when a turn's understanding arrives."""
        if isinstance(frame, CallStartedFrame):
            self.started = frame
        elif isinstance(frame, TranscriptFinalFrame):
            self._heard += 1
            self._finals[frame.turn_id] = (self._heard, frame)
        elif isinstance(frame, CallEndedFrame):
            await self.close()
        await self.push_frame(frame)
        if not isinstance(frame, NluFrame) or frame.turn_id not in self._finals:
            return
        heard, final = self._finals.pop(frame.turn_id)
        if frame.role not in ("agent", "customer"):
            self._unresolved.append((heard, final, frame))
            return
        self._resolve_earlier(final.speaker, frame.role)
        self._add_turn(heard, final, frame, frame.role)
        # The context is taken now: the task may run after later turns have arrived.
        self._asked += 1
        task = asyncio.get_running_loop().create_task(self._suggest(frame, self._context(), self._asked))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _resolve_earlier(self, speaker: str | None, role: str) -> None:
        """Give earlier turns of ``speaker`` its role, now decided, so they count as context
        (roles of a mixed leg are decided once and never change, see SpeakerRoles)."""
        if speaker is None:
            return
        waiting = [w for w in self._unresolved if w[1].speaker == speaker]
        self._unresolved = [w for w in self._unresolved if w[1].speaker != speaker]
        for heard, final, nlu in waiting:
            self._add_turn(heard, final, nlu, role)

    def _add_turn(self, heard: int, final: TranscriptFinalFrame, nlu: NluFrame, role: str) -> None:
        """Put a turn where it was finalised: at the end, but for turns whose role was decided
        late (those go back where they were heard; the engine replays its last few turns)."""
        from suggest.nlu.types import Entity
        from suggest.types import Turn

        entities = tuple(Entity(e["label"], e["text"], e.get("start", 0), e.get("end", 0), e.get("value") or e["text"])
                         for e in nlu.entities)
        turn = Turn(role, final.text, final.start, final.end, entities)  # type: ignore[arg-type]
        bisect.insort(self._turns, (heard, turn), key=lambda entry: entry[0])

    def _context(self) -> Any:
        from suggest.types import SuggestContext

        assert self.started is not None
        return SuggestContext(call_id=self.started.call_id, turns=tuple(t for _, t in self._turns),
                              agent_id=self.started.agent_id, tenant=self.started.tenant, k=self.k,
                              context=self.started.context)

    async def _suggest(self, nlu: NluFrame, context: Any, number: int) -> None:
        """Ask for request ``number``'s suggestion and push it, unless a newer one was pushed first:
        requests can complete out of order, and the agent's console shows the last one it gets."""
        asked = time.perf_counter()
        try:
            result = await asyncio.wrap_future(self.service.submit(context))
        except Exception as exc:  # a failed suggestion is reported, the call goes on
            await self.push_frame(ErrorFrame(message=f"suggestion failed: {exc}", source=self.name))
            return
        if number < self._shown:
            self.stale_dropped += 1
            log.debug("call %s: suggestion for turn %s dropped, one for a newer turn was shown (%d dropped)",
                      context.call_id, nlu.turn_id, self.stale_dropped)
            return
        self._shown = number
        waited_ms = (time.perf_counter() - asked) * 1000
        latency = {"total": round(waited_ms, 2), "engine": round(result.latency.total_ms, 2),
                   "queue": round(result.latency.queue_ms, 2), "encode": round(result.latency.encode_ms, 2),
                   "policy": round(result.latency.policy_ms, 2), "realise": round(result.latency.realise_ms, 2),
                   "batch_size": result.latency.batch_size}
        suggestions = [{"id": s.id, "text": s.text, "action": s.action, "score": round(s.score, 4), "why": s.why,
                        "source": s.source} for s in result.suggestions]
        await self.push_frame(SuggestionFrame(turn_id=nlu.turn_id, suggestions=suggestions,
                                              model_version=result.model_version, latency_ms=latency,
                                              audio_time=nlu.audio_time, arm=result.arm or self.arm))

    async def close(self) -> None:
        """Wait for suggestions still in flight, then release the call's state in the service."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._end_call is not None:  # also without a start: the router's hold on a model goes
            self._end_call(self.started.call_id if self.started is not None else "")
