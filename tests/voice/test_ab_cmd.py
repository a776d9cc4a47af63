"""``voice ab report`` and ``voice ab assign`` against a SQLite database, as an operator runs them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from suggest.ab import ABSplit
from voice.cli import cli
from voice.store import Store
from voice.store.feedback import FeedbackStore
from voice.store.tables import CallRow
from voice.store.tables_console import CallOutcomeRow

pytestmark = pytest.mark.unit


def _split_file(
    tmp_path: Path, unit: str = "call", names: tuple[str, str] = ("control", "treatment")
) -> Path:
    path = tmp_path / f"split-{unit}-{names[0]}.json"
    arms = [{"name": names[0], "model": "acme/v1"}, {"name": names[1], "model": "acme/v2"}]
    path.write_text(json.dumps({"experiment": "e1", "unit": unit, "arms": arms}))
    return path


def _event(call: str, arm: str | None, tenant: str, event: str, model: str = "acme/v1") -> dict:
    return {
        "suggestion_id": f"{call}-s1",
        "call_id": call,
        "event": event,
        "text": "Would you like the annual plan?",
        "model_version": model,
        "arm": arm,
        "tenant": tenant,
        "agent_id": "ag1",
        "turn_index": 2,
    }


def _report(*args: str) -> Result:
    # Wide enough that rich does not fold the numbers of the table.
    return CliRunner().invoke(cli, ["ab", "report", *args], env={"COLUMNS": "250"})


def _row(output: str, arm: str) -> list[str]:
    line = next(line for line in output.splitlines() if re.match(rf"│ {arm}\s+│", line))
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_report_counts_only_the_experiments_calls(tmp_path: Path) -> None:
    """10 control calls (nothing accepted), 10 treatment calls (all accepted) and 200 calls of
    another tenant outside any experiment: before the fix control showed 119 calls at 0.916."""
    db = f"sqlite:///{tmp_path / 'ab.db'}"
    events = []
    for i in range(10):
        events.append(_event(f"exp-c{i}", "control", "acme", "shown"))
        events += [
            _event(f"exp-t{i}", "treatment", "acme", e, "acme/v2") for e in ("shown", "accepted")
        ]
    for i in range(200):
        events += [
            _event(f"other-{i}", None, "globex", e, "globex/v3") for e in ("shown", "accepted")
        ]
    with Store.open(db) as store:
        FeedbackStore(store).record_many(events)
    result = _report("--split", str(_split_file(tmp_path)), "--db", db)
    assert result.exit_code == 0, result.output
    control, treatment = _row(result.output, "control"), _row(result.output, "treatment")
    assert control[1] == treatment[1] == "10"
    assert control[4].startswith("0.000") and treatment[4].startswith("1.000")
    assert control[5] == "control" and treatment[5].startswith("+1.000")  # no outcomes needed
    assert treatment[3] == "-"  # no outcomes yet: not labelled "control"
    assert "200 calls of another tenant than the split's models" in result.output


def test_agent_experiment_keeps_an_agents_calls_together_and_reports_bad_rows(
    tmp_path: Path,
) -> None:
    """unit=agent: the recorded assignment of agent ag7 holds for all its calls, from the
    outcome CSV and from the database's call rows; the malformed row is named and counted."""
    split_path = _split_file(tmp_path, unit="agent")
    own = ABSplit.load(split_path).assign("any", "ag7").name
    recorded = "treatment" if own == "control" else "control"
    db = f"sqlite:///{tmp_path / 'agent.db'}"
    now = datetime.now(UTC)
    with Store.open(db) as store:
        FeedbackStore(store).assign("e1", "agent", "ag7", recorded, "acme/v1")
        with store.session() as session:
            for i in range(6):
                call = CallRow(
                    call_id=f"db-{i}",
                    status="done",
                    created_at=now,
                    updated_at=now,
                    tenant="acme",
                    agent_id="ag7",
                )
                session.add(call)
                session.flush()
                session.add(CallOutcomeRow(call_pk=call.id, success=True, updated_at=now))
    rows = ["call_id,success,value,agent_id"] + [f"call-{i},{i % 2 == 0},,ag7" for i in range(40)]
    rows.insert(20, "call-bad,maybe,,ag7")
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("\n".join(rows) + "\n")
    result = _report("--split", str(split_path), "--db", db, "--outcomes", str(outcomes))
    assert result.exit_code == 0, result.output
    assert _row(result.output, recorded)[1] == "46"
    assert _row(result.output, own)[1] == "0"
    assert "skipped outcomes.csv line 21: success 'maybe'" in result.output
    assert "1 malformed outcome rows skipped" in result.output


def test_assign_record_refuses_an_arm_the_split_no_longer_has(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'assign.db'}"
    first = CliRunner().invoke(
        cli,
        [
            "ab",
            "assign",
            "--split",
            str(_split_file(tmp_path)),
            "--call-id",
            "call-42",
            "--record",
            "--db",
            db,
        ],
    )
    assert first.exit_code == 0, first.output
    renamed = _split_file(tmp_path, names=("baseline", "candidate"))
    again = CliRunner().invoke(
        cli,
        ["ab", "assign", "--split", str(renamed), "--call-id", "call-42", "--record", "--db", db],
    )
    assert again.exit_code == 1 and isinstance(again.exception, SystemExit)
    stored = json.loads(first.output)["arm"]
    assert f"was recorded in arm '{stored}'" in again.output
    assert "arms: baseline, candidate" in again.output


def test_report_without_experiment_calls_says_so_instead_of_a_table_of_nan(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'calls.db'}"
    Store.open(db).close()
    result = _report("--split", str(_split_file(tmp_path)), "--db", db)
    assert result.exit_code == 0, result.output
    assert "no calls of experiment 'e1' yet" in result.output
    assert not re.search(r"\bnan\b", result.output)


def test_report_leaves_out_another_tenants_calls_served_by_an_arm(tmp_path: Path) -> None:
    """Before A/B splits were scoped to their tenants, a globex call could be served acme's
    treatment model; its feedback names its tenant, so the report leaves it out."""
    db = f"sqlite:///{tmp_path / 'ab.db'}"
    events = [_event("acme-1", "control", "acme", "shown")]
    events += [_event("acme-2", "treatment", "acme", e, "acme/v2") for e in ("shown", "accepted")]
    events += [_event(f"globex-{i}", "treatment", "globex", "shown", "acme/v2") for i in range(5)]
    with Store.open(db) as store:
        FeedbackStore(store).record_many(events)
    result = _report("--split", str(_split_file(tmp_path)), "--db", db)
    assert result.exit_code == 0, result.output
    assert _row(result.output, "control")[1] == _row(result.output, "treatment")[1] == "1"
