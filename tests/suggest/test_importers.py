"""Importers of the shared dialogue sets: who is the agent, what success means, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suggest.data.importers import (
    CASINO_DEAL_MESSAGES,
    NONCOMMERCIAL_LICENSE,
    import_casino,
    import_dealornodeal,
    import_persuasionforgood,
)
from suggest.errors import LicenseError
from suggest.train.config import TrainConfig
from suggest.train.pipeline import train

pytestmark = pytest.mark.data


def test_persuasionforgood_persuader_is_the_agent_and_donation_is_success(
    shared_data: Path,
) -> None:
    report = import_persuasionforgood(shared_data / "dialogues" / "persuasionforgood")
    assert report.issues == []
    conversations = report.conversations
    assert len(conversations) == 814
    assert sum(c.outcome.success for c in conversations) == 447  # B6 > 0, as the data README says
    assert all(
        0.0 <= c.outcome.value <= 2.0 for c in conversations
    )  # outliers up to 700 are clipped
    assert all(c.turns[0].role == "agent" for c in conversations)  # the persuader opens
    assert all((c.outcome.value > 0) == c.outcome.success for c in conversations)
    assert sum(len(c.turns) for c in conversations) == 16736
    assert all(c.agent_id and c.agent_id.startswith("user_") for c in conversations)


def test_casino_opener_is_the_agent_and_deal_messages_are_outcomes(shared_data: Path) -> None:
    source = shared_data / "dialogues" / "casino"
    report = import_casino(source)
    assert report.issues == [] and len(report.conversations) == 930
    raw = {
        f"casino-{d['dialogue_id']}": d
        for f in sorted(source.glob("casino*.json"))
        for d in json.loads(f.read_text())
    }
    for conversation in report.conversations[:200]:
        dialogue = raw[conversation.id]
        opener = dialogue["chat_logs"][0]["id"]
        partner = next(p for p in dialogue["participant_info"] if p != opener)
        points = dialogue["participant_info"][opener]["outcomes"]["points_scored"]
        deal = any(m["text"] == "Accept-Deal" for m in dialogue["chat_logs"])
        expected = (
            deal and points >= dialogue["participant_info"][partner]["outcomes"]["points_scored"]
        )
        assert conversation.outcome.success == expected and conversation.outcome.value == points
        assert conversation.turns[0].role == "agent"
        assert not any(t.text in CASINO_DEAL_MESSAGES for t in conversation.turns)


def test_dealornodeal_keeps_one_side_and_is_marked_noncommercial(
    shared_data: Path, tmp_path: Path
) -> None:
    report = import_dealornodeal(shared_data / "dialogues" / "dealornodeal")
    conversations = report.conversations
    assert report.issues == []
    assert 5000 < len(conversations) < 6200  # about half of the 12,234 lines
    assert len({c.id for c in conversations}) == len(conversations)
    assert all(c.turns[0].role == "agent" for c in conversations)
    assert all(c.meta["license"] == NONCOMMERCIAL_LICENSE for c in conversations)
    assert all(not c.outcome.success for c in conversations if c.outcome.value == 0)
    assert any("partner's side" in note for note in report.notes)
    with pytest.raises(LicenseError, match="allow-noncommercial"):
        train(
            conversations,
            TrainConfig(tenant="dealornodeal"),
            tmp_path / "m",
            cache_dir=tmp_path / "cache",
        )


def test_casino_context_is_the_agents_own_priorities(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "dialogues" / "casino" / "casino_valid.json"
    dialogues = json.loads(source.read_text())[:25]
    (tmp_path / "casino_slice.json").write_text(json.dumps(dialogues))
    report = import_casino(tmp_path)
    assert report.issues == [] and len(report.conversations) == len(dialogues)
    levels = {"High": 2.0, "Medium": 1.0, "Low": 0.0}
    for conversation, dialogue in zip(report.conversations, dialogues, strict=True):
        opener = dialogue["chat_logs"][0]["id"]
        ranked = dialogue["participant_info"][opener]["value2issue"]
        expected = {f"priority_{issue.lower()}": levels[level] for level, issue in ranked.items()}
        assert conversation.context == expected
        assert sorted(conversation.context.values()) == [0.0, 1.0, 2.0]
    assert any(  # the partner's priorities differ somewhere, so the opener's were taken
        d["participant_info"][d["chat_logs"][0]["id"]]["value2issue"]
        != next(v for p, v in d["participant_info"].items() if p != d["chat_logs"][0]["id"])[
            "value2issue"
        ]
        for d in dialogues
    )


def test_dealornodeal_context_is_the_agents_counts_and_values(
    shared_data: Path, tmp_path: Path
) -> None:
    lines = (shared_data / "dialogues" / "dealornodeal" / "data.txt").read_text().splitlines()[:40]
    (tmp_path / "data.txt").write_text("\n".join(lines) + "\n")
    report = import_dealornodeal(tmp_path)
    assert report.issues == [] and report.conversations
    agent_lines = [line for line in lines if line.split()[6] == "YOU:"]
    assert len(report.conversations) == len(agent_lines)
    for conversation, line in zip(report.conversations, agent_lines, strict=True):
        numbers = [float(x) for x in line.split()[:6]]
        assert conversation.context == {
            "count_book": numbers[0],
            "value_book": numbers[1],
            "count_hat": numbers[2],
            "value_hat": numbers[3],
            "count_ball": numbers[4],
            "value_ball": numbers[5],
        }
        # The agent's points without a deal would be sum(count * value): 10 in this task.
        assert sum(numbers[0::2][i] * numbers[1::2][i] for i in range(3)) == 10


def test_bad_csv_rows_are_reported_with_line_numbers(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "dialogues" / "persuasionforgood"
    lines = (source / "full_dialog.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    broken = tmp_path / "pfg"
    broken.mkdir()
    (broken / "full_info.csv").write_text(
        (source / "full_info.csv").read_text(encoding="utf-8"), encoding="utf-8"
    )
    lines[5] = "5,Some text,not-a-number,0,20180904-045349_715_live\n"
    lines[6] = '6,"   ",3,1,20180904-045349_715_live\n'
    (broken / "full_dialog.csv").write_text("".join(lines), encoding="utf-8")
    report = import_persuasionforgood(broken)
    assert [str(i).split(":")[0] for i in report.issues] == [
        "full_dialog.csv line 6",
        "full_dialog.csv line 7",
    ]
    assert len(report.conversations) == 814


def test_import_cli_writes_jsonl_and_prints_counts(shared_data: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from suggest.data.format import read_conversations
    from voice.cli import cli

    out = tmp_path / "casino.jsonl"
    source = shared_data / "dialogues" / "casino"
    result = CliRunner().invoke(
        cli, ["data", "import", "casino", str(source), "--out", str(out), "--tenant", "camp"]
    )
    assert result.exit_code == 0, result.output
    assert "930 conversations imported" in result.output
    back = read_conversations(out)
    assert len(back.conversations) == 930 and {c.tenant for c in back.conversations} == {"camp"}


def test_malformed_casino_dialogues_are_reported_and_the_rest_imported(
    shared_data: Path, tmp_path: Path
) -> None:
    """A null text (AttributeError before) and a one-participant dialogue (StopIteration
    before) each become an issue naming the item; the other dialogues are imported."""
    dialogues = json.loads(
        (shared_data / "dialogues" / "casino" / "casino_train.json").read_text(encoding="utf-8")
    )[:30]
    dialogues[3]["chat_logs"][2]["text"] = None
    opener = dialogues[7]["chat_logs"][0]["id"]
    dialogues[7]["participant_info"] = {opener: dialogues[7]["participant_info"][opener]}
    broken = tmp_path / "casino"
    broken.mkdir()
    (broken / "casino_train.json").write_text(json.dumps(dialogues), encoding="utf-8")
    report = import_casino(broken)
    problems = {issue.where: issue.message for issue in report.issues}
    assert set(problems) == {"casino_train.json item 4", "casino_train.json item 8"}
    assert "chat_logs[2].text is None" in problems["casino_train.json item 4"]
    assert "no partner" in problems["casino_train.json item 8"]
    assert len(report.conversations) == 28
    assert (
        report.summary().startswith("28 conversations imported")
        and "2 rows skipped" in report.summary()
    )


def test_dealornodeal_selection_without_equals_is_reported_with_its_line(
    shared_data: Path, tmp_path: Path
) -> None:
    """``item1`` instead of ``item1=4`` in an agreed dialogue (IndexError before)."""
    lines = (
        (shared_data / "dialogues" / "dealornodeal" / "data.txt")
        .read_text(encoding="utf-8")
        .splitlines(keepends=True)[:40]
    )
    assert "item1=4" in lines[0] and " agree " in lines[0]  # the agent's side, agreed
    lines[0] = lines[0].replace("item1=4", "item1")
    broken = tmp_path / "dond"
    broken.mkdir()
    (broken / "data.txt").write_text("".join(lines), encoding="utf-8")
    report = import_dealornodeal(broken)
    assert [issue.where for issue in report.issues] == ["data.txt line 1"]
    assert "item1" in report.issues[0].message
    whole = import_dealornodeal(shared_data / "dialogues" / "dealornodeal")
    first_40 = {c.id for c in whole.conversations} & {c.id for c in report.conversations}
    assert len(report.conversations) >= 15 and first_40 == {c.id for c in report.conversations}


def test_dealornodeal_says_which_dialogues_exist_only_from_the_second_speaker(
    shared_data: Path, tmp_path: Path
) -> None:
    """A THEM-first line was always counted as "the partner's side" of an imported dialogue,
    also when the file holds no YOU-first copy of it (144 dialogues of data.txt)."""
    import re

    def _dond_texts(line: str) -> list[str]:  # what was said: the same in both sides' copies
        return [text for _, text in re.findall(r"(YOU|THEM):\s*(.*?)\s*<eos>", line)]

    lines = (shared_data / "dialogues" / "dealornodeal" / "data.txt").read_text().splitlines()[:40]
    first = [line for line in lines if line.split()[6] == "YOU:"]
    second = [line for line in lines if line.split()[6] == "THEM:"]
    paired = next(s for s in second if any(_dond_texts(f) == _dond_texts(s) for f in first))
    kept = [line for line in lines if not (line in first and _dond_texts(line) == _dond_texts(paired))]

    def counts(text_lines: list[str]) -> tuple[int, int]:
        (tmp_path / "data.txt").write_text("\n".join(text_lines) + "\n")
        notes = import_dealornodeal(tmp_path).notes
        partner = next(n for n in notes if "the same dialogue seen from the partner's side" in n)
        alone = [n for n in notes if "only from the side that speaks second" in n]
        return int(partner.split()[0]), int(alone[0].split()[0]) if alone else 0

    (partner_before, alone_before), (partner_after, alone_after) = counts(lines), counts(kept)
    assert (partner_after, alone_after) == (partner_before - 1, alone_before + 1)
    whole = import_dealornodeal(shared_data / "dialogues" / "dealornodeal")
    assert any(n.startswith("144 lines skipped whose dialogue") for n in whole.notes)
