"""The dialogue-set importers on damaged copies of the real sets: a file that is not UTF-8 is a
one-line error, a byte-order mark is read past, and rows that would write a wrong or unreadable
conversation are reported instead: a donation that is not a finite number (NaN was written as
invalid JSON, inf counted as a success), a second persuadee row that disagrees (it silently
replaced the donation), and a CaSiNo dialogue seen twice (the release's casino.json holds every
dialogue of its split files; both in one folder wrote each id twice)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from suggest.data.format import read_conversations, write_conversations
from suggest.data.importers import import_casino, import_dealornodeal, import_persuasionforgood
from suggest.errors import DataFormatError

pytestmark = pytest.mark.data

PFG_DIALOGUES = 814


@pytest.fixture
def pfg(shared_data: Path, tmp_path: Path) -> Path:
    """A writable copy of PersuasionForGood's two CSV files."""
    copy = tmp_path / "pfg"
    copy.mkdir()
    for name in ("full_dialog.csv", "full_info.csv"):
        shutil.copy(shared_data / "dialogues" / "persuasionforgood" / name, copy / name)
    return copy


def _info_lines(pfg: Path) -> list[str]:
    return (pfg / "full_info.csv").read_text(encoding="utf-8").splitlines(keepends=True)


def _persuadee_lines(lines: list[str]) -> list[int]:
    """Indices of persuadee rows (B4 = 1), whose B6 is the donation."""
    return [i for i, line in enumerate(lines) if i and line.split(",")[2] == "1"]


def _with_donation(line: str, donation: str) -> str:
    fields = line.split(",")
    fields[3] = donation
    return ",".join(fields)


def test_a_byte_order_mark_keeps_every_dialogue(pfg: Path) -> None:
    """Excel's "CSV UTF-8" BOM turned the header B2 into "\\ufeffB2": every row was bad."""
    for name in ("full_dialog.csv", "full_info.csv"):
        (pfg / name).write_text((pfg / name).read_text(encoding="utf-8"), encoding="utf-8-sig")
    report = import_persuasionforgood(pfg)
    assert report.issues == [] and len(report.conversations) == PFG_DIALOGUES


@pytest.mark.parametrize("name", ["full_dialog.csv", "full_info.csv"])
def test_a_persuasionforgood_file_that_is_not_utf8_says_so(pfg: Path, name: str) -> None:
    path = pfg / name
    path.write_bytes(path.read_bytes() + "\n20180904-045349_715_live,caf\xe9,0,1,\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"full_.*\.csv is not UTF-8 text \(.*\) \(re-save it as UTF-8\)$"):
        import_persuasionforgood(pfg)


def test_dealornodeal_that_is_not_utf8_says_so(shared_data: Path, tmp_path: Path) -> None:
    source = tmp_path / "dond"
    source.mkdir()
    lines = (shared_data / "dialogues" / "dealornodeal" / "data.txt").read_bytes().splitlines(keepends=True)
    (source / "data.txt").write_bytes(b"".join(lines[:10]) + "YOU: caf\xe9 <eos>\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"data\.txt is not UTF-8 text .*re-save it as UTF-8"):
        import_dealornodeal(source)


def test_a_donation_that_is_not_a_finite_number_is_a_bad_row(pfg: Path, tmp_path: Path) -> None:
    lines = _info_lines(pfg)
    rows = _persuadee_lines(lines)
    for index, donation in zip(rows[:3], ("nan", "inf", "-inf"), strict=True):
        lines[index] = _with_donation(lines[index], donation)
    (pfg / "full_info.csv").write_text("".join(lines), encoding="utf-8")
    report = import_persuasionforgood(pfg)
    bad = {i.where: i.message for i in report.issues if "not a finite number" in i.message}
    assert sorted(bad) == [f"full_info.csv line {i + 1}" for i in rows[:3]]
    assert len(report.conversations) == PFG_DIALOGUES - 3
    out = tmp_path / "pfg.jsonl"
    write_conversations(out, report.conversations)
    back = read_conversations(out)  # NaN was written as `"value": NaN`, which this refused
    assert back.issues == [] and len(back.conversations) == PFG_DIALOGUES - 3


def test_a_second_persuadee_row_that_disagrees_leaves_the_dialogue_out(pfg: Path) -> None:
    lines = _info_lines(pfg)
    won = next(i for i in _persuadee_lines(lines) if float(lines[i].split(",")[3]) > 0)
    first = next(i for i in _persuadee_lines(lines) if i != won)
    dialogue = lines[won].split(",")[0]
    lines += [_with_donation(lines[won], "0"), lines[first]]  # a conflict, and an exact repeat
    (pfg / "full_info.csv").write_text("".join(lines), encoding="utf-8")
    report = import_persuasionforgood(pfg)
    assert [(i.where, i.message) for i in report.issues] == [(
        f"full_info.csv line {len(lines) - 1}",
        f"dialogue {dialogue}: persuadee donation B6 0.0 differs from line {won + 1} "
        f"({float(lines[won].split(',')[3])!r}); the dialogue is left out",
    )]
    ids = {c.id for c in report.conversations}
    assert dialogue not in ids and lines[first].split(",")[0] in ids  # the won dialogue is not made lost
    assert len(report.conversations) == PFG_DIALOGUES - 1


def test_a_casino_dialogue_seen_twice_is_reported_and_imported_once(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "dialogues" / "casino"
    folder = tmp_path / "casino"
    shutil.copytree(source, folder)
    train = json.loads((source / "casino_train.json").read_text(encoding="utf-8"))
    (folder / "casino.json").write_text(json.dumps(train[:5]), encoding="utf-8")  # the release's full file, cut
    report = import_casino(folder)
    assert len(report.conversations) == 930
    assert [i.where for i in report.issues] == [f"casino_train.json item {n}" for n in range(1, 6)]
    assert all("is already imported from casino.json item" in i.message for i in report.issues)
    out = tmp_path / "casino.jsonl"
    write_conversations(out, report.conversations)
    assert read_conversations(out).issues == []  # `voice data check` refused its duplicate ids
