"""Conversation JSONL v1: round trip, malformed rows, schema versions, the fixed split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from suggest.data.format import data_hash, read_conversations, write_conversations
from suggest.data.split import HELDOUT_FRACTION, is_heldout, select, split_counts
from suggest.errors import DataFormatError
from suggest.types import Conversation, Outcome, Turn

pytestmark = pytest.mark.unit


def _conversation(index: int, success: bool = True) -> Conversation:
    return Conversation(
        id=f"c{index}",
        tenant="acme",
        agent_id="a1",
        outcome=Outcome(success=success, value=1.5 if success else 0.0),
        turns=(
            Turn("agent", "Hello, how can I help?", 0.0, 1.2),
            Turn("customer", "I want to cancel my plan."),
        ),
        meta={"source": "test"},
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    conversations = [_conversation(i, success=i % 2 == 0) for i in range(5)]
    path = tmp_path / "c.jsonl"
    assert write_conversations(path, conversations) == 5
    report = read_conversations(path)
    assert report.conversations == conversations
    assert report.issues == []
    first = json.loads(path.read_text().splitlines()[0])
    assert first["schema"] == "conversation/1" and first["turns"][0]["start"] == 0.0


def test_malformed_rows_are_reported_with_line_numbers_and_the_rest_imported(
    tmp_path: Path,
) -> None:
    good = json.dumps(
        {
            "id": "ok1",
            "tenant": "t",
            "outcome": {"success": True},
            "turns": [{"role": "agent", "text": "hi"}],
        }
    )
    lines = [
        good,
        "{not json",
        json.dumps(
            {
                "id": "x",
                "tenant": "t",
                "outcome": {"success": "yes"},
                "turns": [{"role": "agent", "text": "hi"}],
            }
        ),
        json.dumps(
            {
                "id": "y",
                "tenant": "t",
                "outcome": {"success": True},
                "turns": [{"role": "bot", "text": "hi"}],
            }
        ),
        json.dumps({"id": "z", "tenant": "t", "outcome": {"success": True}, "turns": []}),
        "",
        json.dumps(
            {
                "schema": "conversation/2",
                "id": "v2",
                "tenant": "t",
                "outcome": {"success": True},
                "turns": [{"role": "agent", "text": "a"}],
            }
        ),
        good.replace("ok1", "ok2"),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = read_conversations(path)
    assert [c.id for c in report.conversations] == ["ok1", "ok2"]
    where = {issue.where: issue.message for issue in report.issues}
    assert set(where) == {"line 2", "line 3", "line 4", "line 5", "line 7"}
    assert "not JSON" in where["line 2"]
    assert "outcome.success" in where["line 3"]
    assert "role" in where["line 4"]
    assert "turns" in where["line 5"]
    assert "unsupported schema" in where["line 7"]
    assert "2 conversations imported" in report.summary() and "5 rows skipped" in report.summary()


def test_context_round_trips_and_is_absent_from_lines_without_it(tmp_path: Path) -> None:
    plain = _conversation(0)
    with_context = dataclasses.replace(
        _conversation(1), context={"tier": 2.0, "campaign_id": 7.0, "churn_risk": 0.25}
    )
    path = tmp_path / "c.jsonl"
    write_conversations(path, [plain, with_context])
    report = read_conversations(path)
    assert report.conversations == [plain, with_context] and report.issues == []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert "context" not in lines[0]  # files and data hashes of context-free data are unchanged
    assert list(lines[1]["context"]) == ["campaign_id", "churn_risk", "tier"]  # sorted names
    assert lines[1]["schema"] == "conversation/1"  # an optional field, not a new major version
    assert data_hash([with_context]) != data_hash([dataclasses.replace(with_context, context={})])


def test_malformed_context_is_reported_with_its_line_number(tmp_path: Path) -> None:
    def line(index: int, context: object) -> str:  # ids unique per tenant, as the format says
        row = {"id": f"c{index}", "tenant": "t", "outcome": {"success": True}, "context": context}
        return json.dumps({**row, "turns": [{"role": "agent", "text": "hi"}]})

    contexts = [
        {"tier": 1},
        {"tier": "gold"},
        [1, 2],
        {"vip": True},
        {"tier": float("nan")},  # json.dumps writes NaN, json.loads reads it back
        {" ": 1},
        {"tier": 1.5},
    ]
    lines = [line(i, context) for i, context in enumerate(contexts)]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = read_conversations(path)
    assert [c.context for c in report.conversations] == [{"tier": 1.0}, {"tier": 1.5}]
    where = {issue.where: issue.message for issue in report.issues}
    assert set(where) == {"line 2", "line 3", "line 4", "line 5", "line 6"}
    assert "'context.tier' must be a finite number" in where["line 2"] and "gold" in where["line 2"]
    assert "'context' must be an object" in where["line 3"]
    assert "'context.vip'" in where["line 4"]  # booleans are not numbers
    assert "finite" in where["line 5"]
    assert "non-empty" in where["line 6"]


def test_missing_or_binary_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="does not exist"):
        read_conversations(tmp_path / "nope.jsonl")
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataFormatError, match="UTF-8"):
        read_conversations(binary)


def test_data_hash_depends_on_content_not_file() -> None:
    a = [_conversation(1), _conversation(2)]
    assert data_hash(a) == data_hash([_conversation(1), _conversation(2)])
    assert data_hash(a) != data_hash([_conversation(1), _conversation(3)])


def test_heldout_split_is_fixed_and_sized_as_documented() -> None:
    ids = [f"conv-{i}" for i in range(5000)]
    first = [is_heldout(i) for i in ids]
    assert first == [is_heldout(i) for i in ids]
    assert abs(sum(first) / len(ids) - HELDOUT_FRACTION) < 0.02
    conversations = [_conversation(i) for i in range(200)]
    counts = split_counts(conversations)
    assert counts["train"] + counts["test"] == 200
    assert {c.id for c in select(conversations, "test")}.isdisjoint(
        {c.id for c in select(conversations, "train")}
    )


def test_data_check_cli_lists_bad_lines_and_counts(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from voice.cli import cli

    path = tmp_path / "mixed.jsonl"
    write_conversations(path, [_conversation(i) for i in range(3)])
    with path.open("a") as out:
        out.write('{"id": "broken", "tenant": "acme"}\n')
    result = CliRunner().invoke(cli, ["data", "check", str(path)])
    assert result.exit_code == 1
    assert "line 4" in result.output and "3 valid conversations read" in result.output


def test_a_line_nested_too_deeply_is_reported_and_the_other_lines_read(tmp_path: Path) -> None:
    """json recurses once per bracket: 100,000 of them raised RecursionError, losing the file."""
    path = tmp_path / "nested.jsonl"
    write_conversations(path, [_conversation(i) for i in range(4)])
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(2, "[" * 100_000 + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    report = read_conversations(path)
    assert [c.id for c in report.conversations] == ["c0", "c1", "c2", "c3"]
    assert [str(issue) for issue in report.issues] == ["line 3: not JSON: nested too deeply"]


def test_train_cli_passes_the_policy_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import suggest.train.pipeline as pipeline
    from voice.cli import cli

    seen = {}

    def fake_train(conversations: object, config: object, target: object, **kwargs: object) -> None:
        seen["config"] = config
        raise SystemExit(0)  # stop before anything is written

    monkeypatch.setattr(pipeline, "train", fake_train)
    path = tmp_path / "c.jsonl"
    write_conversations(path, [_conversation(i) for i in range(3)])
    args = ["train", "--data", str(path), "--tenant", "acme", "--out", str(tmp_path / "m")]
    CliRunner().invoke(cli, [*args, "--beta", "0.5", "--advantage-lambda", "1"])
    assert (seen["config"].awr_temperature, seen["config"].awr_lambda) == (0.5, 1.0)
    CliRunner().invoke(cli, args)
    assert (seen["config"].awr_temperature, seen["config"].awr_lambda) == (1.0, 0.0)  # the defaults
    assert seen["config"].context  # call-start facts are used when the data has them
    CliRunner().invoke(cli, [*args, "--no-context"])
    assert not seen["config"].context
    bad = CliRunner().invoke(cli, [*args, "--advantage-lambda", "2"])
    assert bad.exit_code == 2 and "advantage-lambda" in bad.output


def test_a_repeated_id_of_a_tenant_is_a_bad_line_and_a_bom_is_not(tmp_path: Path) -> None:
    # Twice in training, a conversation's own outcome would leak into its cross-fitted baseline.
    first, conflicting = _conversation(1), _conversation(1, success=False)
    other_tenant = dataclasses.replace(_conversation(1), tenant="globex")
    path = tmp_path / "c.jsonl"
    write_conversations(path, [first, conflicting, other_tenant, _conversation(2)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as Excel or PowerShell save it
    report = read_conversations(path)
    assert report.conversations == [first, other_tenant, _conversation(2)]
    assert [str(i) for i in report.issues] == [
        "line 2: id 'c1' of tenant 'acme' is already on line 1 "
        "(ids are unique per tenant; the first is kept)"
    ]
