"""``voice calls``: list stored calls, erase them (on request, or past a retention period), and
show who accessed them (the access log)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from voice.cli.server_options import config_option, data_dir_option, db_option, open_server_store

_tenant_option = click.option("--tenant", default=None, help="Only this tenant's calls.")


def _eraser(db_url: str | None, data_dir: str | None, config_file: Path | None) -> Any:
    from voice.store.retention import CallEraser

    # reading: a mistyped --db or --data-dir would otherwise become a new, empty database, and an
    # erasure request would answer "not stored (nothing to erase)" for a call that is stored
    store, config = open_server_store(db_url, data_dir, config_file, reading=True)
    return CallEraser(store, config.data_dir)


@click.group("calls")
def calls() -> None:
    """Stored calls: list them, erase one on request, purge those past a retention period.

    \b
    Erasing a call removes its transcript, turns, entities, outcome, QA reviews, the suggestion
    feedback that quotes it, its A/B assignment, and the audio the server recorded or received
    as an upload. A batch call's source recording (your archive) is listed, never deleted.
      voice calls list --older-than 90
      voice calls erase twilio-MZ123 --yes
      voice calls purge --older-than 90 --dry-run
    The server purges by itself with `voice serve --retention-days 90`.
    Who opened a call's transcript or recording, exported, set the outcome of or erased it:
      voice calls access-log --call-id twilio-MZ123
    """


@calls.command("list")
@click.option("--older-than", type=click.FloatRange(min=0, min_open=True), default=None, metavar="DAYS",
              help="Only calls created more than DAYS ago.")
@_tenant_option
@db_option
@data_dir_option
@config_option
def list_calls(older_than: float | None, tenant: str | None, db_url: str | None, data_dir: str | None,
               config_file: Path | None) -> None:
    """One line per call: id, kind, tenant, created (UTC), audio."""
    from voice.store.retention import cutoff

    eraser = _eraser(db_url, data_dir, config_file)
    try:
        found = eraser.find(created_before=cutoff(older_than) if older_than else None, tenant=tenant)
    finally:
        eraser.store.close()
    for call in found:
        audio = "-" if not call.audio_path else ("recorded" if call.audio_owned else "source file")
        state = " (in progress)" if call.active else ""
        click.echo(f"{call.call_id}\t{call.kind}\t{call.tenant or '-'}\t"
                   f"{call.created_at:%Y-%m-%d %H:%M}\t{audio}{state}")
    click.echo(f"{len(found)} calls", err=True)


@calls.command("erase")
@click.argument("call_ids", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Show what would be erased; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@data_dir_option
@config_option
def erase(call_ids: tuple[str, ...], dry_run: bool, yes: bool, db_url: str | None, data_dir: str | None,
          config_file: Path | None) -> None:
    """Erase these calls and everything stored about them (e.g. a customer's erasure request)."""
    eraser = _eraser(db_url, data_dir, config_file)
    try:
        found = eraser.find(call_ids=call_ids)
        missing = sorted(set(call_ids) - {c.call_id for c in found})
        if missing:
            click.echo(f"not stored (nothing to erase): {', '.join(missing)}", err=True)
        _run(eraser, found, dry_run=dry_run, yes=yes)
    finally:
        eraser.store.close()


@calls.command("purge")
@click.option("--older-than", type=click.FloatRange(min=0, min_open=True), required=True, metavar="DAYS",
              help="Erase calls created more than DAYS ago (your retention period).")
@_tenant_option
@click.option("--dry-run", is_flag=True, help="Show what would be erased; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
@data_dir_option
@config_option
def purge(older_than: float, tenant: str | None, dry_run: bool, yes: bool, db_url: str | None,
          data_dir: str | None, config_file: Path | None) -> None:
    """Erase every call past the retention period (calls in progress are never touched)."""
    from voice.store.retention import cutoff

    eraser = _eraser(db_url, data_dir, config_file)
    try:
        _run(eraser, eraser.find(created_before=cutoff(older_than), tenant=tenant), dry_run=dry_run, yes=yes)
    finally:
        eraser.store.close()


@calls.command("access-log")
@click.option("--call-id", default=None, help="Only accesses to this call.")
@click.option("--actor", default=None, help="Only accesses by this agent or supervisor.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Only accesses on or after this day (UTC), e.g. 2026-11-01.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="The newest this many entries (listed oldest first).")
@click.option("--jsonl", is_flag=True, help="One JSON object per line (for an auditor's tools).")
@db_option
@data_dir_option
@config_option
def access_log(call_id: str | None, actor: str | None, since: datetime | None, limit: int, jsonl: bool,
               db_url: str | None, data_dir: str | None, config_file: Path | None) -> None:
    """Who accessed calls: opened a transcript (QA page, live stream), played a recording, exported a
    review, set an outcome or erased a call; when (UTC), as what role, and from which address.
    Entries outlive the erasure of the call they name."""
    import json

    from voice.store.access_log import AccessLog

    store, _ = open_server_store(db_url, data_dir, config_file, reading=True)
    try:
        entries = AccessLog(store).entries(
            call_id=call_id, actor=actor, since=since.replace(tzinfo=UTC) if since else None, limit=limit)
    finally:
        store.close()
    for entry in entries:
        if jsonl:
            click.echo(json.dumps(entry.to_dict(), ensure_ascii=False))
        else:
            click.echo(f"{entry.at:%Y-%m-%d %H:%M:%S}\t{entry.actor} ({entry.actor_role}"
                       f"{', ' + entry.actor_tenant if entry.actor_tenant else ''})\t{entry.action}\t"
                       f"{entry.call_id}\t{entry.client or '-'}")
    more = " (the newest; narrow with --since or raise --limit for older ones)" if len(entries) == limit else ""
    click.echo(f"{len(entries)} entries{more}", err=True)


def _run(eraser: Any, found: list[Any], *, dry_run: bool, yes: bool) -> None:
    if not found:
        click.echo("no calls match")
        return
    if not dry_run and not yes:
        click.confirm(f"Erase {len(found)} calls and everything stored about them?", abort=True)
    report = eraser.erase(found, dry_run=dry_run)
    verb = "would erase" if dry_run else "erased"
    click.echo(f"{verb} {len(report.calls)} calls, {report.feedback_rows} feedback rows, "
               f"{report.assignments} A/B assignments, {len(report.files)} files "
               f"({report.bytes_freed / 1e6:.1f} MB)")
    if report.refused_active:
        click.echo(f"in progress, left alone: {', '.join(report.refused_active)}", err=True)
    if report.kept_source_files:
        click.echo(f"{len(report.kept_source_files)} source recordings are yours and were not deleted, e.g. "
                   f"{report.kept_source_files[0]}", err=True)


def register(cli: click.Group) -> None:
    """Add ``voice calls`` to the CLI."""
    cli.add_command(calls)
