"""A live call's audio spooled to disk as it arrives, and the call's WAV assembled from it at the end.

Each leg keeps at most about ``flush_seconds`` of audio in memory; a flush job on the recorder's
executor then writes it into the leg's part file, ``<call>.<leg>.<rate>hz.part.pcm`` (raw int16
little-endian mono at the leg's own rate). A chunk goes where its ``pts`` puts it: a gap reads back
as silence (the file is extended by seeking past its end), and where chunks overlap the later one
wins, as in the in-memory recorder this replaces. At the end of the call :meth:`AudioSpool.finish`
writes ``<call>.wav`` (16 kHz PCM_16, legs as channels) and deletes the part files; the part files
of a process that died stay on disk as the partial recording of the interrupted call, with the spool's
manifest ``<call>.spool.json`` (the call id, its legs' order, each part file's leg and rate), from which
:func:`recover_interrupted_calls` assembles the interrupted call's WAV once its process is known dead.

Why a file per leg rather than keeping frames: an hour of a two-leg call is about 230 MB of
frames held per call until it ends, and all of it was lost when the process died. For the same
reason the WAV is assembled as a stream: each part file is read, resampled and written in blocks,
so assembling it needs a few MB however long the call was (an hour's legs held at once as
float32 at 16 kHz took 600 MB in the process that carries every call).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from voice.audio import part_file_name, spool_manifest_path

log = logging.getLogger(__name__)

OUTPUT_RATE = 16000
"""Sample rate of the assembled call WAV (what the batch and ASR code read)."""
FLUSH_SECONDS = 2.0
"""Audio a leg buffers in memory before it is written: about 64 KB per leg at 16 kHz."""
_WRITE_BLOCK = 1 << 18
"""Frames per block when the WAV is written (1 MB of float32 per leg): a leg's track is never held
whole, nor are the legs stacked into one array."""
_READ_BLOCK = 1 << 16
"""Samples read from a part file at a time when the WAV is assembled (128 KB)."""
SPOOL_MANIFEST = ".spool.json"
"""Suffix of a spool's manifest (``voice.audio.spool_manifest_path``)."""
CLAIM_SUFFIX = ".recovering"
"""Added to a manifest by the server recovering its spool."""
MAX_GAP = 60.0
"""Seconds past the call's furthest audio a chunk may be placed. A chunk further ahead (an RTP
timestamp jump, a client bug) continues where its leg ended: one frame 30 min ahead made 2 s
of audio a 58 MB WAV and +310 MB peak memory in the process that carries every call.

Gaps are bounded by wall time too: the silence a leg's chunks leave between them adds up to at most
the wall time since the spool started plus ``MAX_GAP``; a chunk past that goes only as far as what
is left (nothing past the bound). A leg's track is then never longer than the call has lasted plus
``MAX_GAP`` plus the audio actually received (which may arrive faster than real time, as in a
replay). The live ingresses already bound their gaps to wall time (``telephony.legs.MAX_LEAD``,
5 s); this catches any other producer of frames, with room for the spool starting after the stream
(the call's start frame reaches the recorder later)."""


@dataclass
class _Leg:
    """One leg's spool. ``pending`` and the counters are shared with the event loop under
    ``queue_lock`` (held only to move list items); the file is only touched under ``write_lock``."""

    name: str
    path: Path
    rate: int
    flush_samples: int
    pending: list[tuple[int, np.ndarray]] = field(default_factory=list)
    pending_samples: int = 0
    peak_samples: int = 0
    end: int = 0
    """Samples the leg's track spans: the furthest chunk end seen (the file can be shorter)."""
    scheduled: bool = False
    created: bool = False
    listed: bool = False
    """Named in the spool's manifest."""
    masks: list[tuple[int, int]] = field(default_factory=list)
    """Sample ranges to keep silent (redaction), re-applied wherever later audio lands on them."""
    new_masks: list[tuple[int, int]] = field(default_factory=list)
    """Masks not yet applied to the file (the others are re-applied only where new audio lands)."""
    gap_samples: int = 0
    """Samples of gaps between chunks so far (silence the chunks' pts put in the track)."""
    rate_changed: bool = False
    lost_samples: int = 0
    write_failed: bool = False
    """A write of this leg failed (logged once; the total is logged at the call's end)."""
    queue_lock: threading.Lock = field(default_factory=threading.Lock)
    write_lock: threading.Lock = field(default_factory=threading.Lock)


class AudioSpool:
    """Per-leg part files of one call; :meth:`push` on the event loop, the rest on the executor."""

    def __init__(self, directory: Path, call_id: str, executor: Executor, *, leg_order: list[str] | None = None,
                 flush_seconds: float = FLUSH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock``: the wall clock in seconds (injectable for tests), for the bound in :data:`MAX_GAP`."""
        self.directory, self.call_id, self.executor = directory, call_id, executor
        self.stem = spool_manifest_path(directory, call_id).name.removesuffix(".spool.json")
        self.leg_order = list(leg_order or [])
        self.flush_seconds = flush_seconds
        self.legs: dict[str, _Leg] = {}
        self._written_legs: list[_Leg] = []  # in the manifest, under _manifest_lock
        self._manifest_lock = threading.Lock()
        self._finish_lock = threading.Lock()
        self._done = False
        self._span = 0.0  # seconds: the furthest chunk end of any leg
        self._clock = clock
        self._started = clock()
        self._warned: set[tuple[str, str]] = set()  # (kind, leg) warnings already logged
        self._early_masks: dict[str, list[tuple[float, float]]] = {}  # masks of legs with no audio yet

    @property
    def has_audio(self) -> bool:
        """Whether any audio was pushed (a call without audio gets no WAV)."""
        return bool(self.legs)

    def peak_buffered_samples(self) -> int:
        """The most samples any one leg held in memory at once."""
        return max((leg.peak_samples for leg in self.legs.values()), default=0)

    def push(self, leg_name: str, pts: float, pcm: np.ndarray, sample_rate: int) -> None:
        """Buffer one chunk; schedule a write once the leg holds ``flush_seconds``. Never blocks on I/O."""
        if self._done:
            return  # audio after the call's WAV was written has nowhere to go
        if not math.isfinite(pts):
            self._warn_once("pts", leg_name, "non-finite pts %s on leg %s of %s: chunk dropped", pts)
            return
        leg = self.legs.get(leg_name)
        if leg is None:
            leg = self.legs[leg_name] = self._new_leg(leg_name, sample_rate)
        elif sample_rate != leg.rate and not leg.rate_changed:
            leg.rate_changed = True
            log.warning("leg %s of %s changed rate %d -> %d: placed at %d Hz", leg_name, self.stem,
                        leg.rate, sample_rate, leg.rate)
        # Placed by the leg's first rate, as the in-memory recorder did.
        start = int(round(pts * leg.rate))
        if pts > self._span + MAX_GAP:
            self._warn_once("jump", leg_name, "pts %.1f s on leg %s of %s jumps past the call's audio: "
                            "placed where the leg ended", pts)  # fmt: skip
            start = leg.end
        start = self._bounded(leg, start, pts)
        self._span = max(self._span, (start + len(pcm)) / leg.rate)
        with leg.queue_lock:
            leg.pending.append((start, pcm))
            leg.pending_samples += len(pcm)
            leg.peak_samples = max(leg.peak_samples, leg.pending_samples)
            leg.end = max(leg.end, start + len(pcm))
            due = leg.pending_samples >= leg.flush_samples and not leg.scheduled
            leg.scheduled = leg.scheduled or due
        if due:
            self._schedule(leg)

    def mask(self, leg_name: str, start: float, end: float) -> None:
        """Silence ``start``-``end`` seconds of a leg, on disk within one write (redaction). Audio
        of that span arriving later is silenced too, on a leg with no audio yet as well. Never
        blocks on I/O."""
        leg = self.legs.get(leg_name)
        if self._done or not end > start:
            return
        if leg is None:  # a key pressed before the leg's first audio got here: applied when it does
            self._early_masks.setdefault(leg_name, []).append((start, end))
            return
        with leg.queue_lock:
            span = _samples(start, end, leg.rate)
            leg.masks.append(span)
            leg.new_masks.append(span)
            due = not leg.scheduled
            leg.scheduled = True
        if due:
            self._schedule(leg)

    def finish(self, path: Path, leg_order: list[str]) -> None:
        """Write what is left, assemble the call's WAV at ``path`` and delete the part files (blocking).

        Idempotent: a second call (a save retried after a cancellation) returns once the first is done.
        """
        with self._finish_lock:
            if self._done or not self.legs:
                self._done = True
                return
            legs = dict(self.legs)  # a copy: the event loop may still add a leg (audio after the end)
            for leg in legs.values():
                self._flush(leg)
            order = [n for n in leg_order if n in legs] + [n for n in legs if n not in leg_order]
            write_call_wav(path, [self._track(legs[name]) for name in order])
            self._done = True
            for leg in legs.values():
                leg.path.unlink(missing_ok=True)
            spool_manifest_path(self.directory, self.call_id).unlink(missing_ok=True)

    def _bounded(self, leg: _Leg, start: int, pts: float) -> int:
        """``start``, or as far as the leg's gaps may reach by the wall clock (see :data:`MAX_GAP`)."""
        gap = start - leg.end
        if gap <= 0:
            return start
        allowed = max(0, int((self._clock() - self._started + MAX_GAP) * leg.rate) - leg.gap_samples)
        if gap > allowed:
            self._warn_once("wall", leg.name, "pts %.1f s on leg %s of %s: its gaps run ahead of the wall "
                            "clock; placed at the bound", pts)  # fmt: skip
            start, gap = leg.end + allowed, allowed
        leg.gap_samples += gap
        return start

    def _warn_once(self, kind: str, leg_name: str, message: str, pts: float) -> None:
        if (kind, leg_name) not in self._warned:
            self._warned.add((kind, leg_name))
            log.warning(message, pts, leg_name, self.stem)

    def _new_leg(self, name: str, rate: int) -> _Leg:
        path = self.directory / part_file_name(self.call_id, name, rate)
        leg = _Leg(name, path, rate, max(1, int(self.flush_seconds * rate)))
        leg.masks += [_samples(start, end, rate) for start, end in self._early_masks.pop(name, [])]
        return leg

    def _add_to_manifest(self, leg: _Leg) -> None:
        """Name the leg's part file in the manifest (executor thread, once per leg, before its first
        write): what :func:`recover_interrupted_calls` needs if the process dies mid-call."""
        leg.path.parent.mkdir(parents=True, exist_ok=True)
        with self._manifest_lock:
            self._written_legs.append(leg)
            manifest = {"format": 1, "call_id": self.call_id, "leg_order": self.leg_order,
                        "legs": [{"leg": w.name, "file": w.path.name, "rate": w.rate} for w in self._written_legs]}
            path = spool_manifest_path(self.directory, self.call_id)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(manifest), encoding="utf-8")
            tmp.replace(path)
            leg.listed = True

    def _schedule(self, leg: _Leg) -> None:
        try:
            future = self.executor.submit(self._flush, leg)
        except RuntimeError:  # executor shut down: finish() (or nothing, at exit) writes the rest
            log.warning("audio of %s not spooled: the writer is shut down", self.stem)
            with leg.queue_lock:
                leg.scheduled = False
            return
        future.add_done_callback(_log_failure)

    def _flush(self, leg: _Leg) -> None:
        """Write the leg's pending chunks (executor thread). Chunks are taken out under the write
        lock, so jobs of one leg on several threads still write in arrival order."""
        with leg.write_lock:
            with leg.queue_lock:
                chunks, leg.pending = leg.pending, []
                leg.pending_samples, leg.scheduled = 0, False
                masks, fresh = list(leg.masks), leg.new_masks
                leg.new_masks = []
            if not (chunks or fresh) or self._done:
                return
            try:
                if not leg.listed:
                    self._add_to_manifest(leg)
                self._write(leg, chunks, fresh + _touched(masks, chunks))
            except OSError as exc:
                # Why: the call goes on; a full disk must not grow memory. The WAV gets silence there.
                leg.lost_samples += sum(len(pcm) for _, pcm in chunks)
                if not leg.write_failed:  # once per leg: a full disk failed every 2 s flush, each
                    leg.write_failed = True  # with a traceback; _track() reports the total at the end
                    log.error("cannot write the recording of %s, leg %s, to %s: %s (the call goes on; its "
                              "recording gets silence for what is not written)", self.stem, leg.name,
                              leg.path, exc)

    def _write(self, leg: _Leg, chunks: list[tuple[int, np.ndarray]], masks: list[tuple[int, int]]) -> None:
        flags = os.O_RDWR | os.O_CREAT | (0 if leg.created else os.O_TRUNC)  # never mix in an old file
        leg.path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(leg.path, flags, 0o666), "r+b") as f:
            leg.created = True
            for start, data in _runs(chunks):
                f.seek(start * 2)  # past the end: the gap reads back as zeros
                f.write(data)
            written = f.seek(0, os.SEEK_END) // 2
            for begin, end in masks:
                if begin < written:
                    f.seek(begin * 2)
                    f.write(bytes(2 * (min(end, written) - begin)))

    def _track(self, leg: _Leg) -> Generator[np.ndarray, None, None]:
        if leg.lost_samples:
            log.error("recording of %s misses %.1f s of leg %s (write errors)", self.stem,
                      leg.lost_samples / leg.rate, leg.path.name)
        if not leg.path.exists():
            return track_blocks(None, leg.rate, leg.end)
        # A trailing empty chunk still spans its place: past the file's end the track reads as silence.
        return track_blocks(leg.path, leg.rate, max(leg.end, leg.path.stat().st_size // 2))


def recover_interrupted_calls(audio_dir: Path, *, status_of: Callable[[str], str | None],
                              attach: Callable[[str, Path], None], idle_seconds: float) -> list[str]:
    """Assemble the WAV of every call whose process died mid-call, from its spool; returns their ids.

    A spool is recovered once its call is ``interrupted`` (``status_of``: the heartbeat sweep's
    verdict, which ``LiveCallStore.spool_status`` also gives a ``done`` call whose WAV could not be
    written at its end) and none of its files changed for ``idle_seconds``, so a process that only
    stalled and still writes keeps its spool. One server claims it by renaming the manifest (two
    servers on one data dir never both assemble it). The WAV is written like a finished call's;
    ``attach`` then records it on the call, and only after that are the part files deleted. A failure puts
    the claim back (and deletes a WAV no call points to), for the next round; a claim left by a
    server that died while recovering is taken back after ``idle_seconds``. Blocking (file and
    database work): run it off the event loop.
    """
    _release_stale_claims(audio_dir, idle_seconds)
    recovered = []
    for manifest_path in sorted(audio_dir.glob("*" + SPOOL_MANIFEST)):
        try:
            call_id = _recover_one(audio_dir, manifest_path, status_of, attach, idle_seconds)
        except Exception:  # noqa: BLE001 - one bad spool must not keep the others from recovery
            log.exception("could not recover the audio of the interrupted call in %s; retried later",
                          manifest_path.name)
            continue
        if call_id is not None:
            recovered.append(call_id)
    return recovered


def _recover_one(audio_dir: Path, manifest_path: Path, status_of: Callable[[str], str | None],
                 attach: Callable[[str, Path], None], idle_seconds: float) -> str | None:
    """Recover one spool (see :func:`recover_interrupted_calls`); its call id, or None if not due."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    call_id, legs = str(manifest["call_id"]), list(manifest["legs"])
    parts = [(audio_dir / Path(str(leg["file"])).name, int(leg["rate"])) for leg in legs]
    files = [manifest_path] + [path for path, _ in parts if path.exists()]
    if time.time() - max(f.stat().st_mtime for f in files) < idle_seconds or status_of(call_id) != "interrupted":
        return None
    claimed = manifest_path.with_name(manifest_path.name + CLAIM_SUFFIX)
    try:
        os.rename(manifest_path, claimed)  # atomic: of two servers, one recovers
    except FileNotFoundError:
        return None
    wav = audio_dir / f"{manifest_path.name.removesuffix(SPOOL_MANIFEST)}.wav"
    try:
        write_call_wav(wav, [_part_track(*parts[i]) for i in _leg_order(manifest)])
        try:
            attach(call_id, wav)
        except Exception:
            wav.unlink(missing_ok=True)  # erased or changed meanwhile: no recording without its call
            raise
    except Exception:
        os.rename(claimed, manifest_path)
        raise
    for path in [claimed, *files[1:]]:
        path.unlink(missing_ok=True)
    log.warning("recovered the recording of interrupted call %s: %s", call_id, wav)
    return call_id


def _release_stale_claims(audio_dir: Path, idle_seconds: float) -> None:
    """Claims of a server that died while recovering go back, to be recovered again."""
    for claimed in audio_dir.glob("*" + SPOOL_MANIFEST + CLAIM_SUFFIX):
        with contextlib.suppress(OSError):  # the rename sets ctime: the claim's age
            if time.time() - claimed.stat().st_ctime >= idle_seconds:
                os.rename(claimed, claimed.with_name(claimed.name.removesuffix(CLAIM_SUFFIX)))


def _leg_order(manifest: dict) -> list[int]:
    """Indexes into the manifest's legs: the call's leg order first, then the rest as first written."""
    names = [str(leg["leg"]) for leg in manifest["legs"]]
    ordered = [names.index(n) for n in manifest.get("leg_order", []) if n in names]
    return ordered + [i for i in range(len(names)) if i not in ordered]


def _part_track(path: Path, rate: int) -> Generator[np.ndarray, None, None]:
    """A recovered part file's track (checked now, read as the WAV is written)."""
    if rate <= 0:
        raise ValueError(f"{path.name}: rate {rate}")
    if not path.exists():  # listed, then the process died before its first write reached the disk
        log.warning("%s is listed in its spool's manifest but missing: that leg is silent", path.name)
        return track_blocks(None, rate, 0)
    return track_blocks(path, rate, path.stat().st_size // 2)


def track_blocks(path: Path | None, rate: int, samples: int) -> Generator[np.ndarray, None, None]:
    """A part file (int16 at ``rate``) as float32 at :data:`OUTPUT_RATE`, in blocks of exactly
    :data:`_WRITE_BLOCK` frames but the last.

    ``samples`` is the track's length at ``rate``: past the file's end (or with no file, ``None``) it
    reads as silence. Why one soxr stream for the whole track: its output is bit for bit a one-shot
    ``soxr.resample`` of the track (as ``voice.audio`` checks), while memory stays a few blocks.
    """
    stream = None if rate == OUTPUT_RATE else soxr.ResampleStream(rate, OUTPUT_RATE, 1, dtype="float32")
    held: list[np.ndarray] = []
    count = 0
    for pcm, last in _read_blocks(path, samples):
        block = pcm.astype(np.float32) / 32768.0
        if stream is not None:
            block = stream.resample_chunk(block, last=last)
        held.append(block)
        count += len(block)
        while count >= _WRITE_BLOCK:
            joined = np.concatenate(held)
            yield joined[:_WRITE_BLOCK]
            held, count = [joined[_WRITE_BLOCK:]], count - _WRITE_BLOCK
    if count:
        yield np.concatenate(held)


def _read_blocks(path: Path | None, samples: int) -> Iterator[tuple[np.ndarray, bool]]:
    """``samples`` int16 samples of ``path``, zeros past its end, in blocks of :data:`_READ_BLOCK`,
    each with whether it is the last; at least one block (the resampler's flush needs it)."""
    with open(path, "rb") if path is not None else contextlib.nullcontext() as f:
        done = 0
        while True:
            block = np.zeros(min(_READ_BLOCK, samples - done), dtype="<i2")
            data = f.read(2 * len(block)) if f is not None else b""
            read = len(data) // 2  # an odd last byte (a write cut short) is not a sample
            block[:read] = np.frombuffer(data, dtype="<i2", count=read)
            done += len(block)
            yield block, done >= samples
            if done >= samples:
                return


def write_call_wav(path: Path, tracks: list[Generator[np.ndarray, None, None]]) -> None:
    """Tracks (float32 at 16 kHz, in blocks as :func:`track_blocks` gives them) side by side as channels,
    shorter ones padded with silence; written to a temporary file and moved into place, so a reader
    never sees half a WAV."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    try:
        with contextlib.ExitStack() as stack:
            for track in tracks:
                stack.callback(track.close)  # their part files close even if a write fails
            out = stack.enter_context(sf.SoundFile(tmp, "w", OUTPUT_RATE, len(tracks), "PCM_16"))
            while True:
                # Every block but a track's last is _WRITE_BLOCK long, so the tracks stay aligned.
                blocks = [next(track, None) for track in tracks]
                length = max((len(b) for b in blocks if b is not None), default=0)
                if length == 0:
                    break
                frame = np.zeros((length, len(tracks)), dtype=np.float32)
                for i, b in enumerate(blocks):
                    if b is not None:
                        frame[: len(b), i] = b
                out.write(frame)
        tmp.replace(path)
    except BaseException:
        # Why: a full disk left <call>.tmp.wav holding part of the call's audio: nothing pointed
        # to it, erasure did not delete it, and it kept the disk full for the next calls.
        tmp.unlink(missing_ok=True)
        raise


def _samples(start: float, end: float, rate: int) -> tuple[int, int]:
    """Seconds ``start``-``end`` as a leg's sample range, rounded outwards."""
    return max(0, int(start * rate)), int(math.ceil(end * rate))


def _touched(masks: list[tuple[int, int]], chunks: list[tuple[int, np.ndarray]]) -> list[tuple[int, int]]:
    """The masks that chunks just written overlap (they must be silenced again)."""
    return [(b, e) for b, e in masks if any(start < e and start + len(pcm) > b for start, pcm in chunks)]


def _runs(chunks: list[tuple[int, np.ndarray]]) -> Iterator[tuple[int, bytes]]:
    """Chunks as (first sample, bytes), contiguous ones joined into one write. Samples before 0 are
    dropped (a file has no negative offsets)."""
    run_start, run_end = 0, 0
    parts: list[bytes] = []
    for start, pcm in chunks:
        if start < 0:
            pcm, start = pcm[-start:], 0
        if len(pcm) == 0:
            continue
        if parts and start != run_end:
            yield run_start, b"".join(parts)
            parts = []
        if not parts:
            run_start = run_end = start
        parts.append(np.asarray(pcm, dtype="<i2").tobytes())
        run_end += len(pcm)
    if parts:
        yield run_start, b"".join(parts)


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("audio spool write failed: %s", future.exception())
