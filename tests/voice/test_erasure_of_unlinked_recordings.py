"""Erasure (and retention) deletes what the live recorder wrote under a call's name whatever the
call's row says: the WAV of a call whose end save waited for the database (no ``audio_path``), the
``.tmp.wav`` of a failed WAV write, and the pending call-end save holding the whole transcript."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voice.audio import AudioInfo
from voice.store import Store
from voice.store.live import LiveCallStore, PendingSave, pending_call_ids, pending_save_path, write_pending_save
from voice.store.retention import CallEraser
from voice.store.store import CallOwner
from voice.transcript import CallTranscript

pytestmark = pytest.mark.unit

CALL = "a84b@pc33.atlanta.com"  # a SIP Call-ID: its files are named a84b_pc33.atlanta.com.*
NEIGHBOUR = "a84b@pc33.atlanta.com.2"  # a call whose id extends this one: its files stay


def _files(data: Path, call_id: str) -> list[Path]:
    stem, pending = call_id.replace("@", "_"), pending_save_path(data / "pending", call_id)
    return [data / "audio" / f"{stem}.wav", data / "audio" / f"{stem}.tmp.wav", pending,
            pending.with_name(f".{pending.name}.0123456789ab.tmp")]  # a pending write cut short


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
    for path in _files(data, CALL) + _files(data, NEIGHBOUR):
        path.write_bytes(b"RIFF personal data")

    eraser = CallEraser(store, data)
    if purge:
        found = [c for c in eraser.find(created_before=datetime.now(UTC) + timedelta(days=1)) if c.call_id == CALL]
    else:
        found = eraser.find(call_ids=[CALL])
    dry = eraser.erase(found, dry_run=True)
    report = eraser.erase(found)

    gone = _files(data, CALL)
    assert sorted(dry.files) == sorted(report.files) == sorted(str(p) for p in gone)
    assert report.calls == [CALL] and not any(p.exists() for p in gone)
    assert all(p.exists() for p in _files(data, NEIGHBOUR))
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


def _ended_without_save(live: LiveCallStore, *call_ids: str) -> None:
    for call_id in call_ids:
        live.start_call(call_id, tenant="acme", agent_id="alice", source="twilio")
        live.end_call(call_id, duration=3.0)  # its end save failed: no audio_path


@pytest.mark.parametrize("together", [False, True], ids=["one", "both-in-one-purge"])
def test_ids_that_name_the_same_files_do_not_erase_each_others_recording(tmp_path: Path, together: bool) -> None:
    """``CA-1@pbx`` and ``CA-1_pbx`` both record to ``CA-1_pbx.wav`` (safe_file_stem): erasing one
    keeps it while the other is stored; erasing the other (or both at once) deletes it."""
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    store = Store.open(f"sqlite:///{data / 'nextline.db'}")
    _ended_without_save(LiveCallStore(store), "CA-1@pbx", "CA-1_pbx", "CA-1xpbx")
    wav = data / "audio" / "CA-1_pbx.wav"
    wav.write_bytes(b"RIFF the other call")
    eraser = CallEraser(store, data)

    if together:
        report = eraser.erase(eraser.find(call_ids=["CA-1@pbx", "CA-1_pbx"]))
        assert report.files == [str(wav)] and not wav.exists()
    else:
        assert eraser.erase(eraser.find(call_ids=["CA-1@pbx"])).files == [] and wav.exists()
        assert eraser.erase(eraser.find(call_ids=["CA-1_pbx"])).files == [str(wav)] and not wav.exists()
    store.close()


def test_a_recording_whose_spool_manifest_names_the_call_goes_with_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    store = Store.open(f"sqlite:///{data / 'nextline.db'}")
    _ended_without_save(LiveCallStore(store), "CA-1@pbx", "CA-1_pbx")
    manifest = data / "audio" / "CA-1_pbx.spool.json"
    manifest.write_text(json.dumps({"format": 1, "call_id": "CA-1@pbx", "leg_order": [], "legs": []}))
    (data / "audio" / "CA-1_pbx.tmp.wav").write_bytes(b"RIFF")
    eraser = CallEraser(store, data)

    report = eraser.erase(eraser.find(call_ids=["CA-1@pbx"]))

    assert sorted(Path(f).name for f in report.files) == ["CA-1_pbx.spool.json", "CA-1_pbx.tmp.wav"]
    store.close()


def _save(call_id: str) -> PendingSave:
    transcript = CallTranscript(call_id=call_id, audio=AudioInfo("live:twilio", "live/twilio", 8000, 2, 1.0),
                                speakers=[], segments=[])
    return PendingSave(transcript, "twilio", CallOwner("live", "acme", "alice", None), 1.0, None, datetime.now(UTC))


def test_pending_saves_of_ids_with_the_same_file_stem_are_two_files_and_erased_apart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = Store.open(f"sqlite:///{data / 'nextline.db'}")
    _ended_without_save(LiveCallStore(store), "CA-2@pbx", "CA-2_pbx")
    for call_id in ("CA-2@pbx", "CA-2_pbx"):
        write_pending_save(data / "pending", _save(call_id))
    legacy = data / "pending" / "CA-3_pbx.json"  # named by the release before the hashed names
    legacy.write_text(json.dumps({"call_id": "CA-3@pbx"}))
    _ended_without_save(LiveCallStore(store), "CA-3@pbx")

    assert sorted(pending_call_ids(data / "pending")) == ["CA-2@pbx", "CA-2_pbx", "CA-3@pbx"]
    eraser = CallEraser(store, data)
    eraser.erase(eraser.find(call_ids=["CA-2@pbx", "CA-3@pbx"]))
    assert pending_call_ids(data / "pending") == ["CA-2_pbx"]
    store.close()
