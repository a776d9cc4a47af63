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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
