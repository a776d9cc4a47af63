"""Streaming resampler (exactly resample_poly, low latency) and the per-leg timeline."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from telephony.legs import LegAudio
from telephony.resample import StreamResampler

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 16000), (48000, 16000), (16000, 8000), (8000, 48000), (44100, 16000)]
)
def test_chunked_output_equals_resample_poly(src: int, dst: int) -> None:
    rng = np.random.default_rng(0)
    signal = (rng.standard_normal(src) * 3000).astype(np.int16)
    resampler = StreamResampler(src, dst)
    chunks, start = [], 0
    while start < len(signal):
        size = int(rng.integers(1, 400))
        chunks.append(resampler.process(signal[start : start + size]))
        start += size
    chunks.append(resampler.process(np.zeros(0, dtype=np.int16), last=True))
    ours = np.concatenate(chunks)
    reference = np.clip(
        np.round(
            resample_poly(signal.astype(float), dst // np.gcd(src, dst), src // np.gcd(src, dst))
        ),
        -32768,
        32767,
    )
    assert len(ours) == len(reference)
    assert np.array_equal(ours, reference.astype(np.int16))


def test_output_keeps_pace_with_20ms_input() -> None:
    resampler = StreamResampler(8000, 16000)
    sizes = [len(resampler.process(np.ones(160, dtype=np.int16))) for _ in range(5)]
    assert sizes[0] >= 280 and sizes[1:] == [320] * 4  # no soxr-style 100 ms bursts


def test_contiguous_chunks_give_contiguous_pts() -> None:
    leg = LegAudio("inbound", 8000, 16000)
    frames = []
    for n in range(50):
        frames += leg.push(np.full(160, 1000, dtype=np.int16), n * 0.02)
    frames += leg.flush()
    assert sum(len(f.pcm) for f in frames) == 16000
    for earlier, later in zip(frames, frames[1:], strict=False):
        assert later.pts == pytest.approx(earlier.pts + earlier.duration)
    assert leg.silence_filled == 0


def test_gaps_become_silence_and_keep_pts_true() -> None:
    leg = LegAudio("inbound", 8000, 8000)
    frames = leg.push(np.ones(160, dtype=np.int16), 0.0)
    frames += leg.push(np.ones(160, dtype=np.int16), 0.5)  # 480 ms lost
    audio = np.concatenate([f.pcm for f in frames])
    assert len(audio) == 4000 + 160
    assert np.all(audio[160:4000] == 0) and leg.silence_filled == pytest.approx(0.48)


def test_implausible_gap_moves_the_timeline_instead_of_allocating() -> None:
    now = [0.0]
    leg = LegAudio("inbound", 8000, 8000, max_gap_fill=10.0, clock=lambda: now[0])
    leg.push(np.ones(160, dtype=np.int16), 0.0)
    now[0] = 3600.0  # an hour on hold: the gap passed on the wall clock too (else it is bounded)
    frames = leg.push(np.ones(160, dtype=np.int16), 3600.0)
    assert frames[-1].pts == pytest.approx(3600.0) and len(frames[-1].pcm) == 160
    assert leg.timeline_jumps == 1


def test_chunk_longer_than_its_slot_is_trimmed_to_the_slot() -> None:
    leg = LegAudio("inbound", 8000, 8000)
    frames = []
    for n in range(10):  # 164 samples every 160 (an SRTP tag decoded as audio)
        frames += leg.push(np.ones(164, dtype=np.int16), n * 0.02)
    assert sum(len(f.pcm) for f in frames) == 9 * 160 + 164


def test_sender_clock_going_back_never_moves_pts_backwards() -> None:
    leg = LegAudio("inbound", 8000, 8000)
    frames = leg.push(np.ones(160, dtype=np.int16), 5.0)
    frames += leg.push(np.ones(160, dtype=np.int16), 0.0)  # restart of the sender's clock
    frames += leg.push(np.ones(160, dtype=np.int16), 0.02)
    assert [f.pts for f in frames] == pytest.approx([0.0, 5.02, 5.04])
