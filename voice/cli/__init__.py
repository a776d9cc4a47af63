"""The ``voice`` command line: one entry point, one module per command family.

Heavy libraries (torch, faster-whisper, pyannote) are imported inside commands, so
``voice --help`` is instant.
"""

from __future__ import annotations

import importlib

import click

# Each module defines click commands/groups and a ``register(cli)`` function.
COMMAND_MODULES = [
    "voice.cli.models_cmd",
    "voice.cli.transcribe_cmd",
    "voice.cli.sample_cmd",
    "voice.cli.serve_cmd",
    "voice.cli.agents_cmd",
    "voice.cli.calls_cmd",
    "voice.cli.demo_cmd",
    "voice.cli.eval_cmd",  # must precede the eval_* modules that add subcommands
    "voice.cli.eval_asr",
    "voice.cli.eval_diarization",
    "voice.cli.data_cmd",
    "voice.cli.suggest_cmds",
    "voice.cli.train_cmd",
    "voice.cli.ab_cmd",
    "voice.cli.registry_cmd",
]


class _Cli(click.Group):
    """The top-level group: a typed error of the product or of an engine that a command did not
    turn into a ``click.ClickException`` itself ends the command as one ("Error: ..." and exit
    status 1, the message carrying its hint), never as a traceback. Other exceptions are bugs
    and keep their traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from asr.models import ModelNotFoundError as AsrModelNotFoundError
        from asr.references import ReferenceError as AsrReferenceError
        from asr.types import AsrError
        from diarize.errors import DiarizationError
        from diarize.models import ModelNotFoundError as DiarizeModelNotFoundError
        from suggest.errors import SuggestError
        from voice.errors import VoiceError

        try:
            return super().invoke(ctx)
        except (VoiceError, SuggestError, DiarizationError, AsrError, AsrReferenceError,
                AsrModelNotFoundError, DiarizeModelNotFoundError) as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="nextline")
def cli() -> None:
    """Speech-to-suggestion for contact centers.

    \b
    Common jobs:
      voice transcribe calls/ --out out/        batch-transcribe a call archive
      voice eval asr DIR...                      word error rate against references
      voice models list                          which offline models are installed
    Run `voice COMMAND --help` for the options of each command.
    """


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main() -> None:
    """Console-script entry point."""
    cli()
