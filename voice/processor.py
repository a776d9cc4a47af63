"""Frame processors and the per-call pipeline (pipecat's shape, kept small).

A processor receives every frame in ``process_frame``, handles the kinds it owns and forwards
everything (its own outputs included) with ``push_frame``. Processors never call siblings; a
pipeline is a list. Blocking work (model inference) never runs on the event loop: processors
hand it to executors and push the result when it is ready.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from voice.frames import ErrorFrame, Frame

log = logging.getLogger(__name__)


class FrameProcessor:
    """Base processor: forwards everything unchanged."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self._next: FrameProcessor | None = None

    def link(self, nxt: FrameProcessor) -> FrameProcessor:
        """Send this processor's output to ``nxt``; returns ``nxt`` for chaining."""
        self._next = nxt
        return nxt

    async def process_frame(self, frame: Frame) -> None:
        """Handle one frame; the default forwards it."""
        await self.push_frame(frame)

    async def push_frame(self, frame: Frame) -> None:
        """Send a frame downstream."""
        if self._next is not None:
            await self._next.process_frame(frame)

    async def close(self) -> None:
        """Release per-call resources (called once when the call ends)."""


class Pipeline(FrameProcessor):
    """Processors linked in order; a frame put in flows through all of them."""

    def __init__(self, processors: Sequence[FrameProcessor]) -> None:
        super().__init__("Pipeline")
        if not processors:
            raise ValueError("a pipeline needs at least one processor")
        self.processors = list(processors)
        for first, second in zip(self.processors, self.processors[1:], strict=False):
            first.link(second)

    def link(self, nxt: FrameProcessor) -> FrameProcessor:
        """Link the pipeline's last processor to ``nxt``."""
        return self.processors[-1].link(nxt)

    async def process_frame(self, frame: Frame) -> None:
        """Feed a frame to the first processor; a processor's exception becomes an ErrorFrame."""
        try:
            await self.processors[0].process_frame(frame)
        except Exception as exc:  # one bad frame must not end the call
            log.exception("pipeline error on %s", type(frame).__name__)
            await self.processors[-1].process_frame(
                ErrorFrame(message=f"{type(exc).__name__}: {exc}", source=self.name)
            )

    async def close(self) -> None:
        """Close every processor."""
        for processor in self.processors:
            await processor.close()
