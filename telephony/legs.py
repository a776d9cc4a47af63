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

Gaps are bounded by wall time: the silence filled and the jumps of a leg together may not exceed
the wall time since its stream started plus :data:`MAX_LEAD` (``max_lead``), so its timeline runs
ahead of the audio actually received by at most that. A position beyond it is pulled back (nothing
is filled or jumped past the bound) and the sender's clock is read relative to there, so its audio
goes on contiguously. Without this, every message of a tiny stream could claim a 10 s gap (filled)
or a jump: 107 kB of input became a 4.9 h call and a 565 MB WAV.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from telephony.resample import StreamResampler
from voice.frames import AudioFrame

log = logging.getLogger(__name__)

GAP_TOLERANCE = 0.002
"""A gap shorter than this (seconds) is timing jitter, not lost audio: no silence is inserted."""
MAX_LEAD = 5.0
"""Seconds of gaps (silence filled, timeline jumped) a leg may have beyond the wall time since its
stream started.

Why 5 s: a real gap is time that passed without audio, so an honest sender's gaps add up to at
most the wall time, plus how much earlier its clock started than our leg (a Twilio stream starts
before its ``start`` message reaches us: a round trip) and jitter (a late frame's slot was
already counted as a gap). A sender catching up after a network stall sends faster than real
time, but the stall's gap did pass on our clock too. A replay sent flat out (``speed=0``) keeps pauses up to 5 s.
Past that, a bogus timestamp adds nothing: a stream's audio is at most what it sent plus the
call's wall duration plus 5 s, instead of 10 s (or a jump) per message.
"""


class LegAudio:
    """Turns one leg's decoded chunks into ``AudioFrame``s at ``out_rate``.

    Args:
        leg: leg name written into every frame.
        in_rate: rate of the decoded wire audio.
        out_rate: rate of the frames (the pipeline's).
        max_gap_fill: longest gap filled with silence; longer gaps move ``pts`` forward instead.
        max_lead: seconds of gaps allowed beyond the wall time since the leg was created (the
            stream's start); see :data:`MAX_LEAD`.
        clock: the wall clock, in seconds (injectable for tests).
        started: when, on ``clock``, the leg's timeline began (default: now). A leg made at its
            first frame, whose positions count from an earlier call start (WebRTC), passes that.
    """

    def __init__(
        self,
        leg: str,
        in_rate: int,
        out_rate: int,
        *,
        max_gap_fill: float = 10.0,
        max_lead: float = MAX_LEAD,
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
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
        self.max_lead = max_lead
        self.gap_time = 0.0
        """Seconds the timeline advanced without audio: silence filled plus jumps."""
        self.positions_pulled_back = 0
        """Chunks whose gap went past the wall clock's bound (``max_lead``)."""
        self._clock = clock
        self._started = clock() if started is None else started
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
            target = self._bounded(position + self._shift)
            gap = target - self.next_position
            if gap > self.max_gap_fill:
                frames += self._jump_to(target)
            elif gap > GAP_TOLERANCE:
                silence = np.zeros(round(gap * self.in_rate), dtype=np.int16)
                self.silence_filled += len(silence) / self.in_rate
                pcm = np.concatenate([silence, pcm])
            elif gap * self.in_rate <= -1:  # overlaps by a sample or more
                pcm = self._resolve_overlap(pcm, -gap)
        return frames + self._feed(pcm, last=False)

    def _bounded(self, position: float) -> float:
        """``position``, or as far as the wall clock lets the leg's gaps reach; counts the gap."""
        gap = position - self.next_position
        if gap <= GAP_TOLERANCE:
            return position
        allowed = max(0.0, self._clock() - self._started + self.max_lead - self.gap_time)
        if gap > allowed:
            # Why continue rather than refuse (ProtocolError): the audio is real and the call must
            # go on; only the sender's clock is wrong. Nothing past the bound is filled or jumped,
            # so the stored audio is no longer than the call lasted (plus the slack and what was
            # sent faster than real time), and positions are read relative to here from now on
            # (as after a clock restart): the audio goes on contiguously.
            self._shift -= gap - allowed
            self.positions_pulled_back += 1
            if self.positions_pulled_back == 1:
                log.warning(
                    "leg %s: a gap of %.1f s at %.1f s runs ahead of the wall clock: %.1f s of it "
                    "kept, the audio continues contiguously; later ones are not logged",
                    self.leg, gap, self.next_position, allowed,
                )  # fmt: skip
            position, gap = self.next_position + allowed, allowed
        if gap > GAP_TOLERANCE:
            self.gap_time += gap
        return position

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
