"""``voice ab`` (A/B assignment and report) and ``voice feedback export``."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from voice.cli.server_options import existing_database
from voice.cli.suggest_cmds import guarded

_SPLIT_HELP = 'JSON/YAML: {"experiment", "unit": "call"|"agent", "arms": [{"name", "model", "weight"}]}.'


@click.group("ab")
def ab_group() -> None:
    """A/B tests of suggestion models: deterministic assignment and the arms' report."""


@ab_group.command("assign")
@click.option(
    "--split",
    "split_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help=_SPLIT_HELP,
)
@click.option("--call-id", required=True, help="The call's id as the server names it, e.g. twilio-MZ123.")
@click.option("--agent-id", help="The call's agent; required by a split with unit 'agent'.")
@click.option("--record", is_flag=True, help="Also store the assignment in the database (--db).")
@click.option(
    "--db",
    "db_url",
    help="Database URL (default: the one `voice serve` uses, $NEXTLINE_DB_URL or data/nextline.db).",
)
def assign(
    split_file: Path, call_id: str, agent_id: str | None, record: bool, db_url: str | None
) -> None:
    """Print the arm and model of a call (the same answer on every machine, every time)."""
    split = _load_split(split_file)
    arm = split.assign(call_id, agent_id)
    name = arm.name
    if record:
        with _feedback_store(db_url, reading=False) as feedback:
            name = guarded(
                lambda: feedback.assign(
                    split.experiment,
                    split.unit,
                    split.unit_id(call_id, agent_id),
                    arm.name,
                    arm.model,
                )
            )
    chosen = split.arm_named(name)
    if chosen is None:
        raise click.ClickException(
            f"{split.unit} {split.unit_id(call_id, agent_id)!r} was recorded in arm {name!r} of "
            f"experiment {split.experiment!r}, which {split_file} no longer has (arms: "
            f"{', '.join(a.name for a in split.arms)}); restore the arm's name, or give the "
            "changed split a new experiment name"
        )
    click.echo(
        json.dumps(
            {
                "experiment": split.experiment,
                "unit_id": split.unit_id(call_id, agent_id),
                "arm": name,
                "model": chosen.model,
            }
        )
    )


@ab_group.command("report")
@click.option(
    "--split",
    "split_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help=_SPLIT_HELP,
)
@click.option(
    "--db",
    "db_url",
    help="Database with the feedback (and outcomes) of the experiment's calls (default: "
    "the one `voice serve` uses, $NEXTLINE_DB_URL or data/nextline.db).",
)
@click.option(
    "--outcomes",
    "outcomes_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Call outcomes as conversation JSONL or a CSV call_id,success (else the database's).",
)
@click.option(
    "--lift",
    type=click.FloatRange(-1, 1, min_open=True, max_open=True),
    help="Also print the calls per arm needed to detect this success-rate lift over control "
    "(e.g. 0.02 for two points), at 80 % power and 5 % two-sided.",
)
def report(
    split_file: Path, db_url: str | None, outcomes_file: Path | None, lift: float | None
) -> None:
    """Arms compared on call outcome and suggestion acceptance, with 95 % intervals.

    Only the experiment's calls count: the recorded assignments first (with unit ``agent``, all
    of an agent's calls go to the agent's arm), else the arm stamped on a call's suggestions by
    a model of the split's tenants; a call known only from --outcomes is assigned by the split.
    What was left out, and why, is printed after the table, with the outcome rows that could
    not be read.

    Each arm also shows the judged calls per arm a test would need to detect the success-rate
    difference it shows (80 % power, 5 % two-sided): far more than it has means the experiment
    must run longer before its verdict means anything.
    """
    from suggest.ab import experiment_records
    from suggest.ab_report import ab_report

    split = _load_split(split_file)
    with _feedback_store(db_url) as feedback:
        events = guarded(feedback.records)
        assignments = guarded(lambda: feedback.assignments(split.experiment))
        database_outcomes = guarded(lambda: _database_outcomes(feedback))
    file_outcomes, issues = (
        _outcomes_from_file(outcomes_file) if outcomes_file is not None else ({}, [])
    )
    calls = _call_facts(events, database_outcomes, file_outcomes)
    experiment = experiment_records(split, calls, assignments)
    if experiment.records:
        reports = ab_report(experiment.records, [a.name for a in split.arms], unit=split.unit)
        _print_report(reports, split.unit)
        _print_lift(reports, lift)
    else:  # a table of nan rates said nothing
        click.echo(
            f"no calls of experiment {split.experiment!r} yet: none was assigned (`voice ab assign "
            "--record`) or served by a model of its tenants; nothing to compare"
        )
    for note in experiment.notes:
        click.echo(f"note: {note}", err=True)
    for issue in issues:
        click.echo(f"skipped {issue}", err=True)
    if issues:
        click.echo(f"{len(issues)} malformed outcome rows skipped (listed above)", err=True)


def _print_lift(reports: list[Any], lift: float | None) -> None:
    from suggest.ab_report import calls_per_arm

    if lift is not None and reports and reports[0].outcome.total:
        rate = reports[0].outcome.rate
        needed = calls_per_arm(rate, rate + lift)
        click.echo(
            f"to detect {lift:+.3f} over control's success rate {rate:.3f}: "
            + (f"{needed} judged calls per arm" if needed else "not a rate between 0 and 1")
        )


def _call_facts(
    events: list[dict[str, Any]],
    database_outcomes: dict[str, Any],
    file_outcomes: dict[str, Any],
) -> list[Any]:
    """One CallFacts per call: its suggestions (distinct shown, accepted or edited, the arm
    and model stamped on them), then its outcome (the file's over the database's)."""
    from suggest.ab import CallFacts

    shown: dict[str, set[str]] = defaultdict(set)
    accepted: dict[str, set[str]] = defaultdict(set)
    facts: dict[str, CallFacts] = {}
    for event in events:
        call = event["call_id"]
        known = facts.get(call) or CallFacts(call)
        facts[call] = replace(
            known,
            agent_id=known.agent_id or event.get("agent_id"),
            tenant=known.tenant or event.get("tenant") or None,  # other tenants' calls are left out
            served_arm=known.served_arm or event.get("arm"),
            served_model=known.served_model or (event.get("model_version") or ""),
        )
        shown[call].add(event["suggestion_id"])
        if event["event"] in ("accepted", "edited"):
            accepted[call].add(event["suggestion_id"])
    for call in facts:
        facts[call] = replace(facts[call], shown=len(shown[call]), accepted=len(accepted[call]))
    for outcomes in (database_outcomes, file_outcomes):
        for call, outcome in outcomes.items():
            facts[call] = _with_outcome(facts.get(call), outcome)
    return list(facts.values())


def _with_outcome(known: Any, outcome: Any) -> Any:
    if known is None:
        return outcome
    return replace(
        known,
        agent_id=known.agent_id or outcome.agent_id,
        tenant=known.tenant or outcome.tenant,
        success=known.success if outcome.success is None else outcome.success,
        from_outcome_file=known.from_outcome_file or outcome.from_outcome_file,
    )


def _database_outcomes(feedback: Any) -> dict[str, Any]:
    """call id -> CallFacts with the outcome the console or CRM import stored."""
    from suggest.ab import CallFacts

    return {
        call: CallFacts(call, agent_id=agent, tenant=tenant, success=success)
        for call, (agent, tenant, success) in feedback.call_outcomes().items()
    }


def _outcomes_from_file(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """call id -> CallFacts of an outcome CSV or conversation JSONL, and the rows it skipped."""
    from suggest.ab import CallFacts
    from suggest.data.format import ImportReport, read_conversations

    if path.suffix == ".csv":
        from suggest.data.transcripts import read_outcomes

        report = ImportReport()
        rows = guarded(lambda: read_outcomes(path, report))
        facts = {
            call: CallFacts(
                call, row.agent_id, row.tenant, success=row.outcome.success, from_outcome_file=True
            )
            for call, row in rows.items()
        }
        return facts, report.issues
    read = guarded(lambda: read_conversations(path))
    facts = {
        c.id: CallFacts(
            c.id, c.agent_id, c.tenant, success=c.outcome.success, from_outcome_file=True
        )
        for c in read.conversations
    }
    return facts, [f"{path.name} {issue}" for issue in read.issues]


def _print_report(arms: list[Any], unit: str) -> None:
    from rich.console import Console
    from rich.table import Table

    test = "Fisher p" if unit == "call" else "CI and p over agents"
    table = Table(
        "arm",
        "calls",
        "success rate (95 % CI)",
        f"vs control (95 % CI, {test})",
        "acceptance (95 % CI)",
        "vs control (95 % CI)",
        "calls per arm to detect it",
    )
    for index, arm in enumerate(arms):
        is_control = index == 0
        outcome, accept = arm.outcome, arm.acceptance
        table.add_row(
            arm.arm,
            str(arm.calls),
            f"{outcome.rate:.3f} ({outcome.low:.3f}-{outcome.high:.3f}) n={outcome.total}",
            _diff(arm.outcome_diff, is_control)
            + (f", p={arm.outcome_p:.3g}" if arm.outcome_p is not None else ""),
            f"{accept.rate:.3f} ({accept.low:.3f}-{accept.high:.3f}) n={accept.total}",
            _diff(arm.acceptance_diff, is_control),
            "" if arm.outcome_calls_needed is None else str(arm.outcome_calls_needed),
        )
    Console().print(table)
    click.echo(_UNIT_NOTES[unit])


_UNIT_NOTES = {
    "call": "tests: calls are the unit the split randomised (Fisher's exact test and a Newcombe "
    "interval for outcomes; acceptance resampled by call)",
    "agent": "tests: agents are the unit the split randomised (outcome p from re-assigning agents "
    "between the arms; intervals resample agents); 'calls per arm' assumes independent calls, "
    "so an agent split needs more",
}


def _diff(value: tuple[float, float, float] | None, is_control: bool) -> str:
    """The control row says so; another arm without a comparison yet (too few calls) shows -."""
    if value is None:
        return "control" if is_control else "-"
    return f"{value[0]:+.3f} ({value[1]:+.3f}..{value[2]:+.3f})"


class _feedback_store:  # noqa: N801 - used as a context manager like a function
    """Open the store, yield its FeedbackStore, close the store.

    ``reading``: the command only reads, so a SQLite file that is not there is an error (opening
    it would create an empty database and report nothing).
    """

    def __init__(self, db_url: str | None, *, reading: bool = True) -> None:
        self.db_url = existing_database(db_url) if reading else db_url

    def __enter__(self) -> Any:
        from voice.store import Store
        from voice.store.feedback import FeedbackStore

        self.store = guarded(lambda: Store.open(self.db_url))
        return FeedbackStore(self.store)

    def __exit__(self, *_exc: object) -> None:
        self.store.close()


def _load_split(path: Path) -> Any:
    """The split file, or a one-line error for one that is not JSON/YAML (a traceback before)."""
    import yaml

    from suggest.ab import ABSplit

    try:
        return guarded(lambda: ABSplit.load(path))
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError, a YAML syntax error
        reason = " ".join(str(exc).split())
        raise click.ClickException(
            f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'} "
            f"({reason}); see `voice ab assign --help` for the split's fields"
        ) from exc


@click.group("feedback")
def feedback_group() -> None:
    """Agent feedback on suggestions (stored by the console)."""


@feedback_group.command("export")
@click.option(
    "--db",
    "db_url",
    help="Database URL (default: the one `voice serve` uses, $NEXTLINE_DB_URL or data/nextline.db).",
)
@click.option("--tenant", help="Only this tenant's feedback.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="JSONL file to write: one feedback event per line.")
def export(db_url: str | None, tenant: str | None, out_file: Path) -> None:
    """Write feedback events as JSONL (what `voice train --feedback-file` reads)."""
    with _feedback_store(db_url) as feedback:
        rows = guarded(lambda: feedback.records(tenant=tenant))
    with out_file.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    click.echo(f"{len(rows)} feedback events -> {out_file}")


def register(cli: click.Group) -> None:
    """Attach ``voice ab`` and ``voice feedback``."""
    cli.add_command(ab_group)
    cli.add_command(feedback_group)
