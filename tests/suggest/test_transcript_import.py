"""``voice transcribe`` JSON + a CRM outcomes CSV become conversations; bad rows are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suggest.data.transcripts import import_transcripts

pytestmark = pytest.mark.unit


def _transcript(call_id: str, segments: list[tuple[str, str, float]]) -> dict:
    return {
        "schema_version": "1.0",
        "call_id": call_id,
        "created_at": "2026-01-01T00:00:00+00:00",
        "redacted": False,
        "audio": {
            "path": f"{call_id}.wav",
            "format": "wav",
            "sample_rate": 8000,
            "channels": 2,
            "duration": 30.0,
        },
        "speakers": [{"id": "A", "role": "agent", "channel": 0, "talk_time": 1.0}],
        "segments": [
            {
                "id": i,
                "start": t,
                "end": t + 1.0,
                "speaker": role[0].upper(),
                "role": role,
                "channel": None,
                "text": text,
                "words": [],
            }
            for i, (role, text, t) in enumerate(segments)
        ],
        "entities": [
            {
                "label": "MONEY",
                "text": "$40",
                "value": "40.00 USD",
                "segment": 2,
                "start_char": 9,
                "end_char": 12,
            }
        ],
    }


def test_transcripts_join_outcomes_merge_turns_and_keep_entities(tmp_path: Path) -> None:
    calls = tmp_path / "out"
    calls.mkdir()
    segments = [
        ("agent", "Thanks for calling.", 0.0),
        ("agent", "How can I help?", 1.5),
        ("customer", "It costs $40 a month.", 3.0),
        ("unknown", "[music]", 4.0),
        ("agent", "Let me check that.", 5.0),
    ]
    (calls / "c1.json").write_text(json.dumps(_transcript("c1", segments)))
    (calls / "c2.json").write_text(json.dumps(_transcript("c2", [("customer", "Hello?", 0.0)])))
    (calls / "c3.json").write_text(
        json.dumps(_transcript("c3", [("agent", "Hi", 0.0)]))
    )  # no outcome row
    (calls / "broken.json").write_text("{not json")
    outcomes = tmp_path / "crm.csv"
    outcomes.write_text(
        "call_id,success,value,agent_id\nc1,won,129.90,agent-7\nc2,no,,\nc9,maybe,1,\n,true,1,\nc4,true,abc,\n"
    )
    report = import_transcripts(calls, outcomes, tenant="acme")
    by_id = {c.id: c for c in report.conversations}
    assert set(by_id) == {"c1", "c2"}
    c1 = by_id["c1"]
    assert (
        c1.outcome.success
        and c1.outcome.value == pytest.approx(129.9)
        and c1.agent_id == "agent-7"
        and c1.tenant == "acme"
    )
    assert [t.role for t in c1.turns] == ["agent", "customer", "agent"]
    assert c1.turns[0].text == "Thanks for calling. How can I help?" and c1.turns[0].end == 2.5
    money = c1.turns[1].entities[0]
    assert c1.turns[1].text[money.start : money.end] == "$40" and money.value == "40.00 USD"
    assert not by_id["c2"].outcome.success
    problems = {issue.where: issue.message for issue in report.issues}
    assert set(problems) == {
        "crm.csv line 4",
        "crm.csv line 5",
        "crm.csv line 6",
        "c3.json",
        "broken.json",
    }
    assert "maybe" in problems["crm.csv line 4"] and "no row" in problems["c3.json"]
    assert any("unknown" in note for note in report.notes)


def test_a_malformed_transcript_is_reported_and_the_other_calls_imported(tmp_path: Path) -> None:
    """Entities that are not objects (AttributeError before) and a file nested too deeply for
    the JSON parser (RecursionError before) are skipped by name."""
    calls = tmp_path / "out"
    calls.mkdir()
    (calls / "c1.json").write_text(json.dumps(_transcript("c1", [("agent", "Hello", 0.0)])))
    not_objects = {**_transcript("c2", [("agent", "Hi", 0.0)]), "entities": ["MONEY"]}
    (calls / "c2.json").write_text(json.dumps(not_objects))
    (calls / "c3.json").write_text("[" * 100_000)
    outcomes = tmp_path / "crm.csv"
    outcomes.write_text("call_id,success\nc1,true\nc2,true\nc3,false\n")
    report = import_transcripts(calls, outcomes, tenant="acme")
    assert [c.id for c in report.conversations] == ["c1"]
    problems = {issue.where: issue.message for issue in report.issues}
    assert set(problems) == {"c2.json", "c3.json"}
    assert "nested too deeply" in problems["c3.json"]


def test_readme_transcripts_example_imports_the_tenant_it_then_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's `voice data import transcripts ...` line, run as written (in a folder holding
    out/ and crm_export.csv without a tenant column), writes the tenant its
    `voice train --data data/acme.jsonl --tenant ...` line trains; without --tenant the
    conversations were 'default' and training found none."""
    import shlex

    from click.testing import CliRunner

    from suggest.data.format import read_conversations
    from voice.cli import cli

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    commands = [
        shlex.split(line, comments=True)
        for line in readme.splitlines()
        if line.startswith(".venv/bin/voice ")
    ]
    imports = [c for c in commands if c[:4] == [".venv/bin/voice", "data", "import", "transcripts"]]
    trains = [
        c for c in commands if c[:2] == [".venv/bin/voice", "train"] and "data/acme.jsonl" in c
    ]
    assert len(imports) == 1 and len(trains) == 1
    monkeypatch.chdir(tmp_path)
    Path("out").mkdir()
    Path("out/c1.json").write_text(json.dumps(_transcript("c1", [("agent", "Hello", 0.0)])))
    Path("crm_export.csv").write_text("call_id,success,value,agent_id\nc1,true,,a1\n")
    result = CliRunner().invoke(cli, imports[0][1:])
    assert result.exit_code == 0, result.output
    trained = trains[0][trains[0].index("--tenant") + 1]
    out = Path(imports[0][imports[0].index("--out") + 1])
    assert {c.tenant for c in read_conversations(out).conversations} == {trained}


def test_outcome_rows_that_disagree_leave_the_call_out_and_a_repeat_is_harmless(
    tmp_path: Path,
) -> None:
    """A CRM export with a call on two rows that differ (won, then lost) kept the last row, as
    if it were the truth; the header's case and spaces ("Call_ID, Success") refused the file."""
    calls = tmp_path / "out"
    (calls / "march").mkdir(parents=True)
    for call in ("c1", "c2", "c3"):
        (calls / f"{call}.json").write_text(json.dumps(_transcript(call, [("agent", "Hi", 0.0)])))
    copy = _transcript("c3", [("agent", "Hello again", 0.0)])  # one call transcribed twice
    (calls / "march" / "c3.json").write_text(json.dumps(copy))
    outcomes = tmp_path / "crm.csv"
    outcomes.write_text(
        "Call_ID, Success ,Value\nc1,won,10\nc2,yes,\nc1,lost,0\nc2,yes,\nc3,no,\n"
    )
    report = import_transcripts(calls, outcomes, tenant="acme")
    assert [(c.id, c.outcome.success) for c in report.conversations] == [
        ("c2", True),
        ("c3", False),
    ]
    assert [str(i) for i in report.issues] == [
        "crm.csv line 4: call 'c1' differs from line 2; the call is left out",
        "c1.json: call 'c1' has no row in crm.csv to use",
        "march/c3.json: call 'c3' was already imported from c3.json",
    ]


def test_outcome_rows_that_match_no_transcript_are_counted_in_the_notes(tmp_path: Path) -> None:
    """A CRM export of 5 calls against 1 transcript imported 1 conversation and said nothing
    about the other 4 (a wrong folder or call-id format looked like a small tenant)."""
    calls = tmp_path / "out"
    calls.mkdir()
    (calls / "c1.json").write_text(json.dumps(_transcript("c1", [("agent", "Hello", 0.0)])))
    (calls / "c2.json").write_text("{not json")  # reported as an issue, not as unmatched
    outcomes = tmp_path / "crm.csv"
    outcomes.write_text("call_id,success\nc1,true\nc2,true\nCALL-3,false\nCALL-4,true\nCALL-5,no\n")
    report = import_transcripts(calls, outcomes, tenant="acme")
    assert [c.id for c in report.conversations] == ["c1"]
    unmatched = [note for note in report.notes if "match no transcript" in note]
    assert len(unmatched) == 1 and unmatched[0].startswith("3 rows of crm.csv")
    assert "'CALL-3', 'CALL-4', 'CALL-5'" in unmatched[0]
