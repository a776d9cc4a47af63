"""``voice eval asr``: word error rate of the product's batch decoding against reference files.

Each file (or each channel of a stereo file with per-channel references) is decoded the way the
product does it: VAD speech regions (:func:`voice.vad.detect_speech`), then Whisper on those
regions only (:meth:`asr.WhisperEngine.transcribe` with ``speech=``). Texts are normalised
with :func:`asr.wer.normalize`; the pooled WER is total errors over total reference words.

A file that cannot be scored (unreadable audio, a missing channel, a reference that is empty
once normalised) is reported as skipped with its reason and the others are still scored.

``score_items`` and ``print_report`` are reused by scripts/eval_plain_asr.py, which scores plain
faster-whisper with the same references and normaliser.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from voice.audio import RAW_RATES

if TYPE_CHECKING:
    from asr.references import EvalItem
    from asr.wer import WerCounts

Transcriber = Callable[[np.ndarray], str]
"""Mono float32 16 kHz audio in, text out."""


@dataclass(frozen=True)
class ItemResult:
    """One scored file or channel."""

    name: str
    audio: str
    channel: int | None
    reference: str
    hypothesis: str
    counts: WerCounts
    duration: float
    """Seconds of audio."""
    decode_seconds: float
    """Wall time of VAD + decoding (provisional: measured on a shared machine)."""


@dataclass(frozen=True)
class SkippedItem:
    """A file or channel that was not scored, and why."""

    name: str
    audio: str
    reason: str


@click.command("asr")
@click.argument(
    "data_dirs",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--model",
    default="tiny.en",
    show_default=True,
    help="tiny.en, base, or a CTranslate2 model folder",
)
@click.option("--beam-size", default=5, show_default=True, type=click.IntRange(1, 20),
              help="decoder beam width (1 = greedy, faster)")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="write per-file results as JSON"
)
@click.option(
    "--raw-rate",
    type=click.IntRange(*RAW_RATES),
    default=16000,
    show_default=True,
    help="sample rate in Hz of headerless .raw/.pcm files",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cpu", "cuda"]),
    help="auto: cuda when a GPU is visible, else cpu",
)
def eval_asr(
    data_dirs: tuple[Path, ...],
    model: str,
    beam_size: int,
    out: Path | None,
    raw_rate: int,
    device: str,
) -> None:
    """Word error rate of VAD + Whisper on every reference found under DATA_DIR...

    \b
    Folders may hold transcription.tsv, <name>.refs.tsv (one reference per channel),
    or <name>.txt / <name>.stm beside the audio; they are searched recursively.
    A file that cannot be read or has an empty reference is listed as skipped, with
    the reason, and the others are scored; the exit status is 1 only when none could be.
    Example: voice eval asr ../shared/data/asr/jfk ../shared/data/asr/librivox_sense_and_sensibility
    """
    from asr import AsrError, AsrOptions, WhisperEngine
    from asr.models import ModelNotFoundError
    from asr.references import ReferenceError, discover

    try:
        items = discover(list(data_dirs))
    except ReferenceError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        engine = WhisperEngine.load(model, device=device)
    except (ModelNotFoundError, AsrError) as exc:  # a typo in --model, no GPU for --device cuda
        raise click.ClickException(f"--model {model} --device {device}: {exc}") from exc
    options = AsrOptions(beam_size=beam_size)
    skipped: list[SkippedItem] = []
    results = score_items(items, product_transcriber(engine, options), raw_rate=raw_rate, skipped=skipped)
    if not results:
        raise click.ClickException(f"none of the {len(items)} files could be scored: "
                                   + "; ".join(f"{s.name}: {s.reason}" for s in skipped[:3]))
    device_type = f"{engine.device}/{engine.compute_type}"
    print_report(results, title=f"VAD + WhisperEngine {model} ({device_type}), beam {beam_size}",
                 skipped=skipped)
    if out is not None:
        meta = {
            "decoder": "voice.vad + asr.WhisperEngine",
            "model": model,
            "options": asdict(options),
        }
        write_results(out, results, meta, skipped=skipped)


def product_transcriber(engine: Any, options: Any) -> Transcriber:
    """Decode as the batch product does: VAD regions, then the engine on those regions only."""
    from voice.vad import detect_speech

    def transcribe(samples: np.ndarray) -> str:
        regions = detect_speech(samples)
        result = engine.transcribe(samples, options, speech=[(r.start, r.end) for r in regions])
        return str(result.text)

    return transcribe


def score_items(
    items: list[EvalItem], transcribe: Transcriber, *, raw_rate: int = 16000,
    skipped: list[SkippedItem] | None = None,
) -> list[ItemResult]:
    """Decode every item with ``transcribe`` (a progress bar on stderr) and count word errors.

    An item whose audio cannot be read (or lacks its channel), or whose reference is empty once
    normalised (its WER would be infinite), is not scored: it is printed on stderr as skipped,
    with the reason, and added to ``skipped`` when given.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from asr.types import AsrError
    from asr.wer import word_errors
    from voice.audio import RawFormat, load_audio
    from voice.errors import VoiceError

    results = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("decoding", total=len(items))
        for item in items:
            progress.update(task, description=escape(item.name))
            try:
                # An empty reference is scored: its insertions count in the pooled WER (a clip of
                # silence or hold music is how hallucinations are measured); its own WER is inf.
                raw = RawFormat(raw_rate) if item.audio.suffix.lower() in (".raw", ".pcm") else None
                audio = load_audio(item.audio, raw=raw)
                samples = audio.mono() if item.channel is None else audio.channel(item.channel)
                started = time.perf_counter()
                hypothesis = transcribe(samples)
                elapsed = time.perf_counter() - started
            except (VoiceError, AsrError) as exc:  # one bad file must not lose the others' scores
                progress.console.print(f"[yellow]skipped[/] {escape(item.name)}: {escape(str(exc))}")
                if skipped is not None:
                    skipped.append(SkippedItem(item.name, str(item.audio), str(exc)))
                progress.advance(task)
                continue
            counts = word_errors(item.reference, hypothesis)
            results.append(
                ItemResult(
                    item.name,
                    str(item.audio),
                    item.channel,
                    item.reference,
                    hypothesis,
                    counts,
                    audio.duration,
                    elapsed,
                )  # fmt: skip
            )
            progress.advance(task)
    return results


def print_report(results: list[ItemResult], *, title: str, skipped: Sequence[SkippedItem] = ()) -> None:
    """A per-file table plus the pooled line (total errors / total reference words), then the
    files that were skipped, with their reasons."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from asr.wer import pooled

    table = Table(title=title)
    for column in ("file", "ref words", "sub", "del", "ins", "WER", "audio s", "decode s"):
        table.add_column(column, justify="left" if column == "file" else "right", overflow="fold")
    for r in results:
        table.add_row(r.name, *_count_cells(r.counts, f"{r.counts.wer:.1%}"),
                      f"{r.duration:.1f}", f"{r.decode_seconds:.1f}")  # fmt: skip
    total = pooled([r.counts for r in results])
    table.add_section()
    audio_seconds = sum(r.duration for r in results)
    decode_seconds = sum(r.decode_seconds for r in results)
    table.add_row(f"pooled ({len(results)})", *_count_cells(total, f"[bold]{total.wer:.2%}"),
                  f"{audio_seconds:.1f}", f"{decode_seconds:.1f}")  # fmt: skip
    console = Console()
    # Piped output gets 80 columns by default, which folds the file names; allow a wide table.
    console.width = max(console.width, 120)
    console.print(table)
    for item in skipped:
        console.print(f"[yellow]skipped[/] {escape(item.name)}: {escape(item.reason)}")


def _count_cells(counts: WerCounts, wer: str) -> list[str]:
    return [str(counts.reference_words), str(counts.substitutions), str(counts.deletions),
            str(counts.insertions), wer]  # fmt: skip


def write_results(path: Path, results: list[ItemResult], meta: dict[str, Any],
                  skipped: Sequence[SkippedItem] = ()) -> None:
    """JSON with the run's settings, pooled counts, every item (texts included) and the items
    skipped, with their reasons."""
    from asr.wer import normalize, pooled

    total = pooled([r.counts for r in results])
    items = [
        {
            **asdict(r),
            "counts": asdict(r.counts),
            "wer": _finite(r.counts.wer),  # null for an empty reference (its insertions are pooled)
            "reference_normalized": normalize(r.reference),
            "hypothesis_normalized": normalize(r.hypothesis),
        }  # fmt: skip
        for r in results
    ]
    doc = {**meta, "pooled": {**asdict(total), "wer": _finite(total.wer)}, "items": items,
           "skipped": [asdict(s) for s in skipped]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _finite(value: float) -> float | None:
    """``value``, or None where it is infinite (a WER over no reference words): JSON has no inf."""
    return value if math.isfinite(value) else None


def register(cli: click.Group) -> None:
    """Add ``asr`` to the ``eval`` group (voice.cli.eval_cmd must be registered first)."""
    eval_group = cli.commands["eval"]
    assert isinstance(eval_group, click.Group)
    eval_group.add_command(eval_asr)
