"""``voice models``: list the offline models and where they were found."""

from __future__ import annotations

import click


@click.group("models")
def models_group() -> None:
    """Offline models: what is installed and where."""


@models_group.command("list")
def list_models() -> None:
    """Show every model the product uses, its package, and whether it resolves."""
    from rich.console import Console
    from rich.table import Column, Table

    from voice.models import check_models

    # overflow="fold": a path wraps onto more lines instead of being cut to "/work/..." at 80 columns.
    headers = ("model", "used for", "package", "status / location")
    table = Table(*(Column(header, overflow="fold") for header in headers))
    missing = 0
    for entry, where, ok in check_models():
        missing += not ok
        table.add_row(entry.name, entry.purpose, entry.package, f"[green]{where}" if ok else f"[red]{where}")
    Console().print(table)
    if missing:
        raise SystemExit(1)


def register(cli: click.Group) -> None:
    """Attach the command group to the main CLI."""
    cli.add_command(models_group)
