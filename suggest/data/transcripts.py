"""Import ``voice transcribe`` output plus a CRM outcomes CSV into conversation JSONL v1.

The transcript JSON is a documented file contract (schema 1.x, docs/transcript-schema.md); it is
parsed here without importing ``voice``. Used fields: ``call_id``, ``segments[]`` (``start``,
``end``, ``role``, ``text``, ``id``) and ``entities[]`` (``segment``, char offsets).

Outcomes CSV (what a CRM export gives), header required::

    call_id,success,value,agent_id,tenant
    call-001,true,129.90,agent-7,acme

``success`` accepts true/false, 1/0, yes/no, won/lost; ``value``, ``agent_id`` and ``tenant`` may
be empty or absent; a ``tenant`` must be a safe folder name (``suggest.registry.check_name``:
letters, digits, ``.``, ``_``, ``-``), as model folders are named after it. The file is UTF-8
(Excel's "CSV UTF-8" byte-order mark is dropped). Header names are read without case or
surrounding spaces. A call id on two
rows that differ is an error on the second row and the call is left out (which row the CRM meant
is unknown); an exact repeat is ignored. Consecutive segments of one role become one turn;
``unknown`` segments are dropped (counted in the notes), as are outcome rows that match no
transcript (counted, with examples).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suggest.data.format import ImportReport, RowIssue
from suggest.data.importers import utf8_lines
from suggest.errors import ConfigError, DataFormatError
from suggest.types import Conversation, Outcome, Turn

TRUE_WORDS = frozenset({"true", "1", "yes", "y", "won", "success"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "lost", "failure"})
TRANSCRIPT_MAJOR = "1"


@dataclass(frozen=True)
class CallOutcome:
    """One row of the outcomes CSV."""

    outcome: Outcome
    agent_id: str | None
    tenant: str | None


def read_outcomes(path: Path, report: ImportReport) -> dict[str, CallOutcome]:
    """call id -> outcome; bad rows go to ``report.issues`` with their line number.

    Raises:
        DataFormatError: the file is missing, not UTF-8, or has no call_id,success header.
    """
    if not path.is_file():
        raise DataFormatError(
            f"{path} not found", hint="--outcomes takes a CSV: call_id,success,value,agent_id"
        )
    outcomes: dict[str, CallOutcome] = {}
    first_line: dict[str, int] = {}
    reader = csv.DictReader(utf8_lines(path))
    if reader.fieldnames:  # CRM exports write "Call_ID", " success"
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
    if not reader.fieldnames or not {"call_id", "success"} <= set(reader.fieldnames):
        raise DataFormatError(
            f"{path} has no call_id,success header (found {reader.fieldnames})",
            hint="first line: call_id,success,value,agent_id (comma-separated)",
        )
    for row in reader:
        where = f"{path.name} line {reader.line_num}"
        try:
            call_id, outcome = _outcome_row(row)
            found = CallOutcome(outcome, (row.get("agent_id") or "").strip() or None, _row_tenant(row))
        except ValueError as error:
            report.issues.append(RowIssue(where, str(error)))
            continue
        if call_id in first_line:  # an exact repeat is harmless; a different one is a conflict
            if outcomes.get(call_id) != found:
                outcomes.pop(call_id, None)
                report.issues.append(
                    RowIssue(
                        where,
                        f"call {call_id!r} differs from line "
                        f"{first_line[call_id]}; the call is left out",
                    )
                )
            continue
        first_line[call_id] = reader.line_num
        outcomes[call_id] = found
    return outcomes


def _row_tenant(row: dict[str, str | None]) -> str | None:
    """The row's tenant (None when empty). Raises ValueError for a name that is not a safe folder
    name: models are registered in a folder named after the tenant (``../x`` would leave the
    registry)."""
    from suggest.registry import check_name

    tenant = (row.get("tenant") or "").strip() or None
    if tenant is not None:
        try:
            check_name(tenant, "tenant")
        except ConfigError as error:
            raise ValueError(str(error)) from None
    return tenant


def _outcome_row(row: dict[str, str | None]) -> tuple[str, Outcome]:
    call_id = (row.get("call_id") or "").strip()
    if not call_id:
        raise ValueError("empty call_id")
    word = (row.get("success") or "").strip().lower()
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"success {word!r} is not true/false, 1/0, yes/no or won/lost")
    raw_value = (row.get("value") or "").strip()
    value = None
    if raw_value:
        value = float(raw_value)  # ValueError names the bad text
        if not math.isfinite(value):
            raise ValueError(f"value {raw_value!r} is not a finite number")
    return call_id, Outcome(success=word in TRUE_WORDS, value=value)


def import_transcripts(src: Path, outcomes_csv: Path, tenant: str = "default") -> ImportReport:
    """Every ``*.json`` transcript under ``src`` joined with its outcome by call id."""
    if not src.is_dir():
        raise DataFormatError(
            f"{src} is not a directory", hint="pass the --out folder of `voice transcribe`"
        )
    report = ImportReport()
    outcomes = read_outcomes(outcomes_csv, report)
    dropped_unknown = 0
    imported: dict[str, str] = {}
    transcribed: set[str] = set()
    for path in sorted(src.rglob("*.json")):
        name = path.relative_to(src).as_posix()  # nested folders may repeat a file name
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            if not isinstance(data, dict) or "segments" not in data:
                continue  # not a transcript (e.g. a summary file next to them)
            call_id = str(data.get("call_id") or path.stem)
            transcribed.add(call_id)
            if call_id not in outcomes:
                raise ValueError(f"call {call_id!r} has no row in {outcomes_csv.name} to use")
            if call_id in imported:  # one outcome row cannot label two calls
                raise ValueError(f"call {call_id!r} was already imported from {imported[call_id]}")
            turns, unknown = transcript_turns(data)
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSON/UTF-8 errors too
            report.issues.append(RowIssue(name, str(error) or repr(error)))
            transcribed.add(path.stem)  # reported already: not also an unmatched outcome row
            continue
        except RecursionError:  # json's parser recurses once per nesting level
            report.issues.append(RowIssue(name, "not JSON: nested too deeply"))
            transcribed.add(path.stem)
            continue
        dropped_unknown += unknown
        imported[call_id] = name
        row = outcomes[call_id]
        report.conversations.append(
            Conversation(
                id=call_id,
                tenant=row.tenant or tenant,
                agent_id=row.agent_id,
                outcome=row.outcome,
                turns=turns,
                meta={"source": f"transcript:{path.name}"},
            )
        )
    if dropped_unknown:
        report.notes.append(f"{dropped_unknown} segments with role 'unknown' dropped")
    report.notes.extend(_unmatched_outcomes(outcomes, transcribed, outcomes_csv, src))
    return report


def _unmatched_outcomes(
    outcomes: dict[str, CallOutcome], transcribed: set[str], outcomes_csv: Path, src: Path
) -> list[str]:
    """A note on the outcome rows no transcript matched (a wrong folder or id format would
    otherwise shrink the training data silently)."""
    unmatched = [call for call in outcomes if call not in transcribed]
    if not unmatched:
        return []
    return [
        f"{len(unmatched)} rows of {outcomes_csv.name} match no transcript in {src} "
        f"(e.g. {', '.join(repr(c) for c in unmatched[:3])}): not imported; check that "
        "their call ids are the transcripts' call_id (or file names)"
    ]


@dataclass(frozen=True)
class StoredCall:
    """A call the live server or ``voice transcribe`` stored: its transcript JSON (schema 1.x) and
    the outcome the CRM set (``PUT /api/calls/{id}/outcome``), None while there is none."""

    call_id: str
    agent_id: str | None
    transcript: dict[str, Any]
    outcome: Outcome | None


def import_stored_calls(calls: Iterable[StoredCall], tenant: str) -> ImportReport:
    """Conversations of a tenant's stored calls that have an outcome; calls without one are
    counted in the notes, unreadable transcripts are issues naming the call."""
    report = ImportReport()
    unlabelled = dropped_unknown = 0
    for call in calls:
        if call.outcome is None:
            unlabelled += 1
            continue
        try:
            turns, unknown = transcript_turns(call.transcript)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            report.issues.append(RowIssue(f"call {call.call_id}", str(error) or repr(error)))
            continue
        dropped_unknown += unknown
        report.conversations.append(
            Conversation(id=call.call_id, tenant=tenant, agent_id=call.agent_id, outcome=call.outcome,
                         turns=turns, meta={"source": "database"})
        )
    if unlabelled:
        report.notes.append(
            f"{unlabelled} calls have no outcome yet (PUT /api/calls/{{id}}/outcome): left out"
        )
    if dropped_unknown:
        report.notes.append(f"{dropped_unknown} segments with role 'unknown' dropped")
    return report


def transcript_turns(data: dict[str, Any]) -> tuple[tuple[Turn, ...], int]:
    """Turns of one transcript (same-role segments merged) and the count of unknown segments.

    Raises:
        ValueError: unsupported schema version, or no agent/customer segments at all.
    """
    version = str(data.get("schema_version", "1.0"))
    if version.split(".")[0] != TRANSCRIPT_MAJOR:
        raise ValueError(f"transcript schema_version {version!r} is not 1.x")
    entities = _entities_by_segment(data.get("entities") or [])
    segments = sorted(data["segments"], key=lambda s: (float(s["start"]), float(s["end"])))
    merged: list[dict[str, Any]] = []
    unknown = 0
    for segment in segments:
        role, text = segment.get("role"), str(segment.get("text", "")).strip()
        if role not in ("agent", "customer"):
            unknown += 1
            continue
        if not text:
            continue
        found = entities.get(segment.get("id"), [])
        if merged and merged[-1]["role"] == role:
            last = merged[-1]
            shift = len(last["text"]) + 1
            last["entities"].extend(
                (lbl, txt, s + shift, e + shift, val) for lbl, txt, s, e, val in found
            )
            last["text"] += " " + text
            last["end"] = float(segment["end"])
        else:
            merged.append(
                {
                    "role": role,
                    "text": text,
                    "start": float(segment["start"]),
                    "end": float(segment["end"]),
                    "entities": list(found),
                }
            )
    if not merged:
        raise ValueError(
            "no agent or customer segments (roles are all unknown or the text is empty)"
        )
    return tuple(_turn(m) for m in merged), unknown


def _entities_by_segment(
    items: list[dict[str, Any]],
) -> dict[Any, list[tuple[str, str, int, int, str]]]:
    by_segment: dict[Any, list[tuple[str, str, int, int, str]]] = {}
    for e in items:
        value = e.get("value") or e["text"]
        by_segment.setdefault(e["segment"], []).append(
            (str(e["label"]), str(e["text"]), int(e["start_char"]), int(e["end_char"]), str(value))
        )
    return by_segment


def _turn(merged: dict[str, Any]) -> Turn:
    entities = None
    if merged["entities"]:
        from suggest.nlu.types import Entity  # lazy: the nlu package loads spaCy on import

        entities = tuple(Entity(*e) for e in merged["entities"])
    return Turn(
        role=merged["role"],
        text=merged["text"],
        start=merged["start"],
        end=merged["end"],
        entities=entities,
    )
