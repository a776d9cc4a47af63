"""QA replay and uploads at their edges, on the real app and a real SQLite database: date filters
in the viewer's time zone, refused uploads that leave nothing on disk, a call opened before its
row reached the database, and exports of calls named in any script."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from sqlalchemy import update

from tests.server.harness import Env, ScriptedCall, ServerThread, make_services, new_app, scripted
from voice.server import uploads_api
from voice.server.console import console_for
from voice.store.agents import AgentStore
from voice.store.tables import CallRow

pytestmark = pytest.mark.unit


def test_qa_date_filters_cut_days_in_the_viewers_time_zone(env: Env) -> None:
    scripted(env, "CA-evening", "alice", end=True)
    evening = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)  # 26 Nov, 21:30 in New York
    with env.services.store.session() as session:
        session.execute(update(CallRow).where(CallRow.call_id == "CA-evening")
                        .values(created_at=evening, started_at=evening))

    def ids(query: str) -> list[str]:
        response = env.client.get(f"/api/qa/calls?{query}", headers=env.headers("sue"))
        assert response.status_code == 200, response.text
        return [c["call_id"] for c in response.json()["calls"]]

    new_york = "tz=America/New_York"
    assert ids(f"since=2026-11-26&until=2026-11-26&{new_york}") == ["CA-evening"]
    assert ids(f"since=2026-11-27&{new_york}") == [] and ids(f"until=2026-11-25&{new_york}") == []
    assert ids("since=2026-11-27&until=2026-11-27") == ["CA-evening"]  # no tz: UTC days, as before
    assert ids("since=2026-11-27&tz=Asia/Tokyo") == ["CA-evening"]  # 27 Nov, 11:30 there
    assert ids("since=0001-01-01&until=9999-12-31&tz=Asia/Tokyo") == ["CA-evening"]  # no overflow 500
    for bad in ("Mars/Olympus", "America", "../../etc/passwd"):
        assert env.client.get(f"/api/qa/calls?since=2026-11-27&tz={bad}",
                              headers=env.headers("sue")).status_code == 422


def test_refused_uploads_leave_nothing_on_disk(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploads_api, "MAX_UPLOAD_BYTES", 64 * 1024)
    uploads = Path(env.services.config.data_dir) / "uploads"
    c = env.client
    too_large = c.post("/api/qa/uploads?filename=long-call.wav", content=iter([b"\0" * 65536] * 3),
                       headers=env.headers("sue"))
    assert too_large.status_code == 413
    assert c.post("/api/qa/uploads?filename=empty.wav", content=b"", headers=env.headers("sue")).status_code == 400
    jobs = c.get("/api/qa/uploads", headers=env.headers("sue")).json()["jobs"]
    assert [j["status"] for j in jobs] == ["failed", "failed"]
    assert [p for p in uploads.rglob("*") if p.is_file()] == []


def test_an_upload_that_breaks_off_leaves_nothing_on_disk(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    app = new_app(services)
    with ServerThread(app) as server:
        host, port = server.host.split(":")
        with socket.create_connection((host, int(port))) as client:  # the tab closed at 64 KiB of 10 MB
            client.sendall((f"POST /api/qa/uploads?filename=call.wav HTTP/1.1\r\nHost: {server.host}\r\n"
                            f"Authorization: Bearer {sue}\r\nContent-Type: audio/wav\r\n"
                            f"Content-Length: 10000000\r\n\r\n").encode() + b"\0" * 65536)
            time.sleep(0.3)
        queue = console_for(app).uploads
        deadline = time.monotonic() + 10
        while not queue.list() or queue.list()[0].status != "failed":
            assert time.monotonic() < deadline, [j.to_dict() for j in queue.list()]
            time.sleep(0.05)
        assert queue.list()[0].error == "the upload broke off"
        assert [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()] == []


def test_a_call_not_yet_in_the_database_is_a_404_not_a_500(env: Env) -> None:
    """The supervisor view links a call as it starts; under load its row is still queued."""
    held = threading.Event()
    env.services.db_executor.submit(held.wait)  # the database writer is busy
    call = ScriptedCall(env.services, "CA-new", agent_id="alice")
    env.run(call.start)
    try:
        page = env.client.get("/api/qa/calls/CA-new", headers=env.headers("alice"))
        assert page.status_code == 404 and "retry" in page.json()["detail"]
        assert env.client.get("/api/calls/CA-new/audio", headers=env.headers("alice")).status_code == 404
    finally:
        held.set()
    deadline = time.monotonic() + 5
    while (page := env.client.get("/api/qa/calls/CA-new", headers=env.headers("alice"))).status_code != 200:
        assert time.monotonic() < deadline, page.text
        time.sleep(0.05)
    assert page.json()["call"]["status"] == "active"


@pytest.mark.parametrize("call_id", ["録音-0412", "Anruf-Müller", 'quote"and;semicolon'])
def test_review_exports_of_calls_named_in_any_script(env: Env, call_id: str) -> None:
    """Batch calls are named after their files (``voice transcribe 録音.wav`` is call 録音)."""
    scripted(env, call_id, "alice", end=True)
    path = f"/api/qa/calls/{quote(call_id)}/review"
    assert env.client.post(path, headers=env.headers("alice")).status_code == 200
    for fmt in ("csv", "json"):
        export = env.client.get(f"{path}.{fmt}", headers=env.headers("alice"))
        assert export.status_code == 200
        disposition = export.headers["content-disposition"]
        assert disposition.isascii() and disposition.startswith('attachment; filename="')
        assert unquote(disposition.split("filename*=UTF-8''")[1]) == f"{call_id}-review.{fmt}"


def test_an_uploaded_call_is_committed_with_its_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner was a second transaction after the transcript's: a failure between the two left a
    finished call of no tenant, which its tenant's supervisors never saw and tenant purges missed."""
    from types import SimpleNamespace

    import voice.batch.pipeline as pipeline
    from voice.audio import AudioInfo
    from voice.errors import StorageError
    from voice.server.uploads import UploadQueue
    from voice.store import Store
    from voice.store.qa import CallFilter, QaStore
    from voice.transcript import CallTranscript

    monkeypatch.setattr(pipeline, "transcribe_file", lambda path, options, call_id: CallTranscript(
        call_id=call_id, audio=AudioInfo(str(path), "wav", 16000, 1, 3.0), speakers=[], segments=[], entities=[]))
    store = Store.open(f"sqlite:///{tmp_path / 'nextline.db'}")
    save = store.save_transcript

    def save_then_fail(*args: object, **kwargs: object) -> None:  # the process dies right after the commit
        save(*args, **kwargs)  # type: ignore[arg-type]
        raise StorageError("database is locked")

    monkeypatch.setattr(store, "save_transcript", save_then_fail)
    qa = QaStore(store)
    try:
        queue = UploadQueue(SimpleNamespace(data_dir=str(tmp_path), model="tiny.en"), store, qa, reviews=None)
        job = queue.create("call.wav", tenant="globex", agent_id="alice", uploaded_by="gus")
        Path(job.path).write_bytes(b"RIFF")
        queue._process(job)
        assert job.status == "failed"
        committed = [(c.tenant, c.agent_id) for c in qa.calls(CallFilter())]
        assert committed == [("globex", "alice")]
    finally:
        store.close()
