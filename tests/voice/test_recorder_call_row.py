"""What the call row keeps through a live call: the ingress metadata after the call-end save, and the
call's owner (kind, tenant, agent) when the call-start write failed."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from voice.errors import StorageError
from voice.frames import CallEndedFrame, CallStartedFrame, Frame, TranscriptFinalFrame
from voice.processor import Pipeline
from voice.processors.recorder import CallRecorder
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.store import Store
from voice.store.live import LiveCallStore
from voice.store.tables import CallRow

pytestmark = pytest.mark.unit

STARTED = CallStartedFrame(call_id="CA-1", tenant="globex", agent_id="alice", source="twilio",
                           legs={"inbound": "customer", "outbound": "agent"},
                           metadata={"call_sid": "CA0123456789abcdef", "stream_sid": "MZ42"})


def _final(index: int, text: str) -> TranscriptFinalFrame:
    start = float(index * 3)
    return TranscriptFinalFrame(turn_id=f"inbound-{index}", leg="inbound", text=text, words=[], start=start,
                                end=start + 2, audio_time=start + 2, role="customer", speaker="inbound")


class FlakyStartStore(LiveCallStore):
    """The live store with ``start_call`` failing the first ``failures`` times (a database blip)."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store)
        self.failures = failures

    def start_call(self, call_id: str, **kwargs: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StorageError("database: connection reset", hint="retry")
        super().start_call(call_id, **kwargs)


def _run_call(store: Store, live_store: LiveCallStore, frames: list[Frame], *, close: bool = True) -> None:
    async def scenario() -> None:
        with ThreadPoolExecutor(1) as executor:
            recorder = CallRecorder(hub=EventHub(), registry=CallRegistry(), live_store=live_store, store=store,
                                    executor=executor, audio_dir=None, model_name="tiny.en")
            pipeline = Pipeline([recorder])
            for frame in frames:
                await pipeline.process_frame(frame)
            if close:
                await pipeline.close()
            else:  # the call goes on: wait for its writes only
                await asyncio.gather(*recorder._db_tasks, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def _row(store: Store) -> dict[str, Any]:
    with store.session() as session:
        row = session.query(CallRow).filter_by(call_id="CA-1").one()
        return {"kind": row.kind, "status": row.status, "tenant": row.tenant, "agent_id": row.agent_id,
                "started": row.started_at is not None, "options": dict(row.options)}


def test_the_call_end_save_keeps_the_ingress_metadata(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    _run_call(store, LiveCallStore(store), [STARTED, _final(0, "hi"), CallEndedFrame(call_id="CA-1", audio_time=3)])

    options = _row(store)["options"]
    assert options["metadata"] == {"call_sid": "CA0123456789abcdef", "stream_sid": "MZ42"}
    assert options["model"] == "tiny.en"  # and the transcript's own options are there too


def test_a_failed_start_write_is_retried_before_the_first_turn(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    live = FlakyStartStore(store, failures=1)
    _run_call(store, live, [STARTED, _final(0, "hi"), _final(1, "my bill is wrong")], close=False)

    assert [t.text for t in live.turns("CA-1")] == ["hi", "my bill is wrong"]
    assert _row(store) | {"options": None} == {"kind": "live", "status": "active", "tenant": "globex",
                                               "agent_id": "alice", "started": True, "options": None}


def test_a_call_whose_row_was_never_started_is_saved_with_its_owner(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    live = FlakyStartStore(store, failures=100)  # every start write fails; the call-end save works
    _run_call(store, live, [STARTED, _final(0, "hi"), CallEndedFrame(call_id="CA-1", audio_time=3)])

    assert _row(store) | {"options": None} == {"kind": "live", "status": "done", "tenant": "globex",
                                               "agent_id": "alice", "started": True, "options": None}
    assert [s.text for s in store.get_transcript("CA-1").segments] == ["hi"]


@pytest.mark.parametrize(("ended", "error"), [
    (CallEndedFrame(call_id="CA-1", audio_time=3, reason="error: malformed JSON: bad payload", error=True),
     "error: malformed JSON: bad payload"),
    (CallEndedFrame(call_id="CA-1", audio_time=3, reason="hangup"), None),
])
def test_a_call_ended_by_an_error_keeps_its_transcript_and_the_reason(
    tmp_path: Path, ended: CallEndedFrame, error: str | None
) -> None:
    """A call the far end broke (a protocol error) is stored with what was said and why it ended;
    an ordinary end keeps no error."""
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    _run_call(store, LiveCallStore(store), [STARTED, _final(0, "hi"), ended])

    with store.session() as session:
        row = session.query(CallRow).filter_by(call_id="CA-1").one()
        assert (row.status, row.error) == ("done", error)
    assert [s.text for s in store.get_transcript("CA-1").segments] == ["hi"]
