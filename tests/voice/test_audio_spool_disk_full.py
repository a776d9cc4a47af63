"""A full disk and the call's recording: a failed WAV write leaves no temporary file, a leg that
cannot be spooled is logged once (not at every 2 s flush), and a call that ended ``done`` without
its WAV gets it from its kept part files at a later heartbeat round."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.server.harness import make_services
from tests.voice.test_audio_spool import InlineExecutor
from voice.frames import AudioFrame, CallEndedFrame, CallStartedFrame
from voice.processor import Pipeline
from voice.processors import audio_spool
from voice.processors.audio_spool import AudioSpool, track_blocks, write_call_wav
from voice.processors.recorder import CallRecorder
from voice.store.retention import ORPHAN_AFTER

pytestmark = pytest.mark.unit

DISK_FULL = OSError(28, "No space left on device")


def _tone(seconds: float, rate: int) -> np.ndarray:
    return (np.sin(np.arange(int(seconds * rate)) / 3) * 8000).astype(np.int16)


def test_a_wav_write_that_fails_leaves_no_temporary_file(tmp_path: Path) -> None:
    part = tmp_path / "CA-1.inbound.8000hz.part.pcm"
    part.write_bytes(_tone(40, 8000).tobytes())  # more than one block: the write fails midway

    def fills_the_disk() -> Generator[np.ndarray, None, None]:
        for i, block in enumerate(track_blocks(part, 8000, 40 * 8000)):
            if i == 1:
                raise DISK_FULL
            yield block

    with pytest.raises(OSError, match="No space"):
        write_call_wav(tmp_path / "CA-1.wav", [fills_the_disk()])

    assert sorted(p.name for p in tmp_path.iterdir()) == [part.name]  # no CA-1.tmp.wav, no CA-1.wav


def test_a_full_disk_is_logged_once_per_leg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    def disk_full(*_args: Any) -> None:
        raise DISK_FULL

    monkeypatch.setattr(AudioSpool, "_write", disk_full)
    spool = AudioSpool(tmp_path, "CA-1", InlineExecutor(), leg_order=["inbound", "outbound"])
    caplog.set_level(logging.ERROR, logger="voice.processors.audio_spool")
    for leg, rate in (("inbound", 8000), ("outbound", 16000)):
        audio = _tone(20, rate)  # ten 2 s flushes each
        for start in range(0, len(audio), rate // 50):
            spool.push(leg, start / rate, audio[start:start + rate // 50], rate)

    logged = [r for r in caplog.records if r.name == "voice.processors.audio_spool"]
    assert len(logged) == 2, [r.getMessage() for r in logged]
    assert {("leg inbound" in r.getMessage(), "leg outbound" in r.getMessage()) for r in logged} == {
        (True, False), (False, True)}
    assert all(r.exc_info is None and "No space left" in r.getMessage() for r in logged)
    assert spool.legs["inbound"].lost_samples >= 18 * 8000  # still counted for the call's end


def test_a_call_that_ended_without_its_wav_gets_it_at_a_later_heartbeat(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    services = make_services(tmp_path)
    audio_dir = tmp_path / "audio"
    tone = _tone(6, 8000)
    real_write = audio_spool.write_call_wav

    def disk_full(*_args: Any) -> None:
        raise DISK_FULL

    monkeypatch.setattr(audio_spool, "write_call_wav", disk_full)  # the disk is full at the call's end

    async def call() -> None:
        with ThreadPoolExecutor(1) as executor:
            recorder = CallRecorder(hub=services.hub, registry=services.registry, live_store=services.live_store,
                                    store=services.store, executor=executor, audio_dir=audio_dir,
                                    model_name="tiny.en", pending_dir=services.pending_dir)
            pipeline = Pipeline([recorder])
            await pipeline.process_frame(CallStartedFrame(call_id="CA-full", legs={"inbound": "customer"},
                                                          source="twilio"))
            for start in range(0, len(tone), 160):
                await pipeline.process_frame(AudioFrame(pcm=tone[start:start + 160], sample_rate=8000,
                                                        leg="inbound", pts=start / 8000))
            await pipeline.process_frame(CallEndedFrame(call_id="CA-full", audio_time=6.0))

    try:
        asyncio.run(asyncio.wait_for(call(), 30))
        monkeypatch.setattr(audio_spool, "write_call_wav", real_write)  # space again
        assert services.store.get_transcript("CA-full").audio.path == "live:twilio"
        asyncio.run(services._liveness_round())
        assert not (audio_dir / "CA-full.wav").exists()  # its part files are fresh: not yet

        old = time.time() - ORPHAN_AFTER.total_seconds() - 60
        for path in audio_dir.iterdir():
            os.utime(path, (old, old))
        asyncio.run(services._liveness_round())

        wav = audio_dir / "CA-full.wav"
        assert sorted(p.name for p in audio_dir.iterdir()) == [wav.name]
        assert services.live_store.call("CA-full").status == "done"
        assert services.store.get_transcript("CA-full").audio.path == str(wav)
        from voice.store.qa import QaStore

        assert QaStore(services.store).audio_path("CA-full") == str(wav)
        recorded, rate = sf.read(wav, dtype="int16")
        assert rate == 16000 and abs(len(recorded) - 6 * 16000) <= 160
    finally:
        services.db_executor.shutdown()
        services.store.close()


def test_a_done_call_with_its_wav_keeps_it(tmp_path: Path) -> None:
    """Only a call without its recording takes a recovered one."""
    services = make_services(tmp_path)
    try:
        live = services.live_store
        live.start_call("CA-ok", tenant=None, agent_id=None, source="twilio")
        wav = tmp_path / "audio" / "CA-ok.wav"
        wav.parent.mkdir()
        wav.write_bytes(b"RIFF")
        from voice.audio import AudioInfo
        from voice.transcript import CallTranscript

        transcript = CallTranscript("CA-ok", AudioInfo(str(wav), "live/twilio", 16000, 1, 1.0), [], [])
        services.store.save_transcript(transcript, source="twilio")
        assert live.spool_status("CA-ok") == "done"
        with pytest.raises(Exception, match="no interrupted call"):
            live.attach_recovered_audio("CA-ok", str(tmp_path / "audio" / "other.wav"))
        wav.unlink()
        assert live.spool_status("CA-ok") == "interrupted"  # as the recovery reads it
    finally:
        services.store.close()
