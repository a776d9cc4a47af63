#!/usr/bin/env python
"""Decode throughput of the live path's model set-ups on real turns (no streaming, no VAD loop).

The turns are the VAD turns of the SpokenWOZ legs (the same cut as the live processor's finals:
0.4 s pre-roll and end pad). Each set-up decodes the same turns from as many threads as it has
workers, and the script prints turns per second and CPU seconds per turn. Set-ups run in
alternating rounds so that load from other processes on a shared host hits each about equally.

Set-ups (``--setups``, comma-separated):
    w2t1  one model, num_workers=2, cpu_threads=1, 2 threads   (the live default on 2 cores)
    w1t2  one model, num_workers=1, cpu_threads=2, 1 thread    (one decode at a time, 2 cores)
    w1t1x2  one model, num_workers=1, cpu_threads=1, 2 threads (CTranslate2 serialises them)

Usage: .venv/bin/python scripts/bench_decode.py [--turns 40] [--rounds 2] [--beam 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))

SETUPS = {"w2t1": (2, 1, 2), "w1t2": (1, 2, 1), "w1t1x2": (1, 1, 2)}  # workers, threads, callers


def turns(limit: int) -> list[np.ndarray]:
    """Audio of the first ``limit`` VAD turns over all legs, with the live path's padding."""
    from voice.audio import load_audio
    from voice.vad import VadEventType, VadStream

    out = []
    for path in sorted((DATA / "diarization" / "spokenwoz_calls_8k").glob("*.wav")):
        audio = load_audio(path)
        for ch in range(audio.num_channels):
            leg = audio.channel(ch)
            stream = VadStream()
            for e in stream.process(leg) + stream.finish():
                if e.type is VadEventType.SPEECH_STOPPED:
                    start = max(0, int((e.speech_start - 0.4) * 16000))
                    end = int((e.time + 0.4) * 16000)
                    out.append(leg[start:end])
    step = max(1, len(out) // limit)
    return out[::step][:limit]


def run(setup: str, audio: list[np.ndarray], beam: int) -> tuple[float, float]:
    """(turns per second, CPU seconds per turn) of one set-up over ``audio``."""
    from asr import AsrOptions
    from asr.live import load_streaming_engine

    workers, threads, callers = SETUPS[setup]
    engine = load_streaming_engine("tiny.en", workers=workers, cpu_threads=threads)
    options = AsrOptions(beam_size=beam)
    engine.transcribe_turn(audio[0], options)  # warm-up
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(lambda a: engine.transcribe_turn(a, options), audio))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return len(audio) / wall, cpu / len(audio)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--setups", default="w2t1,w1t2,w1t1x2")
    args = parser.parse_args()
    audio = turns(args.turns)
    seconds = sum(len(a) for a in audio) / 16000
    print(f"{len(audio)} turns, {seconds:.0f} s of audio, beam {args.beam}", flush=True)
    results: dict[str, list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        for setup in args.setups.split(","):
            rate, cpu = run(setup, audio, args.beam)
            results.setdefault(setup, []).append((rate, cpu))
            load = os.getloadavg()[0]
            print(f"round {r + 1} {setup:7} {rate:5.2f} turns/s  {1000 * cpu:5.0f} ms CPU/turn  "
                  f"(load {load:.1f})", flush=True)  # fmt: skip
    print("| set-up | turns/s (best) | CPU ms/turn (best) |\n|---|---|---|")
    for setup, runs in results.items():
        print(f"| {setup} | {max(r for r, _ in runs):.2f} | {1000 * min(c for _, c in runs):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
