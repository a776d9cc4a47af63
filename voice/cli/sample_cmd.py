"""``voice sample``: transcribe the bundled real phone call and print it (the quickstart job)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click


def bundled_sample() -> Path:
    """The 30 s two-party telephone sample shipped (MIT) inside the pyannote.audio wheel."""
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or not spec.submodule_search_locations:
        raise click.ClickException("pyannote.audio is not installed: run scripts/setup.sh")
    path = Path(next(iter(spec.submodule_search_locations))) / "sample" / "sample.wav"
    if not path.is_file():
        raise click.ClickException(f"the bundled sample is missing at {path}: reinstall pyannote.audio")
    return path


@click.command("sample")
@click.option("--model", default="base", show_default=True, help="Whisper model: tiny.en, base or a path.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out/sample"),
              show_default=True, help="Where the outputs go.")
def sample(model: str, out_dir: Path) -> None:
    """Transcribe the bundled 30 s phone call: speakers, roles, words and entities."""
    from voice.batch.options import TranscribeOptions
    from voice.batch.runner import BatchRunner, FileJob
    from voice.cli.progress import console, print_transcript_table

    path = bundled_sample()
    console.print(f"[bold]sample call:[/] {path}")
    runner = BatchRunner(out_dir, TranscribeOptions(model=model), ["json", "rttm", "srt", "vtt"], workers=1)
    summary = runner.run([FileJob(path, "sample")])
    result = summary.results[0]
    if result.status == "failed":
        raise click.ClickException(result.error or "failed")
    if result.transcript is None:  # finished by an earlier run: show that one
        from voice.transcript import CallTranscript

        result.transcript = CallTranscript.from_dict(__import__("json").loads((out_dir / "sample.json").read_text()))
    print_transcript_table(result.transcript)
    console.print(f"outputs: {out_dir}/sample.{{json,rttm,srt,vtt}}")


def register(cli: click.Group) -> None:
    """Attach the command to the main CLI."""
    cli.add_command(sample)
