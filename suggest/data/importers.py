"""Importers of the public dialogue sets into conversation JSONL v1.

Who is the agent and what counts as success, per set (documented in docs/suggestion-model.md):

- PersuasionForGood: the persuader is the agent; success = the persuadee's actual donation
  (``B6``) is above 0; ``value`` = donation clipped to the task's $0-2 range (outliers reach 700).
- CaSiNo: the participant who sends the first message is the agent (the opener, as in a call);
  success = a deal was accepted (no walk-away) and the agent scored at least as many points as
  the partner; ``value`` = the agent's points. ``context`` = the agent's private item priorities
  (``priority_food``/``priority_water``/``priority_firewood``: High 2, Medium 1, Low 0).
- Deal or No Deal: each dialogue is stored twice, once per side; the side that speaks first is
  the agent and the other copy is skipped. Success = agreement and the agent's reward is at least
  the partner's; ``value`` = the agent's reward (0 without agreement). ``context`` = the agent's
  item counts and private values (``count_book``, ``value_book``, ... hat, ball). CC BY-NC 4.0:
  evaluation only, marked ``meta.license`` so training refuses it unless told it is internal.

Source files are UTF-8 (a byte-order mark, as Excel writes, is dropped); another encoding stops
the import with an error that says so. A bad row or dialogue is reported in ``issues`` (with its
line or item) and the others are imported: a PersuasionForGood donation that is not a finite
number, two rows of one dialogue's persuadee (or persuader) that differ (the dialogue is left
out: which one is right is unknown), a CaSiNo ``dialogue_id`` seen before (the first is kept).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from suggest.data.format import ImportReport, RowIssue
from suggest.errors import DataFormatError
from suggest.types import Conversation, Outcome, Role, Turn

NONCOMMERCIAL_LICENSE = "CC-BY-NC-4.0"
PFG_VALUE_RANGE = (0.0, 2.0)
CASINO_DEAL_MESSAGES = frozenset({"Submit-Deal", "Accept-Deal", "Reject-Deal", "Walk-Away"})
CASINO_PRIORITY = {"High": 2.0, "Medium": 1.0, "Low": 0.0}
"""CaSiNo's ``value2issue`` levels as numbers (the task scores them 5, 4 and 3 points per item)."""
DOND_ITEMS = ("book", "hat", "ball")
"""Deal or No Deal's ``item0``..``item2`` (the order of the counts/values in every line)."""
_MALFORMED_ROW = (KeyError, TypeError, ValueError, IndexError, AttributeError)
"""What reading one malformed dialogue raises (a missing key, a null or a list where an object
belongs, a short list): it becomes a RowIssue, and the other dialogues are still imported."""


def import_persuasionforgood(src: Path, tenant: str = "persuasionforgood") -> ImportReport:
    """Read ``full_dialog.csv`` and ``full_info.csv`` of PersuasionForGood."""
    dialog_csv, info_csv = _need(src, "full_dialog.csv"), _need(src, "full_info.csv")
    report = ImportReport()
    info, conflicted = _pfg_info(info_csv, report)
    rows: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)
    first_line: dict[str, int] = {}
    reader = csv.DictReader(utf8_lines(dialog_csv))
    for row in reader:
        line = reader.line_num
        try:
            dialogue, turn, role, text = (
                row["B2"],
                int(row["Turn"]),
                int(row["B4"]),
                row["Unit"],
            )
            if role not in (0, 1) or not dialogue or text is None:
                raise ValueError(f"role B4={row['B4']!r} must be 0 or 1 and B2, Unit present")
        except (KeyError, TypeError, ValueError) as error:
            report.issues.append(RowIssue(f"{dialog_csv.name} line {line}", f"bad row ({error})"))
            continue
        if not text.strip():
            report.issues.append(RowIssue(f"{dialog_csv.name} line {line}", "empty utterance"))
            continue
        first_line.setdefault(dialogue, line)
        rows[dialogue].append((turn, role, line, text.strip()))
    for dialogue, utterances in rows.items():
        if dialogue in conflicted:
            continue  # reported where the second row is
        if dialogue not in info or info[dialogue][1] is None:
            where = f"{dialog_csv.name} line {first_line[dialogue]}"
            report.issues.append(
                RowIssue(where, f"dialogue {dialogue} has no persuadee donation in {info_csv.name}")
            )
            continue
        persuader, donation = info[dialogue]
        assert donation is not None  # checked above
        utterances.sort(key=lambda u: (u[0], u[1], u[2]))  # turn, then persuader (0) first
        low, high = PFG_VALUE_RANGE
        report.conversations.append(
            Conversation(
                id=dialogue,
                tenant=tenant,
                agent_id=persuader,
                outcome=Outcome(success=donation > 0, value=min(max(donation, low), high)),
                turns=tuple(
                    Turn(role="agent" if r == 0 else "customer", text=t)
                    for _, r, _, t in utterances
                ),
                meta={"source": "persuasionforgood", "license": "Apache-2.0"},
            )
        )
    return report


def _pfg_info(
    info_csv: Path, report: ImportReport
) -> tuple[dict[str, tuple[str | None, float | None]], set[str]]:
    """dialogue id -> (persuader user id, persuadee donation); and the dialogues left out because
    two rows of one role differ (reported: which row is right is unknown)."""
    values: dict[tuple[str, int], tuple[int, str | float | None]] = {}  # (dialogue, role) -> (line, value)
    conflicted: set[str] = set()
    reader = csv.DictReader(utf8_lines(info_csv))
    for row in reader:
        where = f"{info_csv.name} line {reader.line_num}"
        try:
            dialogue, role = row["B2"], int(row["B4"])
            value = _pfg_info_value(row, role)
        except (KeyError, TypeError, ValueError) as error:
            report.issues.append(RowIssue(where, f"bad row ({error})"))
            continue
        if (dialogue, role) not in values:
            values[(dialogue, role)] = (reader.line_num, value)
        elif values[(dialogue, role)][1] != value and dialogue not in conflicted:  # an exact repeat is harmless
            conflicted.add(dialogue)
            first, before = values[(dialogue, role)]
            field = "persuadee donation B6" if role else "persuader B3"
            report.issues.append(RowIssue(where, f"dialogue {dialogue}: {field} {value!r} differs from line "
                                                 f"{first} ({before!r}); the dialogue is left out"))
    info: dict[str, tuple[str | None, float | None]] = {}
    for dialogue in dict.fromkeys(d for d, _ in values):
        persuader = values.get((dialogue, 0), (0, None))[1]
        donation = values.get((dialogue, 1), (0, None))[1]
        info[dialogue] = (str(persuader) if persuader is not None else None,
                          float(donation) if donation is not None else None)
    return info, conflicted


def _pfg_info_value(row: dict[str, str | None], role: int) -> str | float | None:
    """The persuader's user id (role 0) or the persuadee's donation (role 1) of a full_info row.

    Raises:
        ValueError: the role is not 0 or 1, or the donation is not a finite number (NaN would be
            written as invalid JSON, inf would count as a success).
    """
    if role == 0:
        return row["B3"] or None
    if role != 1:
        raise ValueError(f"role B4={role} must be 0 or 1")
    donation = float(row["B6"])  # type: ignore[arg-type]  # None: TypeError, reported as a bad row
    if not math.isfinite(donation):
        raise ValueError(f"donation B6={row['B6']!r} is not a finite number")
    return donation


def import_casino(src: Path, tenant: str = "casino") -> ImportReport:
    """Read every ``casino*.json`` in ``src`` (the train and valid splits)."""
    files = sorted(src.glob("casino*.json"))
    if not files:
        raise DataFormatError(
            f"no casino*.json in {src}", hint="point at shared/data/dialogues/casino"
        )
    report = ImportReport()
    first: dict[str, str] = {}  # conversation id -> where it was read
    for path in files:
        for index, item in enumerate(_json_list(path)):
            where = f"{path.name} item {index + 1}"
            try:
                conversation = _casino_conversation(item, tenant)
            except _MALFORMED_ROW as error:
                report.issues.append(RowIssue(where, f"bad dialogue ({error!r})"))
                continue
            if conversation.id in first:  # e.g. the release's casino.json beside its split files
                report.issues.append(RowIssue(where, f"dialogue_id {item['dialogue_id']!r} is already imported "
                                                     f"from {first[conversation.id]} (the first is kept)"))
                continue
            first[conversation.id] = where
            report.conversations.append(conversation)
    return report


def _casino_conversation(item: dict[str, Any], tenant: str) -> Conversation:
    logs = item["chat_logs"]
    for number, log in enumerate(logs, start=1):
        if not isinstance(log.get("text"), str):
            raise ValueError(f"chat_logs[{number - 1}].text is {log.get('text')!r}, not a string")
    opener = logs[0]["id"]
    partner = next((p for p in item["participant_info"] if p != opener), None)
    if partner is None:
        raise ValueError(f"participant_info names no partner of the opener {opener!r}")
    turns = tuple(
        Turn(role="agent" if log["id"] == opener else "customer", text=log["text"].strip())
        for log in logs
        if log["text"] not in CASINO_DEAL_MESSAGES and log["text"].strip()
    )
    if not turns:
        raise ValueError("no chat messages")
    deal = any(log["text"] == "Accept-Deal" for log in logs)
    points = int(item["participant_info"][opener]["outcomes"]["points_scored"])
    partner_points = int(item["participant_info"][partner]["outcomes"]["points_scored"])
    return Conversation(
        id=f"casino-{item['dialogue_id']}",
        tenant=tenant,
        agent_id=None,  # CaSiNo does not identify workers across dialogues
        outcome=Outcome(success=deal and points >= partner_points, value=float(points)),
        turns=turns,
        meta={"source": "casino", "license": "CC-BY-4.0"},
        context=_casino_priorities(item["participant_info"][opener]["value2issue"]),
    )


def _casino_priorities(value2issue: dict[str, str]) -> dict[str, float]:
    """The agent's private priorities: ``priority_<issue>`` = 2 (High), 1 (Medium), 0 (Low)."""
    context = {
        f"priority_{issue.lower()}": CASINO_PRIORITY[level] for level, issue in value2issue.items()
    }
    if len(context) != len(CASINO_PRIORITY):
        raise ValueError(f"value2issue {value2issue!r} does not rank three distinct issues")
    return context


_DOND_LINE = re.compile(
    r"^(?P<mine>(?:\d+ ){6})(?P<dialogue>.*?)<selection>(?P<selection>.*?)<eos>\s*"
    r"reward=(?P<reward>\d+|no agreement|disconnect)\s*(?P<agree>agree|disagree)?\s*"
    r"(?P<partner>(?:\d+\s*){6})$"
)
_DOND_UTTERANCE = re.compile(r"(YOU|THEM):\s*(.*?)\s*<eos>")
_DOND_SELECTED = re.compile(r"item\d+=\d+")


def import_dealornodeal(src: Path, tenant: str = "dealornodeal") -> ImportReport:
    """Read ``data.txt`` of Deal or No Deal (one line per dialogue per side)."""
    path = _need(src, "data.txt")
    report = ImportReport()
    seen: set[str] = set()
    duplicates = 0
    # A line whose first speaker is THEM is skipped: the agent is the first speaker, so that line
    # is the partner's copy. Whether that copy is in the file is known only at the end.
    first_speakers: set[tuple[str, ...]] = set()
    second_speakers: Counter[tuple[str, ...]] = Counter()
    for number, line in enumerate(utf8_lines(path), start=1):
        if not line.strip():
            continue
        try:
            conversation = _dond_conversation(line.strip(), tenant)
        except _MALFORMED_ROW as error:
            report.issues.append(RowIssue(f"{path.name} line {number}", str(error)))
            continue
        texts = _dond_texts(line.strip())
        if conversation is None:
            second_speakers[texts] += 1
            continue
        first_speakers.add(texts)
        if conversation.id in seen:
            duplicates += 1
        else:
            seen.add(conversation.id)
            report.conversations.append(conversation)
    report.notes.extend(_dond_side_notes(first_speakers, second_speakers))
    report.notes.append(f"{duplicates} duplicate dialogues skipped")
    report.notes.append(
        "license CC BY-NC 4.0: internal evaluation only, never ship a model trained on it"
    )
    return report


def _dond_conversation(line: str, tenant: str) -> Conversation | None:
    """The conversation of one line, or None when the line is the partner's copy."""
    match = _DOND_LINE.match(line)
    if match is None:
        raise ValueError(
            "not '<6 ints> YOU:/THEM: ... <selection> ... reward=R agree|disagree <6 ints>'"
        )
    utterances = _DOND_UTTERANCE.findall(match["dialogue"])
    if not utterances:
        raise ValueError("no YOU:/THEM: utterances before <selection>")
    if utterances[0][0] != "YOU":
        return None
    mine = [int(x) for x in match["mine"].split()]
    partner_values = [int(x) for x in match["partner"].split()][1::2]
    agreed = match["reward"].isdigit() and match["agree"] == "agree"
    reward = int(match["reward"]) if agreed else 0
    partner_reward = (
        _dond_partner_reward(mine[0::2], partner_values, match["selection"]) if agreed else 0
    )
    turns = tuple(Turn(role=_dond_role(who), text=text) for who, text in utterances if text)
    canonical = "\n".join(f"{t.role}:{t.text}" for t in turns) + match["mine"] + match["partner"]
    return Conversation(
        id="dond-" + hashlib.sha1(canonical.encode()).hexdigest()[:16],
        tenant=tenant,
        agent_id=None,
        outcome=Outcome(success=agreed and reward >= partner_reward, value=float(reward)),
        turns=turns,
        meta={"source": "dealornodeal", "license": NONCOMMERCIAL_LICENSE},
        context={
            f"{name}_{item}": float(number)
            for i, item in enumerate(DOND_ITEMS)
            for name, number in zip(("count", "value"), mine[2 * i : 2 * i + 2], strict=True)
        },
    )


def _dond_texts(line: str) -> tuple[str, ...]:
    """What was said in a line's dialogue, in order: the same for both sides' copies."""
    match = _DOND_LINE.match(line)
    return tuple(text for _, text in _DOND_UTTERANCE.findall(match["dialogue"])) if match else ()


def _dond_side_notes(
    first_speakers: set[tuple[str, ...]], second_speakers: Counter[tuple[str, ...]]
) -> list[str]:
    """Notes on the THEM-first lines: partner's copies of imported dialogues, and dialogues whose
    first speaker's copy is missing from the file (never imported: worth saying)."""
    unpaired = sum(n for texts, n in second_speakers.items() if texts not in first_speakers)
    paired = sum(second_speakers.values()) - unpaired
    notes = [f"{paired} lines skipped: the same dialogue seen from the partner's side"]
    if unpaired:
        notes.append(
            f"{unpaired} lines skipped whose dialogue is in the file only from the side that "
            "speaks second (the first speaker's copy is missing): those dialogues are not "
            "imported, since the first speaker is taken as the agent"
        )
    return notes


def _dond_role(who: str) -> Role:
    return "agent" if who == "YOU" else "customer"


def _dond_partner_reward(counts: list[int], partner_values: list[int], selection: str) -> int:
    """The partner gets what the agent did not select: sum((count - mine) * partner value)."""
    items = selection.split()
    if not all(_DOND_SELECTED.fullmatch(item) for item in items):
        raise ValueError(f"selection {selection.strip()!r} is not 'item0=N item1=N item2=N'")
    taken = [int(item.split("=")[1]) for item in items]
    if len(taken) != len(counts):
        raise ValueError(f"selection {selection.strip()!r} does not list {len(counts)} items")
    return sum((c - t) * v for c, t, v in zip(counts, taken, partner_values, strict=True))


def utf8_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, line ends kept (``csv.reader`` reads them as a file's);
    a byte-order mark (Excel's "CSV UTF-8", Notepad) is dropped.

    Raises:
        DataFormatError: the file is not UTF-8 (raised when the first bad line is reached).
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from handle
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path} is not UTF-8 text ({error.reason})", hint="re-save it as UTF-8") from error


def _need(src: Path, name: str) -> Path:
    path = src / name
    if not path.is_file():
        raise DataFormatError(f"{path} not found", hint=f"SRC_DIR must contain {name}")
    return path


def _json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path} is not UTF-8 text ({error.reason})", hint="re-save it as UTF-8") from error
    except json.JSONDecodeError as error:
        raise DataFormatError(
            f"{path} is not JSON ({error})", hint="expected a JSON list of dialogues"
        ) from error
    except RecursionError as error:  # json's parser recurses once per nesting level
        raise DataFormatError(
            f"{path} is not JSON: nested too deeply", hint="expected a JSON list of dialogues"
        ) from error
    if not isinstance(data, list):
        raise DataFormatError(
            f"{path} holds a {type(data).__name__}", hint="expected a JSON list of dialogues"
        )
    return data
