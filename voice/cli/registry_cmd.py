"""``voice registry``: a tenant's model versions, and which one its calls are served."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from voice.cli.suggest_cmds import guarded, models_root_option


@click.group("registry")
def registry_group() -> None:
    """Suggestion model versions per tenant, and which one serves its calls.

    \b
    A tenant's calls get its promoted version, or its newest when none was promoted:
      voice registry list acme
      voice compare --model acme/<old> --model acme/<new> --data data/acme.jsonl
      voice registry promote acme/<new>      # new calls take it up; running calls keep theirs
    """


@registry_group.command("list")
@click.argument("tenant", required=False)
@models_root_option()
def list_versions(tenant: str | None, models_root: Path) -> None:
    """Every version of TENANT (or of every tenant), oldest first; '*' marks the one served."""
    from suggest.registry import ModelRegistry

    registry = ModelRegistry(models_root)
    tenants = [tenant] if tenant else guarded(registry.tenants)
    if not tenants:
        click.echo(f"no models under {models_root}")
    for name in tenants:
        entries, served = guarded(functools.partial(_versions_and_served, registry, name))
        if tenant and not entries:  # a mistyped tenant read "0 versions; serves the newest"
            known = guarded(registry.tenants)
            raise click.ClickException(
                f"no models of tenant {tenant!r} under {models_root} "
                f"(tenants there: {', '.join(known) or 'none'}; train one with "
                f"`voice train --tenant {tenant}`, or give --models)"
            )
        promoted = guarded(functools.partial(registry.promoted, name))
        how = f"promoted {promoted}" if promoted else "newest"
        click.echo(f"{name} ({len(entries)} versions; serves the {how})")
        for entry in entries:
            heldout = entry.metrics.get("heldout") or {}
            top3 = heldout.get("top3_policy_successful") if isinstance(heldout, dict) else None
            score = f"  top-3 successful {top3:.3f}" if isinstance(top3, float) else ""
            mark = "*" if entry.path == served else " "
            note = f"  cannot be served: {entry.problem}" if entry.problem else ""
            click.echo(f" {mark} {entry.version}  {entry.created}{score}{note}")


def _versions_and_served(registry: Any, tenant: str) -> tuple[list[Any], Path | None]:
    entries = registry.versions(tenant)
    return entries, registry.served(tenant) if entries else None


@registry_group.command("promote")
@click.argument("model")
@models_root_option()
def promote(model: str, models_root: Path) -> None:
    """Serve MODEL (<tenant>/<version>) to its tenant's new calls from now on."""
    from suggest.registry import ModelRegistry

    registry = ModelRegistry(models_root)
    parts = model.strip("/").split("/")
    if len(parts) != 2:
        raise click.UsageError("give the model as <tenant>/<version> (see `voice registry list`)")
    before = registry.promoted(parts[0])
    guarded(lambda: registry.promote(parts[0], parts[1]))
    click.echo(f"{parts[0]} now serves {parts[1]}" + (f" (was {before})" if before else " (was its newest)"))


def register(cli: click.Group) -> None:
    """Attach ``voice registry``."""
    cli.add_command(registry_group)
