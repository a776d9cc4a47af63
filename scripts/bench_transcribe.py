#!/usr/bin/env python
"""Throughput of plain faster-whisper vs the whole ``voice transcribe`` pipeline, same files and model.

Both run in this one process on the same files, models loaded (and warmed up) before timing.
Throughput = seconds of call audio per wall-clock second. "Plain" is what a user gets from
faster-whisper out of the box: ``WhisperModel.transcribe(path)`` (file decoded and mixed to mono,
default options), segments consumed. "Pipeline" is ``voice.batch.pipeline.transcribe_file``:
decode, resample, VAD per leg, speakers (channels or diarization), ASR with word timestamps,
roles, entities.

Usage: .venv/bin/python scripts/bench_transcribe.py [FILES...] [--model base] [--repeat 1]
Default files: the SpokenWOZ 8 kHz stereo calls in ../shared/data (real customer-service calls).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO.parent / "shared" / "data" / "diarization" / "spokenwoz_calls_8k"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--model", default="base")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes over the files (best is kept)")
    args = parser.parse_args()
    files = args.files or sorted(DEFAULT_DIR.glob("*.wav"))
    if not files:
        print(f"no files (looked in {DEFAULT_DIR})", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from faster_whisper import WhisperModel

    from asr.models import resolve_whisper_model
    from voice.audio import load_audio
    from voice.batch import engines
    from voice.batch.options import TranscribeOptions
    from voice.batch.pipeline import transcribe_file

    threads = os.cpu_count() or 1
    audio_seconds = sum(load_audio(f).duration for f in files)
    plain = WhisperModel(str(resolve_whisper_model(args.model)), device="cpu", compute_type="int8", cpu_threads=threads)
    options = TranscribeOptions(model=args.model)
    engines.whisper_engine(options.model, options.device, threads)
    # warm-up: first calls pay one-off costs (allocations, ONNX sessions, spaCy, pyannote)
    list(plain.transcribe(str(files[0]), language="en")[0])
    transcribe_file(files[0], options, cpu_threads=threads)

    def plain_run() -> None:
        for f in files:
            segments, _ = plain.transcribe(str(f), language="en")
            list(segments)

    def pipeline_run() -> None:
        for f in files:
            transcribe_file(f, options, cpu_threads=threads)

    results = {}
    for name, run in (("plain faster-whisper", plain_run), ("voice transcribe pipeline", pipeline_run)):
        best = min(_timed(run) for _ in range(args.repeat))
        results[name] = audio_seconds / best
        print(f"{name:28} {best:7.1f} s wall  {results[name]:6.2f} audio s / wall s", flush=True)
    ratio = results["voice transcribe pipeline"] / results["plain faster-whisper"]
    print(f"files: {len(files)} ({audio_seconds:.0f} s of audio), model {args.model}, {threads} threads")
    print(f"ratio pipeline / plain: {ratio:.2f}x")
    return 0


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
