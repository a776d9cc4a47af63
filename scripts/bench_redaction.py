"""What live redaction (``voice serve --redact``) adds to each final turn's way to the screen.

With redaction on, a final waits for :func:`voice.processors.redact.redact_final` (the entity
extractor on the turn, digit runs across turns, masking). This times it on the real turns of the
SpokenWOZ calls in the shared data (reference words grouped into turns by speaker), one turn at a
time as the live path runs it, warm, on one thread, and prints p50/p95/p99 and how many turns
were masked.

    .venv/bin/python scripts/bench_redaction.py [--data ../shared/data] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from suggest.nlu.entities import REDACTED_LABELS  # noqa: E402
from voice.batch.engines import entity_extractor  # noqa: E402
from voice.frames import TimedWord, TranscriptFinalFrame  # noqa: E402
from voice.processors.redact import LiveRedactor, is_mask, redact_final  # noqa: E402


def call_turns(path: Path) -> list[TranscriptFinalFrame]:
    """A reference transcript's words as final turns: one per run of one speaker's words."""
    words = json.loads(path.read_text())
    turns: list[list[dict]] = []
    for word in words:
        if turns and turns[-1][-1]["speaker"] == word["speaker"]:
            turns[-1].append(word)
        else:
            turns.append([word])
    frames = []
    for i, turn in enumerate(turns):
        timed = [TimedWord(w["word"], w["start"], w["end"], 1.0) for w in turn]
        frames.append(TranscriptFinalFrame(turn_id=f"{path.stem}-{i}", leg=turn[0]["speaker"],
                                           text=" ".join(w.text for w in timed), words=timed,
                                           start=timed[0].start, end=timed[-1].end, audio_time=timed[-1].end))
    return frames


def main() -> None:
    """Time redact_final per turn over every call, ``--repeat`` times."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    calls = sorted((args.data / "diarization" / "spokenwoz_calls_8k").glob("*.json"))
    extractor = entity_extractor()
    extractor.extract("warm up the entity extractor with 4111 1111 1111 1111")
    times, masked, turns = [], 0, 0
    for _ in range(args.repeat):
        for call in calls:
            redactor = LiveRedactor(REDACTED_LABELS)
            for frame in call_turns(call):
                history = redactor.history(frame.leg)
                started = time.perf_counter()
                done = redact_final(frame, history, extractor, REDACTED_LABELS)
                times.append(time.perf_counter() - started)
                redactor.remember(frame.leg, done.frame.words, history=done.history)
                turns += 1
                masked += any(is_mask(w) for w in done.frame.words)
    ms = np.array(times) * 1000
    print(f"{len(calls)} calls, {turns // args.repeat} turns x {args.repeat}: redact_final per turn "
          f"p50 {np.percentile(ms, 50):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, "
          f"p99 {np.percentile(ms, 99):.2f} ms, max {ms.max():.2f} ms; "
          f"{masked // args.repeat} turns masked per pass")


if __name__ == "__main__":
    main()
