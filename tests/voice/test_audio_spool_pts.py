"""AudioSpool against bad timestamps: non-finite pts are dropped, far jumps are clamped."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voice.processors.audio_spool import MAX_GAP, AudioSpool

pytestmark = pytest.mark.unit

RATE = 8000
CHUNK = RATE // 50  # 20 ms


def _chunk(i: int) -> np.ndarray:
    return np.full(CHUNK, 1000 + i, dtype=np.int16)


def _wav(tmp_path: Path, pushes: list[tuple[str, float, np.ndarray]]) -> np.ndarray:
    with ThreadPoolExecutor(1) as executor:
        spool = AudioSpool(tmp_path / "spool", "c1", executor, flush_seconds=0.5)
        for leg, pts, pcm in pushes:
            spool.push(leg, pts, pcm, RATE)
        spool.finish(tmp_path / "c1.wav", ["a", "b"])
    audio, rate = sf.read(tmp_path / "c1.wav", dtype="float32", always_2d=True)
    assert rate == 16000
    return audio


def test_a_far_jump_continues_where_the_leg_ended(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pushes = [("a", i / 50, _chunk(i)) for i in range(100)]  # 2 s
    pushes += [("a", 1800.0 + i / 50, _chunk(100 + i)) for i in range(50)]  # 30 min ahead, 1 s
    with caplog.at_level(logging.WARNING):
        audio = _wav(tmp_path, pushes)
    assert len(audio) == pytest.approx(3.0 * 16000, abs=16)  # not 1801 s
    assert abs(audio[int(2.5 * 16000), 0]) > 0.03  # the jumped audio is there, right after
    assert sum("jumps past" in r.getMessage() for r in caplog.records) == 1


def test_a_gap_within_the_bound_is_kept_as_silence(tmp_path: Path) -> None:
    gap = MAX_GAP - 10.0
    pushes = [("a", 0.0, _chunk(0)), ("a", gap, _chunk(1)), ("b", gap - 1.0, _chunk(2))]  # b joins late
    audio = _wav(tmp_path, pushes)
    assert len(audio) == pytest.approx((gap + 0.02) * 16000, abs=16)
    assert abs(audio[int((gap - 0.99) * 16000), 1]) > 0.02  # leg b placed at its own pts
    assert not audio[int(1.0 * 16000) : int((gap - 1.1) * 16000)].any()


def test_non_finite_pts_are_dropped_and_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pushes = [("a", i / 50, _chunk(i)) for i in range(50)]
    pushes += [("a", float("nan"), _chunk(0)) for _ in range(50)] + [("b", float("inf"), _chunk(0))]
    with caplog.at_level(logging.WARNING):
        audio = _wav(tmp_path, pushes)
    assert len(audio) == pytest.approx(1.0 * 16000, abs=16)
    assert sum("non-finite pts" in r.getMessage() for r in caplog.records) == 2  # once per leg
