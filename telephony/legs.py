"""One call leg's audio as ``AudioFrame``s on a continuous call-audio timeline.

Every ingress ends here: it decodes its payload to int16 at the wire rate and says where the
chunk belongs (``position``, call-audio seconds, from RTP timestamps, Twilio ``timestamp`` or
AudioHook ``position``). :class:`LegAudio` fills gaps with silence (lost packets, silence
suppression, pauses) so ``pts`` stays true, resamples to the pipeline rate with a low-latency
streaming filter (:mod:`telephony.resample`), and jumps the timeline instead of allocating
silence when a gap is implausibly long (a hold of minutes, or a bogus timestamp from a hostile
peer). A chunk longer than its time slot is trimmed to the slot; a chunk entirely in the past
(the sender restarted its clock) is kept and the sender's clock re-read from there, so ``pts``
never goes backwards.
"""

from __future__ import annotations

import numpy as np

from telephony.resample import StreamResampler
from voice.frames import AudioFrame

GAP_TOLERANCE = 0.002
"""A gap shorter than this (seconds) is timing jitter, not lost audio: no silence is inserted."""


class LegAudio:
    """Turns one leg's decoded chunks into ``AudioFrame``s at ``out_rate``.

    Args:
        leg: leg name written into every frame.
        in_rate: rate of the decoded wire audio.
        out_rate: rate of the frames (the pipeline's).
        max_gap_fill: longest gap filled with silence; longer gaps move ``pts`` forward instead.
    """

    def __init__(
        self, leg: str, in_rate: int, out_rate: int, *, max_gap_fill: float = 10.0
    ) -> None:
        self.leg = leg
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.max_gap_fill = max_gap_fill
        self.samples_in = 0
        """Decoded wire samples received (excluding silence we inserted)."""
        self.silence_filled = 0.0
        """Seconds of silence inserted for gaps."""
        self.timeline_jumps = 0
        self._origin = 0.0
        self._shift = 0.0  # added to incoming positions after a sender's clock went back
        self._consumed = 0
        self._produced = 0
        self._resampler = self._new_resampler()

    @property
    def next_position(self) -> float:
        """Call-audio time right after the last sample received."""
        return self._origin + self._consumed / self.in_rate

    def push(self, pcm: np.ndarray, position: float | None = None) -> list[AudioFrame]:
        """Add ``pcm`` (int16 at ``in_rate``) that starts at ``position`` (``None``: contiguous)."""
        frames: list[AudioFrame] = []
        pcm = np.asarray(pcm, dtype=np.int16)
        self.samples_in += len(pcm)
        if position is not None:
            gap = position + self._shift - self.next_position
            if gap > self.max_gap_fill:
                frames += self._jump_to(position + self._shift)
            elif gap > GAP_TOLERANCE:
                silence = np.zeros(round(gap * self.in_rate), dtype=np.int16)
                self.silence_filled += len(silence) / self.in_rate
                pcm = np.concatenate([silence, pcm])
            elif gap * self.in_rate <= -1:  # overlaps by a sample or more
                pcm = self._resolve_overlap(pcm, -gap)
        return frames + self._feed(pcm, last=False)

    def _resolve_overlap(self, pcm: np.ndarray, overlap: float) -> np.ndarray:
        """A chunk that starts before the end of what we already have."""
        samples = round(overlap * self.in_rate)
        if samples < len(pcm):
            return pcm[samples:]  # longer than its time slot: keep the new part
        # Entirely in the past: the sender's clock went back (restart). Keep the audio, and read
        # this and later positions relative to the restart so pts never goes backwards.
        self._shift += overlap
        self.timeline_jumps += 1
        return pcm

    def flush(self) -> list[AudioFrame]:
        """End of the leg: release what the resampling filter still holds."""
        return self._feed(np.zeros(0, dtype=np.int16), last=True)

    def _jump_to(self, position: float) -> list[AudioFrame]:
        frames = self.flush()
        self.timeline_jumps += 1
        self._origin, self._consumed, self._produced = position, 0, 0
        self._resampler = self._new_resampler()
        return frames

    def _new_resampler(self) -> StreamResampler | None:
        if self.in_rate == self.out_rate:
            return None
        return StreamResampler(self.in_rate, self.out_rate)

    def _feed(self, pcm: np.ndarray, *, last: bool) -> list[AudioFrame]:
        self._consumed += len(pcm)
        if self._resampler is None:
            out = pcm
        else:
            out = self._resampler.process(pcm, last=last)
        if len(out) == 0:
            return []
        pts = self._origin + self._produced / self.out_rate
        self._produced += len(out)
        return [AudioFrame(pcm=out, sample_rate=self.out_rate, leg=self.leg, pts=pts)]
