"""Baseline for ``voice eval asr``: plain faster-whisper, same references and normaliser.

Plain means faster-whisper's defaults (temperature fallback 0.0-1.0, previous-text conditioning,
no VAD) with only the beam size set, on the whole file or channel. The WER it prints is directly
comparable with ``voice eval asr`` on the same folders.

Usage:
    .venv/bin/python scripts/eval_plain_asr.py DATA_DIR... [--model tiny.en|base|PATH]
        [--beam-size 5] [--out plain.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, decode every item with plain faster-whisper, print and save the WER."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dirs", nargs="+", type=Path)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import ctranslate2
    from faster_whisper import WhisperModel

    from asr.models import resolve_whisper_model
    from asr.references import discover
    from voice.cli.eval_asr import print_report, score_items, write_results

    device = args.device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    # Same compute types as WhisperEngine (int8 on CPU, float16 on CUDA): only decoding differs.
    compute_type = "float16" if device == "cuda" else "int8"
    model = WhisperModel(
        str(resolve_whisper_model(args.model)), device=device, compute_type=compute_type
    )

    def transcribe(samples: np.ndarray) -> str:
        segments, _ = model.transcribe(samples, beam_size=args.beam_size)
        return " ".join(s.text.strip() for s in segments)

    results = score_items(discover(args.data_dirs), transcribe)
    print_report(
        results, title=f"plain faster-whisper {args.model}, beam {args.beam_size}, defaults"
    )
    if args.out:
        meta = {
            "decoder": "plain faster-whisper (defaults)",
            "model": args.model,
            "beam_size": args.beam_size,
            "device": device,
            "compute_type": compute_type,
        }
        write_results(args.out, results, meta)


if __name__ == "__main__":
    main()
