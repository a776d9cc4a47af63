"""``voice demo``: the live console in one command (server, model, a real call replayed)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--port", type=int, default=8000, show_default=True, help="HTTP port on 127.0.0.1.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/demo"),
              show_default=True, help="Embedded SQLite database, recordings, cached model.")
@click.option("--model", "asr_model", default="tiny.en", show_default=True, help="Whisper model for the live call.")
@click.option("--speed", type=float, default=1.0, show_default=True, help="Replay speed (1 = real time).")
@click.option("--delay", type=float, default=3.0, show_default=True,
              help="Seconds between printing the URL and starting the call.")
@click.option("--calls", type=int, default=1, show_default=True, help="Calls to replay in turn (0: serve only).")
@click.option("--exit-after", is_flag=True, help="Stop once the replayed calls are stored (for scripts).")
@click.option("--bundled-model", is_flag=True,
              help="Use the small bundled model instead of training the full one on ../shared (first run: minutes).")
def demo(port: int, data_dir: Path, asr_model: str, speed: float, delay: float, calls: int, exit_after: bool,
         bundled_model: bool) -> None:
    """Serve the agent console and replay a real call into it, live.

    \b
    Starts the server on an embedded SQLite database with a suggestion model (trained once on
    PersuasionForGood and cached, when ../shared/data is there), replays a real phone call
    through the Twilio Media Streams WebSocket in real time, and prints the console's URL with a
    demo agent's token. Ctrl-C stops it. The QA and supervisor links use a demo supervisor.
    """
    import asyncio
    import logging

    from voice.cli.serve_cmd import check_asr_model
    from voice.demo import DemoOptions, DemoRun
    from voice.errors import VoiceError

    check_asr_model(asr_model)  # before the server starts: a typo is one line, not a traceback
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = DemoOptions(port=port, data_dir=data_dir, asr_model=asr_model, speed=speed, delay=delay,
                          calls=calls, exit_after=exit_after, bundled_model=bundled_model)
    run = DemoRun(options, lambda line: click.echo(line, err=True))
    try:
        milestones = asyncio.run(run.run())
    except VoiceError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        return
    click.echo(" ".join(f"{k}={v}s" for k, v in milestones.items()), err=True)


def register(cli: click.Group) -> None:
    """Attach the command to the main CLI."""
    cli.add_command(demo)
