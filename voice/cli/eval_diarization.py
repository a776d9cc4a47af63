"""``voice eval diarization``: diarize reference recordings and score them (DER, pyannote.metrics).

Finds audio + RTTM pairs in each DATA_DIR (see ``diarize.eval.find_reference_files``), mixes
every recording down to one channel (SpokenWOZ calls are 8 kHz stereo, one party per leg: the
mono mix is the harder, single-channel case), runs the diarization engine and prints per-file
and pooled DER. ``--out`` writes the same numbers, plus the settings, as JSON.

A recording that cannot be scored (unreadable audio, audio the engine refuses, a reference
without speech, whose DER is undefined) is reported as skipped with the reason, and the others
are still scored; the command fails only when none could be.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from voice.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from diarize.eval import ReferenceFile
    from diarize.pipeline import Diarizer
    from diarize.types import DiarizationOptions


@dataclass(frozen=True)
class FileResult:
    """Scores and timing of one evaluated recording."""

    collection: str
    uri: str
    duration: float
    reference_speakers: int
    hypothesis_speakers: int
    total: float
    missed: float
    false_alarm: float
    confusion: float
    der: float
    seconds: float
    """Wall-clock diarization time."""
    cpu_seconds: float
    """CPU time of this process while diarizing: on a machine shared with other jobs it
    tracks the work done, where wall-clock time also counts waiting for a core."""

    @property
    def rtf(self) -> float:
        """Wall-clock diarization time over audio duration."""
        return self.seconds / self.duration if self.duration else 0.0


@dataclass(frozen=True)
class SkippedFile:
    """A recording that was not scored, and why."""

    collection: str
    uri: str
    audio: str
    reason: str


@click.command("diarization")
@click.argument("data_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--collar", type=float, default=0.25, show_default=True,
              help="Total collar width in seconds (pyannote.metrics: half on each side).")
@click.option("--num-speakers", type=click.IntRange(min=1), help="Exact number of speakers.")
@click.option("--min-speakers", type=click.IntRange(min=1), help="Lower bound on speakers.")
@click.option("--max-speakers", type=click.IntRange(min=1), help="Upper bound on speakers.")
@click.option("--telephone", is_flag=True,
              help="Two-party phone calls: diarize with exactly 2 speakers.")
@click.option("--pipeline", "pipeline_name", default="default", show_default=True,
              help="'default' or a local pyannote pipeline directory (config.yaml).")
@click.option("--device", default="cpu", show_default=True, help="torch device: cpu, cuda or cuda:N.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write per-file and pooled results as JSON.")
def diarization_cmd(
    data_dirs: tuple[Path, ...],
    collar: float,
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    telephone: bool,
    pipeline_name: str,
    device: str,
    out: Path | None,
) -> None:
    """Diarization error rate of the engine on DATA_DIR... (audio + RTTM pairs).

    A recording that cannot be read, or whose reference has no speech, is listed as
    skipped with the reason and the others are scored; the exit status is 1 only when
    none could be.

    \b
    Examples:
      voice eval diarization ../shared/data/diarization/ami_debug_excerpts
      voice eval diarization ../shared/data/diarization/spokenwoz_calls_8k --telephone
    """
    from diarize.eval import find_reference_files

    options = _options(num_speakers, min_speakers, max_speakers, telephone)
    files = [ref for directory in data_dirs for ref in find_reference_files(directory)]
    if not files:
        raise click.ClickException(
            "no audio + RTTM pairs found (expected e.g. x.wav with x.rttm or x.derived.rttm)"
        )
    diarizer = _load_diarizer(pipeline_name, device)
    results, skipped = _evaluate(diarizer, files, options, collar)
    if not results:
        raise click.ClickException(f"none of the {len(files)} recordings could be scored: "
                                   + "; ".join(f"{s.collection}/{s.uri}: {s.reason}" for s in skipped[:3]))
    _print_table(results, skipped)
    if out is not None:
        settings = {
            "pipeline": diarizer.name,
            "parameters": diarizer.parameters,
            "options": asdict(options),
            "collar": collar,
            "skip_overlap": False,
            "audio": "mixed to mono, resampled to 16 kHz",
        }
        out.write_text(json.dumps(_report(results, skipped, settings), indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")


def _load_diarizer(pipeline_name: str, device: str) -> Any:
    """The engine, or a one-line error for a --pipeline that is not one or an unusable --device."""
    import torch

    from diarize.errors import PipelineLoadError
    from diarize.models import ModelNotFoundError
    from diarize.pipeline import Diarizer

    try:
        torch_device = torch.device(device)
    except RuntimeError as exc:
        raise click.BadParameter(f"{device!r} is not a torch device (e.g. cpu, cuda, cuda:1)",
                                 param_hint="--device") from exc
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter(f"{device!r}: no CUDA GPU is visible (use cpu)", param_hint="--device")
    try:
        return Diarizer.load(pipeline_name, device=device)
    except (ModelNotFoundError, PipelineLoadError) as exc:
        raise click.ClickException(f"--pipeline {pipeline_name}: {exc}") from exc


def _options(
    num: int | None, low: int | None, high: int | None, telephone: bool
) -> DiarizationOptions:
    from diarize.errors import InvalidOptionsError
    from diarize.types import DiarizationOptions

    if telephone:
        if num or low or high:
            raise click.UsageError("--telephone sets the speaker count; drop the count options")
        return DiarizationOptions.telephone_call()
    try:
        return DiarizationOptions(num_speakers=num, min_speakers=low, max_speakers=high)
    except InvalidOptionsError as exc:
        raise click.UsageError(str(exc)) from exc


def _evaluate(
    diarizer: Diarizer, files: list[ReferenceFile], options: DiarizationOptions, collar: float
) -> tuple[list[FileResult], list[SkippedFile]]:
    """The scores of the files that could be scored, and the others with the reason."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from diarize.errors import DiarizationError
    from voice.errors import VoiceError

    results, skipped = [], []
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        overall = progress.add_task("diarizing", total=len(files))
        for ref in files:
            name = f"{ref.collection}/{ref.uri}"
            progress.update(overall, description=escape(name))
            step = progress.add_task("  segmentation", total=None)
            try:
                # A reference without speech is scored: its false alarms count in the pooled DER
                # (its own DER is undefined and shown as inf, as before).
                results.append(_evaluate_file(diarizer, ref, options, collar, _hook(progress, step)))
            except (VoiceError, DiarizationError) as exc:  # the others' scores are kept
                progress.console.print(f"[yellow]skipped[/] {escape(name)}: {escape(str(exc))}")
                skipped.append(SkippedFile(ref.collection, ref.uri, str(ref.audio), str(exc)))
            progress.remove_task(step)
            progress.advance(overall)
    return results, skipped


def _hook(progress: Progress, task: TaskID) -> Callable[..., None]:
    """pyannote's ``hook(step, artifact, completed=, total=)`` shown as a progress sub-task."""

    def hook(step: str, _artifact: Any, *, completed: int | None = None,
             total: int | None = None, **_: Any) -> None:
        progress.update(task, description=f"  {step}", completed=completed, total=total)

    return hook


def _evaluate_file(
    diarizer: Diarizer,
    ref: ReferenceFile,
    options: DiarizationOptions,
    collar: float,
    hook: Callable[..., None],
) -> FileResult:
    from diarize.eval import der_components, whole_recording
    from voice.audio import load_audio

    audio = load_audio(ref.audio)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = diarizer.diarize(audio.mono(), audio.sample_rate, options, hook=hook)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    uem = ref.uem if ref.uem is not None else whole_recording(ref.uri, audio.duration)
    scores = der_components(ref.reference, result.to_annotation(ref.uri), uem, collar=collar)
    return FileResult(
        collection=ref.collection, uri=ref.uri, duration=audio.duration,
        reference_speakers=len(ref.reference.labels()), hypothesis_speakers=len(result.speakers),
        total=scores.total, missed=scores.missed, false_alarm=scores.false_alarm,
        confusion=scores.confusion, der=scores.der, seconds=seconds, cpu_seconds=cpu_seconds,
    )


def _pools(results: list[FileResult]) -> dict[str, Any]:
    """Pooled components and timing per collection, plus ``all`` when there are several."""
    from diarize.eval import DerComponents, pooled

    groups: dict[str, list[FileResult]] = {}
    for item in results:
        groups.setdefault(item.collection, []).append(item)
    if len(groups) > 1:
        groups["all"] = results
    pools = {}
    for name, items in groups.items():
        total = pooled(DerComponents(r.total, r.missed, r.false_alarm, r.confusion) for r in items)
        duration, seconds = sum(r.duration for r in items), sum(r.seconds for r in items)
        cpu_seconds = sum(r.cpu_seconds for r in items)
        pools[name] = {"files": len(items), "duration": duration, "seconds": seconds,
                       "cpu_seconds": cpu_seconds, "rtf": seconds / duration if duration else 0.0,
                       "der": total.der, **asdict(total)}
    return pools


def _report(results: list[FileResult], skipped: list[SkippedFile], settings: dict[str, Any]) -> dict[str, Any]:
    files = [{**asdict(r), "rtf": r.rtf} for r in results]
    return {"settings": settings, "files": files, "pooled": _pools(results),
            "skipped": [asdict(s) for s in skipped]}


def _print_table(results: list[FileResult], skipped: list[SkippedFile]) -> None:
    """One section per evaluation set: its files, then its pooled row; then all sets pooled;
    then the recordings skipped, with their reasons."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("file", "dur", "spk", "miss", "FA", "conf", "DER", "wall", "cpu", "RTF",
                  title="DER % (pyannote.metrics, overlap scored); speakers reference/ours; "
                  "durations and times in s")
    pools = _pools(results)

    def pct(part: float, whole: float) -> str:
        return f"{100 * part / whole:.1f}" if whole else "-"

    def pooled_row(name: str) -> None:
        p = pools[name]
        table.add_row(f"[bold]pooled: {name} ({p['files']})", f"{p['duration']:.1f}", "",
                      pct(p["missed"], p["total"]), pct(p["false_alarm"], p["total"]),
                      pct(p["confusion"], p["total"]), f"[bold]{100 * p['der']:.1f}",
                      f"{p['seconds']:.1f}", f"{p['cpu_seconds']:.1f}", f"{p['rtf']:.2f}")

    for collection in dict.fromkeys(r.collection for r in results):
        for r in (r for r in results if r.collection == collection):
            table.add_row(r.uri, f"{r.duration:.1f}",
                          f"{r.reference_speakers}/{r.hypothesis_speakers}",
                          pct(r.missed, r.total), pct(r.false_alarm, r.total),
                          pct(r.confusion, r.total), f"{100 * r.der:.1f}", f"{r.seconds:.1f}",
                          f"{r.cpu_seconds:.1f}", f"{r.rtf:.2f}")
        pooled_row(collection)
        table.add_section()
    if "all" in pools:
        pooled_row("all")
    # rich assumes 80 columns when not writing to a terminal (CI logs): too narrow here.
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    for item in skipped:
        console.print(f"[yellow]skipped[/] {escape(item.collection)}/{escape(item.uri)}: {escape(item.reason)}")


def register(cli: click.Group) -> None:
    """Add ``diarization`` to the ``eval`` group (registered by voice.cli.eval_cmd)."""
    eval_group = cli.commands["eval"]
    if not isinstance(eval_group, click.Group):
        raise ConfigError("the 'eval' command group must be registered before eval_diarization")
    eval_group.add_command(diarization_cmd)
