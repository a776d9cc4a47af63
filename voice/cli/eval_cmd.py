"""``voice eval``: measure the pipeline against reference files (WER, DER)."""

from __future__ import annotations

import click


@click.group("eval")
def eval_group() -> None:
    """Score the pipeline against references: `voice eval asr`, `voice eval diarization`."""


def register(cli: click.Group) -> None:
    """Attach the group; subcommand modules (eval_asr, eval_diarization) add to it."""
    cli.add_command(eval_group)
