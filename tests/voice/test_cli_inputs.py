"""Mistakes a newcomer makes with the suggestion-model commands get a typed refusal, not a
silently empty or wrong answer: a mistyped database path, another tenant's feedback, a tenant
name that cannot become a model folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from voice.cli import cli

pytestmark = pytest.mark.unit


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _feedback_line(suggestion: str, tenant: str) -> str:
    event = {"suggestion_id": suggestion, "call_id": f"call-{suggestion}", "event": "accepted"}
    context = [{"role": "customer", "text": "Too expensive."}]
    return json.dumps(
        {**event, "text": "We have a cheaper plan.", "tenant": tenant, "context": context}
    )


def test_a_feedback_file_trains_only_its_tenants_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`voice feedback export` without --tenant writes every tenant's events; all of them used
    to train the model of the tenant given to `voice train`."""
    from voice.cli.train_cmd import _feedback

    path = tmp_path / "feedback.jsonl"
    lines = [_feedback_line(s, t) for s, t in (("s1", "acme"), ("s2", "globex"), ("s3", "globex"))]
    path.write_text("\n".join(lines) + "\n")
    records = _feedback(False, None, path, "acme")
    assert [r.suggestion_id for r in records] == ["s1"]
    said = capsys.readouterr().err
    assert "1 feedback events of tenant 'acme'" in said and "2 of ['globex'] left out" in said


def test_commands_that_read_a_database_refuse_one_that_does_not_exist(tmp_path: Path) -> None:
    """A mistyped --db (or none, in a folder without nextline.db) created an empty database:
    `voice train --feedback` then trained without feedback and exited 0, `voice feedback
    export` wrote 0 events."""
    missing = tmp_path / "typo" / "nextline.db"
    url = f"sqlite:///{missing}"
    data = tmp_path / "c.jsonl"
    data.write_text("")
    split = tmp_path / "split.json"
    arms = [{"name": "a", "model": "acme/v1"}, {"name": "b", "model": "acme/v2"}]
    split.write_text(json.dumps({"experiment": "e1", "unit": "call", "arms": arms}))
    for args in (
        ("train", "--data", str(data), "--tenant", "acme", "--feedback", "--db", url),
        ("feedback", "export", "--db", url, "--out", str(tmp_path / "f.jsonl")),
        ("ab", "report", "--split", str(split), "--db", url),
    ):
        result = _run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert f"no database at {missing}" in result.output, result.output
    assert not missing.parent.exists()


@pytest.mark.parametrize("tenant", ["", "acme corp", "acme/emea", "../x"])
def test_import_refuses_a_tenant_that_cannot_name_a_model(tmp_path: Path, tenant: str) -> None:
    """The file was written (exit 0), and only `voice train` found the tenant unusable (an empty
    one made every line of it a bad line)."""
    (tmp_path / "out").mkdir()
    csv = tmp_path / "crm.csv"
    csv.write_text("call_id,success\n")
    out = tmp_path / "calls.jsonl"
    result = _run(
        "data", "import", "transcripts", str(tmp_path / "out"),
        "--outcomes", str(csv), "--out", str(out), "--tenant", tenant,
    )  # fmt: skip
    assert result.exit_code == 2 and "is not a safe folder name" in result.output
    assert not out.exists()
