"""Erasure (and retention) deletes what the live recorder wrote under a call's name whatever the
call's row says: the WAV of a call whose end save waited for the database (no ``audio_path``), the
``.tmp.wav`` of a failed WAV write, and the pending call-end save holding the whole transcript."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voice.store import Store
from voice.store.live import LiveCallStore
from voice.store.retention import CallEraser

pytestmark = pytest.mark.unit

CALL = "a84b@pc33.atlanta.com"  # a SIP Call-ID: its files are named a84b_pc33.atlanta.com.*
NEIGHBOUR = "a84b@pc33.atlanta.com.2"  # a call whose id extends this one: its files stay


def _files(data: Path, stem: str) -> list[Path]:
    return [data / "audio" / f"{stem}.wav", data / "audio" / f"{stem}.tmp.wav", data / "pending" / f"{stem}.json",
            data / "pending" / f".{stem}.json.0123456789ab.tmp"]  # a pending write cut short


@pytest.mark.parametrize("purge", [False, True], ids=["erase", "retention-purge"])
def test_a_calls_recordings_and_pending_save_go_with_it_whatever_its_row_says(tmp_path: Path, purge: bool) -> None:
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    (data / "pending").mkdir()
    store = Store.open(f"sqlite:///{data / 'nextline.db'}")
    live = LiveCallStore(store)
    for call_id in (CALL, NEIGHBOUR):
        live.start_call(call_id, tenant="acme", agent_id="alice", source="sip")
        live.end_call(call_id, duration=30.0)  # its end save failed: no transcript, no audio_path
    for path in _files(data, "a84b_pc33.atlanta.com") + _files(data, "a84b_pc33.atlanta.com.2"):
        path.write_bytes(b"RIFF personal data")

    eraser = CallEraser(store, data)
    if purge:
        found = [c for c in eraser.find(created_before=datetime.now(UTC) + timedelta(days=1)) if c.call_id == CALL]
    else:
        found = eraser.find(call_ids=[CALL])
    dry = eraser.erase(found, dry_run=True)
    report = eraser.erase(found)

    gone = _files(data, "a84b_pc33.atlanta.com")
    assert sorted(dry.files) == sorted(report.files) == sorted(str(p) for p in gone)
    assert report.calls == [CALL] and not any(p.exists() for p in gone)
    assert all(p.exists() for p in _files(data, "a84b_pc33.atlanta.com.2"))
    store.close()


def test_a_recording_the_row_names_is_counted_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    store = Store.open(f"sqlite:///{data / 'nextline.db'}")
    live = LiveCallStore(store)
    live.start_call("CA-1", tenant="acme", agent_id="alice", source="twilio")
    wav = data / "audio" / "CA-1.wav"
    wav.write_bytes(b"RIFF")
    live.end_call("CA-1", duration=3.0)
    from sqlalchemy import update

    from voice.store.tables import CallRow

    with store.session() as session:
        session.execute(update(CallRow).where(CallRow.call_id == "CA-1").values(audio_path=str(wav)))
    eraser = CallEraser(store, data)

    assert eraser.erase(eraser.find(call_ids=["CA-1"]), dry_run=True).files == [str(wav.resolve())]
    assert eraser.erase(eraser.find(call_ids=["CA-1"])).files == [str(wav.resolve())]
    assert not wav.exists()
    store.close()
