"""Reproducibility and repetition loops: plain faster-whisper vs WhisperEngine, 3 runs each.

On the 30 s two-party telephone sample (6.7 s of line noise before anyone speaks), faster-whisper
with its defaults re-samples looping windows at rising temperatures, so identical runs differ
and some repeat the call. This script decodes the same file N times per decoder and prints, as
a markdown table, each run's WER against the STM reference (normalised with asr.wer), whether
all runs gave the same text, and how many windows our loop guard re-decoded.

Decoders:
- plain: ``WhisperModel.transcribe(audio)`` with faster-whisper's defaults (no VAD);
- engine + VAD: the product's path (``voice.vad.detect_speech``, then ``speech=`` regions);
- engine, no VAD: the engine alone on the whole file (the loop guard is the only safety net);
- engine, no VAD, no word timestamps: decoding that does loop here, to show the guard at work.

Usage: .venv/bin/python scripts/measure_loops.py [--model base] [--runs 3] [--out loops.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SAMPLE = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE = SAMPLE / "diarization" / "pyannote_sample_telephone"

Decoder = Callable[[np.ndarray], tuple[str, int]]
"""Audio in; text and the number of windows re-decoded for loops (0 for plain) out."""


def decoders(model: str) -> dict[str, Decoder]:
    """The four decoders compared (see the module docstring)."""
    from faster_whisper import WhisperModel

    from asr import AsrOptions, WhisperEngine
    from asr.models import resolve_whisper_model
    from voice.vad import detect_speech

    plain = WhisperModel(str(resolve_whisper_model(model)), device="cpu", compute_type="int8")
    engine = WhisperEngine.load(model, device="cpu")

    def run_plain(audio: np.ndarray) -> tuple[str, int]:
        segments, _ = plain.transcribe(audio)
        return " ".join(s.text.strip() for s in segments), 0

    def run_engine(options: AsrOptions, use_vad: bool) -> Decoder:
        def run(audio: np.ndarray) -> tuple[str, int]:
            speech = [(r.start, r.end) for r in detect_speech(audio)] if use_vad else None
            result = engine.transcribe(audio, options, speech=speech)
            return result.text, result.loops_redecoded

        return run

    return {
        "plain faster-whisper (defaults)": run_plain,
        "WhisperEngine + VAD (product path)": run_engine(AsrOptions(), True),
        "WhisperEngine, no VAD": run_engine(AsrOptions(), False),
        "WhisperEngine, no VAD, word_timestamps=False": run_engine(
            AsrOptions(word_timestamps=False), False
        ),
    }


def main(argv: list[str] | None = None) -> None:
    """Decode the sample ``--runs`` times per decoder; print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write texts and figures as JSON")
    args = parser.parse_args(argv)

    from asr.references import stm_text
    from asr.wer import word_errors
    from voice.audio import load_audio

    audio = load_audio(SAMPLE / "sample.wav").mono()
    reference = stm_text(SAMPLE / "sample.stm")
    rows, report = [], {}
    for name, decode in decoders(args.model).items():
        texts, wers, loops, seconds = [], [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            text, redecoded = decode(audio)
            seconds.append(time.perf_counter() - started)
            texts.append(text)
            wers.append(word_errors(reference, text).wer)
            loops.append(redecoded)
            print(f"{name}: WER {wers[-1]:.1%}, {seconds[-1]:.1f} s", file=sys.stderr)
        identical = len(set(texts)) == 1
        report[name] = {"wer": wers, "identical": identical, "loops_redecoded": loops,
                        "seconds": seconds, "texts": texts}  # fmt: skip
        rows.append(
            f"| {name} | {' / '.join(f'{w:.1%}' for w in wers)} | {'yes' if identical else 'no'} "
            f"| {' / '.join(map(str, loops))} | {np.mean(seconds):.1f} |"
        )
    print(f"\nmodel {args.model}, int8 CPU, {args.runs} runs on {SAMPLE.name}/sample.wav\n")
    print("| decoder | WER per run | runs identical | windows re-decoded | s per run |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    if args.out:
        args.out.write_text(
            json.dumps({"model": args.model, "reference": reference, **report}, indent=2)
        )


if __name__ == "__main__":
    main()
