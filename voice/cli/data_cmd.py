"""``voice data``: import dialogue sets and call transcripts into conversation JSONL (format v1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from voice.cli.server_options import config_option, data_dir_option, db_option, open_server_store

MAX_ISSUES_SHOWN = 20


@click.group("data")
def data_group() -> None:
    """Conversation data for the suggestion model: `voice data import ...`, `voice data check`."""


@data_group.group("import")
def import_group() -> None:
    """Convert a dataset or transcripts into conversation JSONL (docs/suggestion-model.md).

    \b
    Examples:
      voice data import persuasionforgood ../shared/data/dialogues/persuasionforgood \\
          --out data/pfg.jsonl
      voice data import transcripts out/ --outcomes crm.csv --out data/calls.jsonl --tenant acme
      voice data import db --tenant acme --out data/acme.jsonl     # the server's calls + outcomes
    """


def _tenant_name(_context: click.Context, _param: click.Parameter, value: str) -> str:
    """The tenant becomes a model folder (`voice train --tenant`): refuse one that cannot, now."""
    from suggest.errors import ConfigError
    from suggest.registry import check_name

    try:
        return check_name(value, "tenant")
    except ConfigError as error:
        raise click.BadParameter(str(error)) from error


out_jsonl_option = click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
                                required=True, help="JSONL file to write.")


def _dataset_command(name: str, loader: str, default_tenant: str, summary: str) -> click.Command:
    @click.command(name, help=summary)
    @click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @out_jsonl_option
    @click.option(
        "--tenant",
        default=default_tenant,
        show_default=True,
        callback=_tenant_name,
        help="Tenant written on every conversation.",
    )
    def command(src_dir: Path, out_file: Path, tenant: str) -> None:
        from suggest.data import importers

        importer: Callable = getattr(importers, loader)
        _finish(_run(lambda: importer(src_dir, tenant=tenant)), out_file)

    return command


for _name, _loader, _summary in (
    (
        "persuasionforgood",
        "import_persuasionforgood",
        "PersuasionForGood: persuader = agent; donation > 0 = success.",
    ),
    (
        "casino",
        "import_casino",
        "CaSiNo: opener = agent; success = deal with at least the partner's points.",
    ),
    (
        "dealornodeal",
        "import_dealornodeal",
        "Deal or No Deal (CC BY-NC, evaluation only): opener = agent; "
        "success = deal with at least the partner's reward.",
    ),
):
    import_group.add_command(_dataset_command(_name, _loader, _name, _summary))


@import_group.command("transcripts")
@click.argument("src_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--outcomes",
    "outcomes_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV with a header line call_id,success[,value,agent_id,tenant] (a CRM export): call_id "
    "is the transcript's call_id (its file stem); success is true/false, 1/0, yes/no or won/lost; "
    "value a number.",
)
@out_jsonl_option
@click.option(
    "--tenant",
    default="default",
    show_default=True,
    callback=_tenant_name,
    help="Tenant for calls whose CSV row names none.",
)
def import_transcripts(src_dir: Path, outcomes_csv: Path, out_file: Path, tenant: str) -> None:
    """`voice transcribe` output (DIR/*.json) joined with call outcomes from a CSV."""
    from suggest.data.transcripts import import_transcripts as run_import

    report = _run(lambda: run_import(src_dir, outcomes_csv, tenant=tenant))
    if not report.conversations and not report.issues:  # e.g. the recordings' folder, not --out's
        raise click.ClickException(
            f"no transcripts in {src_dir} (no *.json with segments, searched recursively): pass "
            "the --out folder of `voice transcribe`"
        )
    _finish(report, out_file)


@import_group.command("db")
@click.option("--tenant", required=True, callback=_tenant_name,
              help="The tenant whose stored calls to export (the one you will train).")
@out_jsonl_option
@db_option
@data_dir_option
@config_option
def import_db(tenant: str, out_file: Path, db_url: str | None, data_dir: str | None,
              config_file: Path | None) -> None:
    """The tenant's stored calls (live and `voice transcribe`) with the outcome the CRM set
    through `PUT /api/calls/{id}/outcome`: the server's own history as training data. Calls
    without an outcome yet are counted and left out."""
    from suggest.data.transcripts import StoredCall, import_stored_calls
    from suggest.types import Outcome
    from voice.store.qa import QaStore

    store, _ = open_server_store(db_url, data_dir, config_file, reading=True)
    try:
        calls = (StoredCall(call_id, agent_id, transcript,
                            None if outcome is None else Outcome(bool(outcome.success), outcome.value))
                 for call_id, agent_id, transcript, outcome in QaStore(store).stored_transcripts(tenant))
        report = _run(lambda: import_stored_calls(calls, tenant))
    finally:
        store.close()
    if not report.conversations and not report.issues:  # an empty file would only fail `voice train`
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        raise click.ClickException(
            f"no call of tenant {tenant!r} with an outcome in the database: `voice calls list "
            f"--tenant {tenant}` shows its stored calls; the CRM sets outcomes through "
            "PUT /api/calls/{id}/outcome"
        )
    _finish(report, out_file)


@data_group.command("check")
@click.argument("data_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def check(data_file: Path) -> None:
    """Validate a conversation JSONL file: counts, outcomes, split sizes and bad lines.

    One conversation per line, as `voice data import` writes it (docs/suggestion-model.md); exit
    status 1 when a line is bad or the file holds no conversation.
    """
    from suggest.data.format import read_conversations
    from suggest.data.split import split_counts

    report = _run(lambda: read_conversations(data_file))
    _print_issues(report.issues, "invalid")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    counts = split_counts(report.conversations)
    click.echo(
        f"{report.check_summary()}; held-out split: {counts['train']} train / {counts['test']} test"
    )
    if report.issues:
        raise SystemExit(1)
    if not report.conversations:  # an empty file is no training data; `voice train` would refuse it
        raise click.ClickException(f"{data_file} has no conversations (one JSON object per line)")


def _run(action: Callable):  # noqa: ANN202 - returns the importer's ImportReport
    from suggest.errors import SuggestError

    try:
        return action()
    except SuggestError as error:
        raise click.ClickException(str(error)) from error


def _finish(report, out_file: Path) -> None:  # noqa: ANN001 - suggest.data.format.ImportReport
    from suggest.data.format import write_conversations

    written = write_conversations(out_file, report.conversations)
    _print_issues(report.issues)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{report.summary()} -> {out_file} ({written} lines)")
    if report.issues:
        raise SystemExit(1)


def _print_issues(issues: list, what: str = "skipped") -> None:
    for issue in issues[:MAX_ISSUES_SHOWN]:
        click.echo(f"{what} {issue}", err=True)
    if len(issues) > MAX_ISSUES_SHOWN:
        click.echo(f"... and {len(issues) - MAX_ISSUES_SHOWN} more {what} rows", err=True)


def register(cli: click.Group) -> None:
    """Attach ``voice data``."""
    cli.add_command(data_group)
