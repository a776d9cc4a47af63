"""The end of a test pipeline: a processor that keeps every frame reaching it."""

from __future__ import annotations

from voice.frames import Frame
from voice.processor import FrameProcessor


class Collector(FrameProcessor):
    """Keeps what reaches it, in order (``frames``)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame) -> None:
        self.frames.append(frame)
