"""A live call's audio is spooled to disk while the call runs: bounded memory, writes off the event loop,
part files on disk mid-call, and at the end the same WAV the in-memory recorder wrote."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.server.harness import bundled_sample
from voice.audio import resample, spool_files
from voice.frames import AudioFrame, CallEndedFrame, CallStartedFrame, Role
from voice.processor import Pipeline
from voice.processors.audio_spool import AudioSpool, recover_interrupted_calls
from voice.processors.recorder import CallRecorder
from voice.server.calls import CallRegistry
from voice.server.hub import EventHub
from voice.store import Store
from voice.store.live import LiveCallStore

pytestmark = pytest.mark.unit

LEGS: dict[str, Role] = {"inbound": "customer", "outbound": "agent"}
Chunk = tuple[float, np.ndarray, int]


def _reference_wav(path: Path, audio: dict[str, list[Chunk]], legs: list[str]) -> None:
    """The recorder's former in-memory ``_write_wav``, verbatim: the output the spool must reproduce."""
    order = [leg for leg in legs if leg in audio] + [leg for leg in audio if leg not in legs]
    tracks = []
    for leg in order:
        chunks = audio[leg]
        rate = chunks[0][2]
        end = max(int(round(pts * rate)) + len(pcm) for pts, pcm, _ in chunks)
        track = np.zeros(end, dtype=np.int16)
        for pts, pcm, _ in chunks:
            start = int(round(pts * rate))
            track[start:start + len(pcm)] = pcm
        tracks.append(resample(track.astype(np.float32) / 32768.0, rate, 16000))
    length = max(len(t) for t in tracks)
    data = np.zeros((length, len(tracks)), dtype=np.float32)
    for i, t in enumerate(tracks):
        data[: len(t), i] = t
    sf.write(path, data, 16000, subtype="PCM_16")


@pytest.fixture(scope="module")
def phone_call() -> np.ndarray:
    """The 30 s two-party phone call bundled with pyannote.audio (16 kHz mono int16)."""
    pcm, rate = sf.read(bundled_sample()[0], dtype="int16")
    assert rate == 16000
    return np.asarray(pcm)


def _legs(call: np.ndarray, seconds: float) -> dict[str, tuple[np.ndarray, int]]:
    """Inbound: the call at 8 kHz (a phone leg); outbound: the call at 16 kHz, from 10 s in; both
    looped to ``seconds``."""
    at8k = soxr.resample(call, 16000, 8000)
    return {"inbound": (np.resize(at8k, int(seconds * 8000)), 8000),
            "outbound": (np.resize(np.roll(call, -160000), int(seconds * 16000)), 16000)}


Planned = tuple[float, np.ndarray, int, str]


def _plan(legs: dict[str, tuple[np.ndarray, int]]) -> list[Planned]:
    """20 ms frames of both legs, interleaved, as a transport delivers them: a 0.5 s gap now and then
    (packet loss), a frame that overlaps the one before (jitter), one late frame, odd-sized frames."""
    streams = []
    for leg, (pcm, rate) in legs.items():
        step = rate // 50
        chunks = []
        for i, start in enumerate(range(0, len(pcm), step)):
            if i % 200 in range(50, 75):
                continue  # a 0.5 s hole every 4 s
            pts = start / rate - (0.005 if i % 97 == 1 else 0.0)
            chunks.append((pts, pcm[start:start + step + (7 if i % 31 == 0 else 0)], rate, leg))
        chunks.insert(len(chunks) // 2, chunks.pop(len(chunks) // 2 - 3))  # arrives three frames late
        streams.append(chunks)
    return [chunk for group in zip(*streams, strict=True) for chunk in group]


def _frames(plan: list[Planned]) -> Iterator[AudioFrame]:
    for pts, pcm, rate, leg in plan:
        # A copy, as a decoder hands out new arrays: a recorder holding frames holds their memory.
        yield AudioFrame(pcm=pcm.copy(), sample_rate=rate, leg=leg, pts=max(pts, 0.0))


def _as_chunks(frames: list[AudioFrame]) -> dict[str, list[Chunk]]:
    audio: dict[str, list[Chunk]] = {}
    for f in frames:
        audio.setdefault(f.leg, []).append((f.pts, f.pcm, f.sample_rate))
    return audio


class InlineExecutor(Executor):
    """Runs each job at once on the caller's thread: the spool's memory bound without thread timing."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _recorder(tmp_path: Path, executor: Executor, audio_dir: Path | None) -> CallRecorder:
    store = Store.open(f"sqlite:///{tmp_path / 'calls.db'}")
    return CallRecorder(hub=EventHub(), registry=CallRegistry(), live_store=LiveCallStore(store), store=store,
                        executor=executor, audio_dir=audio_dir, model_name="tiny.en")


def _read(path: Path) -> np.ndarray:
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    assert rate == 16000
    return np.asarray(data)


def test_the_call_wav_equals_the_in_memory_recording_and_the_part_files_are_gone(
        tmp_path: Path, phone_call: np.ndarray) -> None:
    frames = list(_frames(_plan(_legs(phone_call, 20.0))))
    audio_dir = tmp_path / "audio"

    async def call() -> None:
        with ThreadPoolExecutor(2) as executor:  # two threads: one leg's writes must still keep their order
            pipeline = Pipeline([_recorder(tmp_path, executor, audio_dir)])
            await pipeline.process_frame(CallStartedFrame(call_id="CA/1", legs=dict(LEGS), source="twilio"))
            for frame in frames:
                await pipeline.process_frame(frame)
            await pipeline.process_frame(CallEndedFrame(call_id="CA/1", audio_time=20.0))
            await pipeline.close()

    asyncio.run(asyncio.wait_for(call(), 60))
    _reference_wav(tmp_path / "reference.wav", _as_chunks(frames), list(LEGS))
    assert sorted(p.name for p in audio_dir.iterdir()) == ["CA_1.wav"]
    got, want = _read(audio_dir / "CA_1.wav"), _read(tmp_path / "reference.wav")
    assert got.shape == want.shape == (20 * 16000, 2)
    assert np.array_equal(got, want)


def test_the_spool_keeps_each_legs_order_when_many_small_writes_race(tmp_path: Path, phone_call: np.ndarray) -> None:
    frames = list(_frames(_plan(_legs(phone_call, 8.0))))
    with ThreadPoolExecutor(4) as executor:
        spool = AudioSpool(tmp_path, "race", executor, flush_seconds=0.02)  # a job per frame
        for f in frames:
            spool.push(f.leg, f.pts, f.pcm, f.sample_rate)
        executor.submit(spool.finish, tmp_path / "race.wav", ["outbound", "inbound"]).result()
    _reference_wav(tmp_path / "reference.wav", _as_chunks(frames), ["outbound", "inbound"])
    assert np.array_equal(_read(tmp_path / "race.wav"), _read(tmp_path / "reference.wav"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.wav", "reference.wav"]


def test_memory_held_for_a_call_stays_bounded_as_it_goes_on(tmp_path: Path, phone_call: np.ndarray) -> None:
    legs = _legs(phone_call, 60.0)  # 60 s x (8 + 16) kHz x 2 bytes: 2.9 MB if frames were kept
    plan = _plan(legs)  # before tracing: the test's own frame list is not the recorder's memory
    recorder = _recorder(tmp_path, InlineExecutor(), tmp_path / "audio")

    async def call() -> None:
        await recorder.process_frame(CallStartedFrame(call_id="long", legs=dict(LEGS), source="sip"))
        tracemalloc.start()
        try:
            for frame in _frames(plan):
                await recorder.process_frame(frame)
            grown = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert grown < 600_000, f"{grown} bytes still held after 60 s of audio"
        await recorder.process_frame(CallEndedFrame(call_id="long", audio_time=60.0))

    asyncio.run(asyncio.wait_for(call(), 60))
    # A leg holds less than FLUSH_SECONDS (2 s) before its write, plus the frame that crossed it.
    assert recorder.spool is not None and 0 < recorder.spool.peak_buffered_samples() < 2 * 16000 + 327
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == ["long.wav"]


def test_audio_is_written_off_the_event_loop_and_is_on_disk_mid_call(
        tmp_path: Path, phone_call: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = list(_frames(_plan(_legs(phone_call, 10.0))))
    writers: set[int] = set()
    write = AudioSpool._write

    def spying_write(self: AudioSpool, *args: Any) -> None:
        writers.add(threading.get_ident())
        write(self, *args)

    monkeypatch.setattr(AudioSpool, "_write", spying_write)
    audio_dir = tmp_path / "audio"

    async def interrupted_call() -> None:
        with ThreadPoolExecutor(1) as executor:
            recorder = _recorder(tmp_path, executor, audio_dir)
            await recorder.process_frame(CallStartedFrame(call_id="cut", legs=dict(LEGS), source="sip"))
            for frame in frames:
                await recorder.process_frame(frame)
            await asyncio.get_running_loop().run_in_executor(executor, lambda: None)  # the writes queued so far
        assert writers and threading.get_ident() not in writers

    asyncio.run(asyncio.wait_for(interrupted_call(), 60))
    # The process "dies" here: what was flushed is on disk, raw int16 at each leg's own rate.
    reference = _as_chunks(frames)
    for leg, rate in (("inbound", 8000), ("outbound", 16000)):
        part = np.fromfile(audio_dir / f"cut.{leg}.{rate}hz.part.pcm", dtype="<i2")
        track = np.zeros(10 * rate + 7, dtype=np.int16)
        for pts, pcm, _ in reference[leg]:
            track[int(round(pts * rate)):int(round(pts * rate)) + len(pcm)] = pcm
        assert 8 * rate <= len(part) and np.array_equal(part, track[: len(part)])


def test_a_call_cut_off_without_an_end_still_gets_its_wav(tmp_path: Path, phone_call: np.ndarray) -> None:
    frames = list(_frames(_plan(_legs(phone_call, 6.0))))
    audio_dir = tmp_path / "audio"

    async def failed_pipeline() -> None:
        with ThreadPoolExecutor(1) as executor:
            pipeline = Pipeline([_recorder(tmp_path, executor, audio_dir)])
            await pipeline.process_frame(CallStartedFrame(call_id="lost", legs=dict(LEGS), source="sip"))
            for frame in frames:
                await pipeline.process_frame(frame)
            await pipeline.close()  # no CallEndedFrame: the pipeline failed or was cancelled

    asyncio.run(asyncio.wait_for(failed_pipeline(), 60))
    _reference_wav(tmp_path / "reference.wav", _as_chunks(frames), list(LEGS))
    assert sorted(p.name for p in audio_dir.iterdir()) == ["lost.wav"]
    assert np.array_equal(_read(audio_dir / "lost.wav"), _read(tmp_path / "reference.wav"))


def test_without_an_audio_dir_no_audio_is_kept(tmp_path: Path, phone_call: np.ndarray) -> None:
    recorder = _recorder(tmp_path, InlineExecutor(), None)

    async def call() -> None:
        await recorder.process_frame(CallStartedFrame(call_id="quiet", legs=dict(LEGS), source="sip"))
        for frame in _frames(_plan(_legs(phone_call, 3.0))):
            await recorder.process_frame(frame)
        await recorder.process_frame(CallEndedFrame(call_id="quiet", audio_time=3.0))

    asyncio.run(asyncio.wait_for(call(), 30))
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("calls.db")] == []


def test_a_wav_that_cannot_be_assembled_costs_the_audio_not_the_transcript(
        tmp_path: Path, phone_call: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    audio_dir = tmp_path / "audio"
    recorder = _recorder(tmp_path, InlineExecutor(), audio_dir)

    def disk_full(self: AudioSpool, *args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AudioSpool, "finish", disk_full)

    async def call() -> None:
        await recorder.process_frame(CallStartedFrame(call_id="full", legs=dict(LEGS), source="sip"))
        for frame in _frames(_plan(_legs(phone_call, 5.0))):
            await recorder.process_frame(frame)
        await recorder.process_frame(CallEndedFrame(call_id="full", audio_time=5.0))

    asyncio.run(asyncio.wait_for(call(), 30))
    [stored] = [c for c in LiveCallStore(recorder.store).calls() if c.call_id == "full"]
    assert stored.status == "done"
    assert recorder.store.get_transcript("full").audio.path == "live:sip"  # no link to a WAV that is not there
    assert sorted(p.name for p in audio_dir.iterdir()) == [
        "full.inbound.8000hz.part.pcm", "full.outbound.16000hz.part.pcm", "full.spool.json"]  # the audio so far is kept


def test_an_interrupted_calls_spool_becomes_its_wav_once_its_process_is_known_dead(
        tmp_path: Path, phone_call: np.ndarray) -> None:
    frames = list(_frames(_plan(_legs(phone_call, 10.0))))
    audio_dir = tmp_path / "audio"

    async def crashed_call() -> None:
        with ThreadPoolExecutor(1) as executor:
            recorder = _recorder(tmp_path, executor, audio_dir)
            # A SIP Call-ID: dots and an '@', and a neighbour whose id extends this one.
            await recorder.process_frame(CallStartedFrame(call_id="a84b@pc33.atlanta.com",
                                                          legs={"outbound": "agent", "inbound": "customer"},
                                                          source="sip"))
            for frame in frames:
                await recorder.process_frame(frame)
            await asyncio.get_running_loop().run_in_executor(executor, lambda: None)

    asyncio.run(asyncio.wait_for(crashed_call(), 60))  # the process "dies": no end, no close
    neighbour = audio_dir / "a84b_pc33.atlanta.com.2.inbound.8000hz.part.pcm"
    neighbour.write_bytes(bytes(1600))
    spool = spool_files(audio_dir, "a84b@pc33.atlanta.com")
    assert [p.name for p in spool] == ["a84b_pc33.atlanta.com.inbound.8000hz.part.pcm",
                                       "a84b_pc33.atlanta.com.outbound.16000hz.part.pcm",
                                       "a84b_pc33.atlanta.com.spool.json"]
    parts = {leg: np.fromfile(audio_dir / f"a84b_pc33.atlanta.com.{leg}.{rate}hz.part.pcm", dtype="<i2")
             for leg, rate in (("inbound", 8000), ("outbound", 16000))}
    statuses = {"a84b@pc33.atlanta.com": "active"}
    attached: dict[str, Path] = {}

    def recover(idle_seconds: float) -> list[str]:
        return recover_interrupted_calls(audio_dir, status_of=statuses.get, attach=attached.__setitem__,
                                         idle_seconds=idle_seconds)

    assert recover(0.0) == []  # still active: a held call, or a neighbour process's
    statuses["a84b@pc33.atlanta.com"] = "interrupted"
    assert recover(60.0) == []  # written to a moment ago: a stalled process may still be writing
    assert not attached and all(p.exists() for p in spool)

    assert recover(0.0) == ["a84b@pc33.atlanta.com"]

    wav = audio_dir / "a84b_pc33.atlanta.com.wav"
    assert attached == {"a84b@pc33.atlanta.com": wav}
    assert sorted(p.name for p in audio_dir.iterdir()) == [neighbour.name, wav.name]
    recovered = _read(wav)  # the call's leg order: outbound (agent) first
    assert recovered.shape == (len(parts["outbound"]), 2)
    for channel, (leg, rate) in enumerate((("outbound", 16000), ("inbound", 8000))):
        want = np.round(resample(parts[leg].astype(np.float32) / 32768.0, rate, 16000) * 32767).astype(np.int16)
        assert np.abs(recovered[: len(want), channel].astype(int) - want[: len(recovered)]).max() <= 1
    assert recover(0.0) == []  # done once


def test_a_recovery_that_cannot_attach_its_wav_leaves_no_wav_and_keeps_the_spool(
        tmp_path: Path, phone_call: np.ndarray) -> None:
    audio_dir = tmp_path / "audio"
    with ThreadPoolExecutor(1) as executor:
        spool = AudioSpool(audio_dir, "CA-gone", executor, leg_order=["inbound"])
        for frame in _frames(_plan(_legs(phone_call, 5.0))):
            spool.push(frame.leg, frame.pts, frame.pcm, frame.sample_rate)
    left = sorted(p.name for p in audio_dir.iterdir())

    def erased_meanwhile(call_id: str, wav: Path) -> None:
        raise RuntimeError(f"no interrupted call {call_id!r}")

    assert recover_interrupted_calls(audio_dir, status_of=lambda _c: "interrupted", attach=erased_meanwhile,
                                     idle_seconds=0.0) == []
    assert sorted(p.name for p in audio_dir.iterdir()) == left  # no orphan WAV; the claim went back
    (audio_dir / "CA-gone.spool.json").rename(audio_dir / "CA-gone.spool.json.recovering")  # another server's
    assert recover_interrupted_calls(audio_dir, status_of=lambda _c: "interrupted", attach=lambda *_: None,
                                     idle_seconds=60.0) == []  # a fresh claim is left alone
    assert [p.name for p in spool_files(audio_dir, "CA-gone")][-1] == "CA-gone.spool.json.recovering"


def _peak_assembling(directory: Path, minutes: int, *, recovered: bool) -> int:
    """Peak traced bytes while a two-leg 8 kHz call of ``minutes`` is assembled into its WAV, by
    ``finish`` or by the recovery of its spool after a crash."""
    chunk = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)  # 2 s
    spool = AudioSpool(directory, "long", InlineExecutor(), leg_order=["inbound", "outbound"], clock=lambda: 1e9)
    for start in range(0, minutes * 60, 2):
        for leg in ("inbound", "outbound"):
            spool.push(leg, float(start), chunk, 8000)
    tracemalloc.start()
    try:
        if recovered:  # the process died after its last write: the spool on disk is all there is
            recover_interrupted_calls(directory, status_of=lambda _c: "interrupted", attach=lambda *_: None,
                                      idle_seconds=0.0)
        else:
            spool.finish(directory / "long.wav", ["inbound", "outbound"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sf.info(directory / "long.wav").frames == minutes * 60 * 16000
    return peak


@pytest.mark.parametrize("recovered", [False, True], ids=["finish", "recovery"])
def test_assembling_the_wav_needs_no_more_memory_for_a_longer_call(tmp_path: Path, recovered: bool) -> None:
    # Holding the tracks whole took about 10 MB per minute of a two-leg call (600 MB for an hour).
    short = _peak_assembling(tmp_path / "short", 2, recovered=recovered)
    long = _peak_assembling(tmp_path / "long", 20, recovered=recovered)
    assert long < 1.5 * short and long < 32 << 20, f"{short >> 20} MiB for 2 min, {long >> 20} MiB for 20 min"
