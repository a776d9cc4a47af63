"""Headerless PCM through the QA upload API: ``raw_rate`` and ``raw_channels`` reach the batch
decoder (as ``voice transcribe --raw-rate/--raw-channels`` do), bad or misplaced values are a 422
before any byte is stored, and the OpenAPI document says so.

Whisper is left out: the batch path's ``transcribe_file`` is replaced by one that decodes the file
with the real ``load_audio`` and the options the job built, and stores an empty transcript.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.server.harness import Env
from voice.audio import RawFormat, load_audio
from voice.batch import pipeline
from voice.batch.options import TranscribeOptions
from voice.transcript import CallTranscript

pytestmark = pytest.mark.unit


def decode_only(path: str | Path, options: TranscribeOptions, *, call_id: str | None = None,
                cpu_threads: int = 0) -> CallTranscript:
    """``transcribe_file`` without the models: the real decode, no words."""
    raw = RawFormat(options.raw_rate, options.raw_channels) if options.raw_rate is not None else None
    audio = load_audio(path, raw=raw)
    return CallTranscript(call_id=call_id or Path(path).stem, audio=audio.info, speakers=[], segments=[],
                          options=options.to_dict())


def stereo_pcm(seconds: float, rate: int) -> bytes:
    """Interleaved s16le: a tone on the left leg, silence on the right."""
    tone = (np.sin(np.arange(int(seconds * rate)) / rate * 2 * np.pi * 440) * 8000).astype("<i2")
    return np.stack([tone, np.zeros_like(tone)], axis=1).tobytes()


def wait_for_job(env: Env, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while job["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = env.client.get(f"/api/qa/uploads/{job['job_id']}", headers=env.headers("sue")).json()
    return job


def test_headerless_pcm_is_decoded_with_the_rate_and_channels_given(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "transcribe_file", decode_only)
    answer = env.client.post("/api/qa/uploads?filename=trunk-7.raw&raw_rate=8000&raw_channels=2",
                             content=stereo_pcm(2.0, 8000), headers=env.headers("sue"))
    assert answer.status_code == 202, answer.text
    job = wait_for_job(env, answer.json())
    assert job["status"] == "done", job
    assert job["raw"] == {"sample_rate": 8000, "channels": 2} and job["audio_seconds"] == pytest.approx(2.0)
    call = env.client.get(f"/api/qa/calls/{job['call_id']}", headers=env.headers("sue")).json()
    audio = call["transcript"]["audio"]
    assert (audio["format"], audio["sample_rate"], audio["channels"]) == ("raw-s16le", 8000, 2)
    assert call["transcript"]["options"]["raw_rate"] == 8000


@pytest.mark.parametrize(("query", "says"), [
    ("filename=call.raw", "headerless PCM: give its sample rate as raw_rate"),
    ("filename=call.pcm&raw_channels=2", "headerless PCM: give its sample rate as raw_rate"),
    ("filename=call.wav&raw_rate=8000", "leave out raw_rate and raw_channels"),
    ("filename=call.raw&raw_rate=100", "greater than or equal to 8000"),
    ("filename=call.raw&raw_rate=768000", "less than or equal to 192000"),
    ("filename=call.raw&raw_rate=8k", "valid integer"),
    ("filename=call.raw&raw_rate=8000&raw_channels=0", "greater than or equal to 1"),
    ("filename=call.raw&raw_rate=8000&raw_channels=9", "less than or equal to 8"),
])
def test_raw_parameters_that_do_not_fit_are_a_422_and_store_nothing(env: Env, query: str, says: str) -> None:
    answer = env.client.post(f"/api/qa/uploads?{query}", content=b"\0" * 3200, headers=env.headers("sue"))
    assert answer.status_code == 422, answer.text
    assert says in str(answer.json()["detail"])
    assert env.client.get("/api/qa/uploads", headers=env.headers("sue")).json()["jobs"] == []
    uploads = Path(env.services.config.data_dir) / "uploads"
    assert not uploads.exists() or [p for p in uploads.rglob("*") if p.is_file()] == []


def test_the_openapi_document_describes_the_raw_parameters(env: Env) -> None:
    operation = env.client.get("/openapi.json").json()["paths"]["/api/qa/uploads"]["post"]
    params = {p["name"]: p for p in operation["parameters"]}
    rate, channels = (params[name]["schema"]["anyOf"][0] for name in ("raw_rate", "raw_channels"))
    assert (rate["minimum"], rate["maximum"], channels["minimum"], channels["maximum"]) == (8000, 192000, 1, 8)
    assert "headerless PCM" in params["raw_rate"]["description"]
    refused = operation["responses"]["422"]
    assert "raw_rate" in refused["description"]
    assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/HTTPValidationError"}
