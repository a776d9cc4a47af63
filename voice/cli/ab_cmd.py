"""``voice ab`` (A/B assignment and report) and ``voice feedback export``."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from voice.cli.suggest_cmds import guarded


@click.group("ab")
def ab_group() -> None:
    """A/B tests of suggestion models: deterministic assignment and the arms' report."""


@ab_group.command("assign")
@click.option(
    "--split",
    "split_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='JSON/YAML: {"experiment", "unit": "call"|"agent", '
    '"arms": [{"name", "model", "weight"}]}.',
)
@click.option("--call-id", required=True)
@click.option("--agent-id")
@click.option("--record", is_flag=True, help="Also store the assignment in the database (--db).")
@click.option(
    "--db", "db_url", help="Database URL (default: $NEXTLINE_DATABASE_URL or ./nextline.db)."
)
def assign(
    split_file: Path, call_id: str, agent_id: str | None, record: bool, db_url: str | None
) -> None:
    """Print the arm and model of a call (the same answer on every machine, every time)."""
    from suggest.ab import ABSplit

    split = guarded(lambda: ABSplit.load(split_file))
    arm = split.assign(call_id, agent_id)
    name = arm.name
    if record:
        with _feedback_store(db_url) as feedback:
            name = guarded(
                lambda: feedback.assign(
                    split.experiment,
                    split.unit,
                    split.unit_id(call_id, agent_id),
                    arm.name,
                    arm.model,
                )
            )
    model = next(a.model for a in split.arms if a.name == name)
    click.echo(
        json.dumps(
            {
                "experiment": split.experiment,
                "unit_id": split.unit_id(call_id, agent_id),
                "arm": name,
                "model": model,
            }
        )
    )


@ab_group.command("report")
@click.option(
    "--split",
    "split_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
)
@click.option(
    "--db", "db_url", help="Database with the feedback (and outcomes) of the experiment's calls."
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

    Each arm also shows the judged calls per arm a test would need to detect the success-rate
    difference it shows (80 % power, 5 % two-sided): far more than it has means the experiment
    must run longer before its verdict means anything.
    """
    from suggest.ab import ABSplit, ab_report, calls_per_arm

    split = guarded(lambda: ABSplit.load(split_file))
    with _feedback_store(db_url) as feedback:
        events = guarded(feedback.records)
        outcomes = guarded(feedback.call_outcomes)
    if outcomes_file is not None:
        outcomes.update(_outcomes_from_file(outcomes_file))
    arms = [a.name for a in split.arms]
    records = _call_records(events, outcomes, split)
    reports = ab_report(records, arms)
    _print_report(reports)
    if lift is not None and reports and reports[0].outcome.total:
        rate = reports[0].outcome.rate
        needed = calls_per_arm(rate, rate + lift)
        click.echo(
            f"to detect {lift:+.3f} over control's success rate {rate:.3f}: "
            + (f"{needed} judged calls per arm" if needed else "not a rate between 0 and 1")
        )


def _call_records(
    events: list[dict[str, Any]], outcomes: dict[str, bool | None], split: Any
) -> list[Any]:
    from suggest.ab import CallRecord

    shown: dict[str, set[str]] = defaultdict(set)
    accepted: dict[str, set[str]] = defaultdict(set)
    arm_of: dict[str, str] = {}
    for event in events:
        call = event["call_id"]
        arm_of.setdefault(call, event.get("arm") or split.assign(call, event.get("agent_id")).name)
        shown[call].add(event["suggestion_id"])
        if event["event"] in ("accepted", "edited"):
            accepted[call].add(event["suggestion_id"])
    calls = set(arm_of) | {c for c in outcomes if c not in arm_of}
    return [
        CallRecord(
            call,
            arm_of.get(call) or split.assign(call).name,
            outcomes.get(call),
            len(shown[call]),
            len(accepted[call]),
        )
        for call in sorted(calls)
    ]


def _outcomes_from_file(path: Path) -> dict[str, bool | None]:
    if path.suffix == ".csv":
        from suggest.data.format import ImportReport
        from suggest.data.transcripts import read_outcomes

        return {
            call: row.outcome.success
            for call, row in guarded(lambda: read_outcomes(path, ImportReport())).items()
        }
    from suggest.data.format import read_conversations

    return {
        c.id: c.outcome.success for c in guarded(lambda: read_conversations(path)).conversations
    }


def _print_report(arms: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "arm",
        "calls",
        "success rate (95 % CI)",
        "vs control (95 % CI, Fisher p)",
        "acceptance (95 % CI)",
        "vs control (95 % CI)",
        "calls per arm to detect it",
    )
    for arm in arms:
        outcome, accept = arm.outcome, arm.acceptance
        table.add_row(
            arm.arm,
            str(arm.calls),
            f"{outcome.rate:.3f} ({outcome.low:.3f}-{outcome.high:.3f}) n={outcome.total}",
            _diff(arm.outcome_diff)
            + (f", p={arm.outcome_p:.3g}" if arm.outcome_p is not None else ""),
            f"{accept.rate:.3f} ({accept.low:.3f}-{accept.high:.3f}) n={accept.total}",
            _diff(arm.acceptance_diff),
            "" if arm.outcome_calls_needed is None else str(arm.outcome_calls_needed),
        )
    Console().print(table)


def _diff(value: tuple[float, float, float] | None) -> str:
    return "control" if value is None else f"{value[0]:+.3f} ({value[1]:+.3f}..{value[2]:+.3f})"


class _feedback_store:  # noqa: N801 - used as a context manager like a function
    """Open the store, yield its FeedbackStore, close the store."""

    def __init__(self, db_url: str | None) -> None:
        self.db_url = db_url

    def __enter__(self) -> Any:
        from voice.store import Store
        from voice.store.feedback import FeedbackStore

        self.store = guarded(lambda: Store.open(self.db_url))
        return FeedbackStore(self.store)

    def __exit__(self, *_exc: object) -> None:
        self.store.close()


@click.group("feedback")
def feedback_group() -> None:
    """Agent feedback on suggestions (stored by the console)."""


@feedback_group.command("export")
@click.option(
    "--db", "db_url", help="Database URL (default: $NEXTLINE_DATABASE_URL or ./nextline.db)."
)
@click.option("--tenant", help="Only this tenant's feedback.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), required=True)
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
