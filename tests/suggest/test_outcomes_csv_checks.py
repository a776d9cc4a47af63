"""The outcomes CSV (a CRM export) of `voice data import transcripts` and `voice ab report
--outcomes`: one that is not UTF-8 is a one-line error (a UnicodeDecodeError traceback before),
and a tenant that is not a safe folder name is a bad row (``../x`` and ``a b`` were imported, and
a model trained for them would be registered outside the registry or under a name serving
refuses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from suggest.data.transcripts import import_transcripts
from voice.cli import cli
from voice.store import Store

pytestmark = pytest.mark.unit

LATIN1_CSV = "call_id,success,agent_id\nc1,true,Jos\xe9\n".encode("latin-1")  # Excel's "CSV" on Windows


def _transcripts(folder: Path, *call_ids: str) -> Path:
    folder.mkdir()
    for call_id in call_ids:
        segments = [{"id": 0, "start": 0.0, "end": 1.0, "speaker": "A", "role": "agent", "text": "Hello"},
                    {"id": 1, "start": 1.0, "end": 2.0, "speaker": "B", "role": "customer", "text": "Hi"}]
        (folder / f"{call_id}.json").write_text(json.dumps({"call_id": call_id, "segments": segments}))
    return folder


def _said(result: Result) -> str:
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), output
    assert output.startswith("Error: ") and "Traceback" not in output
    return output


def test_data_import_says_the_outcomes_csv_is_not_utf8(tmp_path: Path) -> None:
    calls = _transcripts(tmp_path / "out", "c1")
    crm = tmp_path / "crm.csv"
    crm.write_bytes(LATIN1_CSV)
    result = CliRunner().invoke(cli, ["data", "import", "transcripts", str(calls), "--outcomes", str(crm),
                                      "--out", str(tmp_path / "calls.jsonl")])
    said = _said(result)
    assert f"{crm} is not UTF-8 text" in said and "re-save it as UTF-8" in said


def test_ab_report_says_the_outcomes_csv_is_not_utf8(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'nextline.db'}"
    Store.open(database).close()
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"experiment": "e1", "arms": [{"name": "control", "model": "acme/v1"},
                                                              {"name": "treatment", "model": "acme/v2"}]}))
    crm = tmp_path / "crm.csv"
    crm.write_bytes(LATIN1_CSV)
    result = CliRunner().invoke(cli, ["ab", "report", "--split", str(split), "--db", database,
                                      "--outcomes", str(crm)])
    assert f"{crm} is not UTF-8 text" in _said(result)


def test_a_tenant_that_is_not_a_safe_folder_name_is_a_bad_row(tmp_path: Path) -> None:
    calls = _transcripts(tmp_path / "out", "c1", "c2", "c3")
    crm = tmp_path / "crm.csv"
    crm.write_text("call_id,success,tenant\nc1,true,../x\nc2,false,a b\nc3,true,acme\n", encoding="utf-8-sig")
    report = import_transcripts(calls, crm, tenant="default")
    assert [(c.id, c.tenant) for c in report.conversations] == [("c3", "acme")]
    problems = {i.where: i.message for i in report.issues}
    assert problems["crm.csv line 2"].startswith("tenant '../x' is not a safe folder name")
    assert problems["crm.csv line 3"].startswith("tenant 'a b' is not a safe folder name")
