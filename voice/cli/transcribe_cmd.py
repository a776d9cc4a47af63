"""``voice transcribe``: batch-transcribe recordings into JSON, RTTM, SRT, WebVTT and a database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from voice.audio import RAW_CHANNELS, RAW_RATES
from voice.batch.options import FORMATS

if TYPE_CHECKING:
    from voice.batch.runner import BatchRunner, BatchSummary, FileJob, FileResult


def _formats(value: str) -> list[str]:
    chosen = [f.strip().lower() for f in value.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown:
        raise click.BadParameter(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    return ["json"] + [f for f in FORMATS if f in chosen and f != "json"]


@click.command("transcribe")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for <name>.json/.rttm/.srt/.vtt, errors.jsonl and the default database. "
              "<name> is the file stem, or <stem>-<hash of the source path> when another source "
              "already owns <stem> there.")
@click.option("--model", default="base", show_default=True,
              help="Whisper model: tiny.en, base, or the path of a CTranslate2 model directory.")
@click.option("--speakers", type=click.Choice(["auto", "channels", "diarize", "none"]), default="auto",
              show_default=True, help="auto: stereo by channel, mono diarized.")
@click.option("--num-speakers", type=click.IntRange(min=1),
              help="Exact number of speakers (diarization; ignored when speakers come from channels).")
@click.option("--min-speakers", type=click.IntRange(min=1), help="At least this many speakers (diarization only).")
@click.option("--max-speakers", type=click.IntRange(min=1), help="At most this many speakers (diarization only).")
@click.option("--agent-channel", type=click.IntRange(min=0),
              help="Channel of the agent in stereo files, counted from 0 (0 = left, 1 = right; "
              "default: decided from the words).")
@click.option("--language", default="en", show_default=True, help="Spoken language code, or 'auto' to detect.")
@click.option("--beam-size", type=click.IntRange(min=1), default=5, show_default=True,
              help="Decoder beam width (1 = greedy, faster).")
@click.option("--formats", "formats", default="json,rttm,srt,vtt", show_default=True,
              help="Comma-separated outputs; JSON is always written.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parallel worker processes. Each loads its own models (about 0.5 GB RAM with tiny.en, "
              "more with larger models) and holds a whole decoded file (peaks of about 2 GB per hour of stereo audio), "
              "and gets a share of the cores.")
@click.option("--redact", is_flag=True, help="Mask card numbers, SSNs, e-mails and phone numbers in every output. "
              "File names are kept: a number in one stays in its call id and output names (rename such files first).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--db", "db_url", help="Database URL (default: SQLite file OUT/nextline.db; "
              "e.g. postgresql+psycopg://user@host/db).")
@click.option("--no-db", is_flag=True, help="Do not write results to a database.")
@click.option("--raw-rate", type=click.IntRange(*RAW_RATES),
              help="Sample rate in Hz of headerless PCM input (.raw/.pcm/.sln/.s16, s16le), e.g. 8000; "
                   "required for those files.")
@click.option("--raw-channels", type=click.IntRange(*RAW_CHANNELS), default=1, show_default=True,
              help="Channels of headerless PCM input (interleaved).")
@click.option("--print", "print_transcript", is_flag=True,
              help="Also print each transcript (speakers, roles, entities).")
def transcribe(inputs: tuple[str, ...], out_dir: Path, model: str, speakers: str, num_speakers: int | None,
               min_speakers: int | None, max_speakers: int | None, agent_channel: int | None, language: str,
               beam_size: int, formats: str, workers: int, redact: bool, device: str, db_url: str | None,
               no_db: bool, raw_rate: int | None, raw_channels: int, print_transcript: bool) -> None:
    """Transcribe recordings: files, folders or globs (e.g. 'calls/**/*.wav').

    \b
    Folders are searched recursively for .wav .flac .mp3 .ogg .opus .m4a .aac .wma
    .webm .mp4 .aiff .aif .au, and headerless PCM .raw .pcm .sln .s16 (these need
    --raw-rate); other files in them are ignored. Name files or globs to take others.
    Linked folders are followed (once each); a broken link named like audio and a
    subfolder that cannot be listed fail like a bad file; a folder with no audio is
    an error when nothing else is found (otherwise a warning).

    \b
    Each input gives OUT/<name>.json (schema_version, audio, speakers with roles,
    segments with word times, entities, and the options used) plus the chosen
    formats.

    \b
    Resuming: a second run skips a file whose OUT/<name>.json was made from the same
    source file (its resolved path, size and time) with the same options (those that
    apply to that file) and whose chosen formats were written with that JSON.
    Changing an option, or asking for a format that is missing, redoes it; formats
    not asked for are then removed. With a database, a skipped file that is missing
    there is stored from its JSON. Ctrl-C stops with the summary so far (exit 130).

    \b
    Bad files are listed at the end and in OUT/errors.jsonl (the failures of each
    file's latest run: an entry goes once its file is run again); the other files go
    on, and the exit code is 1 if any file failed.

    \b
    Examples:
      voice transcribe calls/ --out out/
      voice transcribe 'archive/2026-*/*.wav' --out out/ --workers 2 --redact
      voice transcribe mono_call.mp3 --out out/ --speakers diarize --num-speakers 2
    """
    from voice.batch.options import TranscribeOptions
    from voice.batch.runner import BatchRunner, expand_inputs
    from voice.errors import VoiceError

    try:
        options = TranscribeOptions(
            model=model, device=device, language=None if language == "auto" else language, beam_size=beam_size,
            speakers=speakers, num_speakers=num_speakers, min_speakers=min_speakers,  # type: ignore[arg-type]
            max_speakers=max_speakers, agent_channel=agent_channel, redact=redact,
            raw_rate=raw_rate, raw_channels=raw_channels,
        )
        _check_model(model, device)
        jobs = expand_inputs(inputs, out_dir)
        store = None if no_db else _open_store(db_url, out_dir)
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
    _report(*_run_batch(BatchRunner(out_dir, options, _formats(formats), workers=workers, store=store), jobs),
            out_dir, print_transcript)


def _run_batch(runner: BatchRunner, jobs: list[FileJob]) -> tuple[BatchSummary, int | None]:
    """Run with a progress bar: the summary, and the number of files left when Ctrl-C stopped it."""
    from voice.cli.progress import BatchProgress
    from voice.errors import VoiceError

    with BatchProgress(len(jobs)) as progress:
        runner.on_result = lambda result: progress.update(_printable(result))
        try:
            return runner.run(jobs), None
        except VoiceError as exc:  # the run as a whole cannot start (an unwritable --out)
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:  # Ctrl-C: say what was done; a re-run goes on from there
            return runner.summary, len(jobs) - len(runner.summary.results)


def _printable(result: FileResult) -> FileResult:
    """``result`` with its path as text that any terminal can print (a Latin-1 file name)."""
    from dataclasses import replace

    from voice.batch.resume import display_path

    shown = Path(display_path(result.job.path))
    return result if shown == result.job.path else replace(result, job=replace(result.job, path=shown))


def _report(summary: BatchSummary, left: int | None, out_dir: Path, print_transcript: bool) -> None:
    """Print the transcripts if asked, then the summary; exit 1 when any file failed, 130 when
    the run was interrupted (``left``: the files it did not reach)."""
    from voice.batch.runner import BatchSummary
    from voice.cli.progress import console, print_summary, print_transcript_table

    if print_transcript:
        for result in summary.results:
            if result.transcript is not None:
                print_transcript_table(result.transcript)
    print_summary(BatchSummary([_printable(r) for r in summary.results]), out_dir)
    if left is not None:
        console.print(f"[bold yellow]interrupted[/]: {left} file(s) not processed; "
                      "run the same command again to go on")
        raise SystemExit(130)
    if summary.failed:
        raise SystemExit(1)


def _check_model(model: str, device: str) -> None:
    """Resolve the model and device once, before any file is decoded: a typo must not fail every
    file of an archive (and mark every call failed in the database)."""
    from asr import AsrError
    from asr.engine import resolve_device
    from asr.models import ModelNotFoundError, resolve_whisper_model

    try:
        resolve_whisper_model(model)
        resolve_device(device)
    except (ModelNotFoundError, AsrError) as exc:
        raise click.ClickException(f"--model {model} --device {device}: {exc}") from exc


def _open_store(db_url: str | None, out_dir: Path):  # noqa: ANN202 - Store is imported lazily
    from voice.store import Store

    out_dir.mkdir(parents=True, exist_ok=True)
    return Store.open(db_url or f"sqlite:///{(out_dir / 'nextline.db').resolve()}")


def register(cli: click.Group) -> None:
    """Attach the command to the main CLI."""
    cli.add_command(transcribe)
