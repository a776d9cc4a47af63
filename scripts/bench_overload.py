#!/usr/bin/env python
"""Live ASR under overload: how each closed turn gets its final, and how late.

Replays three SpokenWOZ calls (6 legs, 8 kHz stereo) in real time through the live ASR processor
on one tiny.en worker whose decodes are made slower (the set-up of
``tests/live/test_asr_overload.py``'s model test): every beam final ``--extra`` s more, and every
decode (partials, cheap and beam finals) ``--factor`` times as long. For each ``--shed`` limit
(``none``: shedding off) it prints one JSON line: turns decoded / stood in with streamed words /
untranscribed, the final's delay after the turn's VAD close (p50/p95/max), the most finals
queued, and the scheduler's counters. Results: docs/results/streaming.md, "Live ASR under
overload".

Usage:
    .venv/bin/python scripts/bench_overload.py --extra 1.2 --factor 6 --shed none,4 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
CALLS = ("SNG0072", "SNG0480", "SNG0696")

from asr import AsrOptions  # noqa: E402
from asr.live import load_streaming_engine  # noqa: E402
from asr.streaming import DecodeRequest, WhisperTurnDecoder  # noqa: E402
from asr.types import Word  # noqa: E402
from voice.frames import ErrorFrame, SpeechStoppedFrame, TranscriptFinalFrame  # noqa: E402
from voice.live.asr_runtime import live_streaming_config, partial_window  # noqa: E402
from voice.live.replay import FrameRecorder, ReplayClock, ReplayLog, ReplayMode, replay_call  # noqa: E402
from voice.live.scheduler import DecodeScheduler, SchedulerConfig  # noqa: E402
from voice.processor import Pipeline  # noqa: E402
from voice.processors.asr import StreamingAsrProcessor  # noqa: E402
from voice.processors.asr_legs import cheap_final  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def run(decoder: WhisperTurnDecoder, extra: float, factor: float, shed: int | None, seconds: float) -> dict[str, Any]:
    """One replay of the three calls; counts of how each turn was closed and final delays."""
    def slow(requests: Sequence[DecodeRequest]) -> list[list[Word]]:
        began = time.perf_counter()
        out = decoder.decode_batch(requests)
        if factor > 1:
            time.sleep((factor - 1) * (time.perf_counter() - began))
        if any(r.final for r in requests):
            time.sleep(extra)
        return out

    scheduler = DecodeScheduler(slow, SchedulerConfig(workers=1, shed_finals_after=shed), cheapen=cheap_final)
    max_q = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal max_q
        while not stop.is_set():
            max_q = max(max_q, scheduler.metrics().queued_finals)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results: dict[str, tuple[ReplayLog, FrameRecorder, StreamingAsrProcessor, int]] = {}

    async def one(call: str) -> None:
        with wave.open(str(DATA / "diarization" / "spokenwoz_calls_8k" / f"{call}.wav")) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)[: int(seconds * 8000)]
        clock = ReplayClock(ReplayMode.REALTIME)
        processor = StreamingAsrProcessor(scheduler, config=live_streaming_config(on_cpu=True), flush_timeout=5.0)
        recorder = FrameRecorder(clock)
        pipeline = Pipeline([processor, recorder])
        legs = {"A": pcm[:, 0].copy(), "B": pcm[:, 1].copy()}
        log = await replay_call(pipeline, legs, 8000, call_id=call, roles={"A": "agent", "B": "customer"},
                                mode=ReplayMode.REALTIME, clock=clock)
        submitted = sum(leg.finals_submitted for leg in processor._legs.values())
        await pipeline.close()
        results[call] = (log, recorder, processor, submitted)

    async def all_calls() -> None:
        await asyncio.gather(*(one(call) for call in CALLS))

    t0 = time.perf_counter()
    asyncio.run(all_calls())
    wall = time.perf_counter() - t0
    stop.set()
    m = scheduler.metrics()
    scheduler.close()
    turns = streamed = untranscribed = with_text = 0
    delays: list[float] = []
    errors: list[str] = []
    for log, recorder, processor, submitted in results.values():
        turns += submitted
        streamed += processor.stand_ins["streamed"]
        untranscribed += processor.stand_ins["untranscribed"]
        closes: dict[tuple[str, float], float] = {}
        for e in recorder.emitted:
            if isinstance(e.frame, SpeechStoppedFrame):
                closes[(e.frame.leg, round(e.frame.audio_time, 4))] = e.at
            elif isinstance(e.frame, ErrorFrame):
                errors.append(e.frame.message)
        for e in recorder.emitted:
            f = e.frame
            if isinstance(f, TranscriptFinalFrame):
                with_text += bool(f.text.strip())
                closed_at = closes.get((f.leg, round(f.end, 4)), log.fed_time(f.end))
                delays.append(e.at - closed_at)
    return {
        "shed": shed, "seconds": seconds, "extra": extra, "factor": factor, "wall": round(wall, 1),
        "turns": turns, "decoded": turns - streamed - untranscribed, "stand_in_words": streamed,
        "untranscribed": untranscribed, "finals_with_text": with_text,
        "delay_p50": round(pct(delays, 0.5), 2), "delay_p95": round(pct(delays, 0.95), 2),
        "delay_max": round(max(delays), 2) if delays else None, "n_final_frames": len(delays),
        "max_queued_finals": max_q, "finals_shed_metric": m.finals_shed, "finals_cheap": m.finals_cheap,
        "finals_done": m.finals_done, "partials_done": m.partials_done, "failures": m.failures,
        "error_frames": len(errors), "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", type=float, default=1.2, help="seconds added to every beam final")
    parser.add_argument("--factor", type=float, default=1.0, help="every decode takes this many times as long")
    parser.add_argument("--shed", default="none,4", help="comma-separated limits per decode slot; none: off")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio of each call replayed")
    args = parser.parse_args()
    engine = load_streaming_engine("tiny.en", workers=1, cpu_threads=2, encoder_window="trimmed")
    decoder = WhisperTurnDecoder(engine, final=AsrOptions(beam_size=5), around=partial_window("12,8"))
    for limit in args.shed.split(","):
        shed = None if limit == "none" else int(limit)
        print(json.dumps(run(decoder, args.extra, args.factor, shed, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
