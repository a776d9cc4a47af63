"""A QA upload through the real batch path (Whisper, diarization, roles) and the real suggestion
model bundled for the demo: the job goes queued -> transcribing -> reviewing -> done, and the call
page has the transcript, the audio and the suggested-vs-actual table."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.server.harness import ServerThread, bundled_sample, make_services, new_app
from voice import demo
from voice.store.agents import AgentStore

pytestmark = pytest.mark.model
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="module")
def bundled_model() -> Path:
    if not (demo.BUNDLED_MODEL / "manifest.json").is_file():
        pytest.skip("no bundled demo model: build it with scripts/build_demo_model.py")
    return demo.demo_model(None, ARTIFACTS / "cache" / "bundled", lambda _line: None)[0]


def test_an_uploaded_recording_is_transcribed_and_reviewed(tmp_path: Path, bundled_model: Path) -> None:
    services = make_services(tmp_path, model="tiny.en", suggest_model=str(bundled_model))
    sue = AgentStore(services.store).add("sue", role="supervisor")[1]
    wav, script = bundled_sample()
    headers = {"Authorization": f"Bearer {sue}"}
    with ServerThread(new_app(services)) as server:
        job = httpx.post(f"{server.url}/api/qa/uploads?filename=sample.wav&agent_id=alice",
                         content=wav.read_bytes(), headers=headers).json()
        seen = {job["status"]}
        deadline = time.monotonic() + 600
        while job["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
            job = httpx.get(f"{server.url}/api/qa/uploads/{job['job_id']}", headers=headers).json()
            seen.add(job["status"])
        assert job["status"] == "done" and job["warning"] is None, job
        assert {"transcribing", "done"} <= seen
        page = httpx.get(f"{server.url}/api/qa/calls/{job['call_id']}", headers=headers).json()
        assert page["call"]["kind"] == "batch" and page["call"]["agent_id"] == "alice"
        assert page["call"]["duration"] == pytest.approx(30.0, abs=0.1)
        roles = {s["role"] for s in page["transcript"]["segments"]}
        assert roles == {"agent", "customer"} and len(page["transcript"]["segments"]) >= len(script) // 2
        review = page["review"]
        assert review["rows"] and all(len(r["suggestions"]) == 3 for r in review["rows"])
        assert all(-1.0 <= s["similarity"] <= 1.0 for r in review["rows"] for s in r["suggestions"])
        audio = httpx.get(f"{server.url}{page['audio_url']}", headers=headers)
        assert audio.status_code == 200 and audio.content == wav.read_bytes()
