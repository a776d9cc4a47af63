"""Terminal output of batch jobs: a progress bar with ETA, the summary, and transcripts."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from voice.batch.runner import BatchSummary, FileResult
from voice.transcript import CallTranscript

console = Console(stderr=True)


class BatchProgress:
    """A rich progress bar over files, showing audio hours done and the ETA."""

    def __init__(self, total: int) -> None:
        self.audio_seconds = 0.0
        self._progress = Progress(
            TextColumn("[bold]transcribing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[audio]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False,
        )
        self._task = self._progress.add_task("files", total=total, audio="")

    def __enter__(self) -> BatchProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def update(self, result: FileResult) -> None:
        """Advance by one finished, skipped or failed file."""
        self.audio_seconds += result.audio_seconds
        if result.status == "failed":
            # Paths and reasons are data: "[agent]" in a folder name is not markup.
            self._progress.console.print(f"[red]failed[/] {escape(str(result.job.path))}: {escape(result.error or '')}")
        self._progress.update(self._task, advance=1, audio=f"{self.audio_seconds / 60:.1f} min audio")


def print_summary(summary: BatchSummary, out_dir: Path) -> None:
    """Counts, then every failure with its reason."""
    console.print(
        f"[bold]{summary.count('done')} transcribed, {summary.count('skipped')} already done, "
        f"{summary.count('failed')} failed[/] -> {escape(str(out_dir))}"
    )
    if summary.failed:
        table = Table("file", "reason", title=f"failed files (also in {escape(str(out_dir / 'errors.jsonl'))})")
        for result in summary.failed:
            table.add_row(escape(str(result.job.path)), escape(result.error or ""))
        console.print(table)


def print_transcript_table(transcript: CallTranscript) -> None:
    """The transcript as a table of speaker turns, then the entities found."""
    out = Console()
    roles = {s.id: s.role for s in transcript.speakers}
    table = Table("time", "speaker", "text", title=f"{escape(transcript.call_id)} ({transcript.audio.duration:.1f} s)",
                  show_lines=False, expand=True)
    for seg in transcript.segments:
        role = roles.get(seg.speaker, "unknown")
        colour = {"agent": "cyan", "customer": "magenta"}.get(role, "white")
        table.add_row(f"{seg.start:6.1f}-{seg.end:6.1f}", f"[{colour}]{escape(seg.speaker)} {role}", escape(seg.text))
    out.print(table)
    if transcript.entities:
        ents = Table("entity", "text", "value", title="entities")
        for e in transcript.entities:
            ents.add_row(escape(e.label), escape(e.text), escape(e.value or ""))
        out.print(ents)
