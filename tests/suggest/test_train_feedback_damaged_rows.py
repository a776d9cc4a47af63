"""`voice train --feedback` on a database with damaged feedback rows (SQLite holds whatever was
written to it by hand or by another tool): a ``context`` that is not JSON or a ``created_at``
that is not a time is skipped and named, as a row with a bad ``event`` is, instead of a
JSONDecodeError or ValueError traceback; and ``--tenant`` is checked with ``--out`` too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from voice.cli import cli
from voice.errors import StorageError
from voice.store import Store
from voice.store.feedback import FeedbackStore

pytestmark = pytest.mark.unit


def _event(suggestion: str, event: str = "accepted") -> dict:
    return {"suggestion_id": suggestion, "call_id": "call-1", "event": event, "text": "Would you donate $1?",
            "action": "donate_ask", "model_version": "acme/v1", "tenant": "acme", "turn_index": 4,
            "context": [{"role": "customer", "text": "I might give a little."}],
            "created_at": "2026-11-27T01:00:00+00:00"}


@pytest.fixture
def damaged_db(tmp_path: Path) -> str:
    """Four feedback rows of tenant acme: s1 fine, s2 with a bad event, s3 and s4 damaged."""
    path = tmp_path / "nextline.db"
    with Store.open(f"sqlite:///{path}") as store:
        FeedbackStore(store).record_many([_event(s) for s in ("s1", "s2", "s3", "s4")])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE suggestion_feedback SET event = 'clicked' WHERE suggestion_id = 's2'")
        db.execute("UPDATE suggestion_feedback SET context = '{not json' WHERE suggestion_id = 's3'")
        db.execute("UPDATE suggestion_feedback SET created_at = 'garbage-date' WHERE suggestion_id = 's4'")
    return f"sqlite:///{path}"


def test_train_skips_and_names_damaged_feedback_rows(damaged_db: str, tmp_path: Path) -> None:
    empty = tmp_path / "calls.jsonl"
    empty.write_text("")  # the command stops after reading the feedback: no model is trained
    result = CliRunner().invoke(cli, ["train", "--data", str(empty), "--tenant", "acme", "--feedback",
                                      "--db", damaged_db, "--models", str(tmp_path / "models")])
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.exception
    lines = result.output.splitlines()
    assert "skipped feedback s3 (row 3): context is not JSON (Expecting property name enclosed in double quotes " \
           "at column 2)" in lines
    assert "skipped feedback s4 (row 4): created_at 'garbage-date' is not a time" in lines
    assert any(line.startswith("skipped feedback s2: ") for line in lines)  # the bad event, as before
    assert "1 feedback events from the database" in lines
    assert f"no conversations in {empty}" in result.output


def test_reading_damaged_rows_without_asking_is_a_storage_error(damaged_db: str) -> None:
    with Store.open(damaged_db) as store:
        feedback = FeedbackStore(store)
        with pytest.raises(StorageError, match=r"damaged feedback row s3 \(row 3\): context is not JSON"):
            feedback.records(tenant="acme")
        damaged: list[str] = []
        assert [r["suggestion_id"] for r in feedback.records(tenant="acme", damaged=damaged)] == ["s1", "s2"]
        assert [d.split(":")[0] for d in damaged] == ["s3 (row 3)", "s4 (row 4)"]


def test_train_with_out_checks_the_tenant_name(tmp_path: Path) -> None:
    data = tmp_path / "calls.jsonl"
    data.write_text("")
    result = CliRunner().invoke(cli, ["train", "--data", str(data), "--tenant", "../x",
                                      "--out", str(tmp_path / "model")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: tenant '../x' is not a safe folder name" in result.output
