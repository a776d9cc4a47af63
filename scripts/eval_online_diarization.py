"""Online speaker attribution on mixed phone calls: DER vs the reference and vs offline diarization.

For every audio + RTTM pair in the data directories (default: the four SpokenWOZ calls, 8 kHz
stereo mixed to mono as a recorder port would deliver them, and pyannote's telephone sample),
the call is replayed in simulated real time (20 ms chunks, computation-unaware: no sleeping)
through :class:`diarize.streaming.OnlineSpeakerAttributor`, and scored with pyannote.metrics
(collar 0.25 s total, overlap scored, whole recording) against

- the reference RTTM, and
- the offline :class:`diarize.pipeline.Diarizer` output of the same mono audio (2 speakers),

both with the *final* labels (``latency`` = ``duration`` behind the audio) and with the
*provisional* labels (as first shown, ``step`` behind). It also reports the attributor's
real-time factor and the compute time of one window (the latency the attributor adds on top
of its algorithmic delay), next to the machine's load average.

    .venv/bin/python scripts/eval_online_diarization.py --out docs/results/online_diarization.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from diarize.embedding import SpeakerEmbedder  # noqa: E402
from diarize.eval import (  # noqa: E402
    DerComponents,
    ReferenceFile,
    der_components,
    find_reference_files,
    pooled,
    whole_recording,
)
from diarize.streaming import OnlineAttributionConfig, OnlineSpeakerAttributor  # noqa: E402
from diarize.types import DiarizationOptions, SpeakerTurn  # noqa: E402
from voice.processor import FrameProcessor, Pipeline  # noqa: E402

SHARED = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_DIRS = (
    SHARED / "diarization" / "spokenwoz_calls_8k",
    SHARED / "diarization" / "pyannote_sample_telephone",
)
CHUNK_SECONDS = 0.02
"""One RTP packet / Twilio media message."""


class TimedEmbedder:
    """The real embedder, timing each call (the attributor's cost is almost all CAM++)."""

    def __init__(self, inner: SpeakerEmbedder) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.seconds: list[float] = []

    def embed(self, audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed(audio, sample_rate)
        finally:
            self.seconds.append(time.perf_counter() - started)


@dataclass
class OnlineRun:
    """What one replay of a call through the attributor produced."""

    final: list[SpeakerTurn]
    provisional: list[SpeakerTurn]
    speakers: int
    seconds: float
    window_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class FileScores:
    """DER components of one call, per (hypothesis, reference) pair."""

    uri: str
    duration: float
    online_speakers: int
    scores: dict[str, DerComponents]
    seconds: float
    windows: int
    window_ms_p50: float
    window_ms_p95: float
    embed_seconds: float


def replay(
    audio: np.ndarray, attributor: OnlineSpeakerAttributor, embedder: TimedEmbedder
) -> OnlineRun:
    """Feed the call in 20 ms chunks; collect final spans and the provisional ones as shown."""
    attributor.reset()
    embedder.seconds = []
    chunk = round(CHUNK_SECONDS * attributor.sample_rate)
    final: list[SpeakerTurn] = []
    provisional: list[SpeakerTurn] = []
    shown_until = 0.0  # provisional labels are read as each step's window is finished
    spent = 0.0
    for first in range(0, len(audio), chunk):
        started = time.perf_counter()
        final += attributor(audio[first : first + chunk], first / attributor.sample_rate)
        spent += time.perf_counter() - started
        while attributor.time >= shown_until + attributor.step:
            provisional += attributor.timeline(shown_until, shown_until + attributor.step)
            shown_until += attributor.step
    started = time.perf_counter()
    final += attributor.finish()
    spent += time.perf_counter() - started
    provisional += attributor.timeline(shown_until, attributor.time)
    return OnlineRun(final, provisional, len(attributor.speakers), spent, list(embedder.seconds))


def annotation(turns: Iterable[SpeakerTurn], uri: str) -> Any:
    from pyannote.core import Annotation, Segment

    result = Annotation(uri=uri)
    for index, turn in enumerate(turns):
        result[Segment(turn.start, turn.end), index] = turn.speaker
    return result.support()  # merge the per-step pieces of one speaker


def offline_reference(ref: ReferenceFile, audio: np.ndarray, cache: Path | None) -> Any:
    """The offline pipeline's turns for the call (cached as RTTM: it takes minutes on 2 cores)."""
    from diarize.rttm import read_rttm, write_rttm

    cached = cache / f"{ref.uri}.offline.rttm" if cache else None
    if cached is not None and cached.is_file():
        return read_rttm(cached).get(ref.uri)
    from diarize.pipeline import Diarizer

    result = Diarizer.load().diarize(audio, 16000, DiarizationOptions.telephone_call())
    offline = result.to_annotation(ref.uri)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_rttm(offline, cached)
    return offline


def score_file(
    ref: ReferenceFile, audio: np.ndarray, run: OnlineRun, offline: Any, collar: float
) -> FileScores:
    duration = len(audio) / 16000
    uem = ref.uem if ref.uem is not None else whole_recording(ref.uri, duration)
    hypotheses = {
        "final": annotation(run.final, ref.uri),
        "provisional": annotation(run.provisional, ref.uri),
    }
    scores = {
        f"{name}_vs_reference": der_components(ref.reference, hyp, uem, collar=collar)
        for name, hyp in hypotheses.items()
    }
    scores.update(
        {
            f"{name}_vs_offline": der_components(offline, hyp, uem, collar=collar)
            for name, hyp in hypotheses.items()
        }
    )
    scores["offline_vs_reference"] = der_components(ref.reference, offline, uem, collar=collar)
    ms = np.array(run.window_seconds or [0.0]) * 1000
    return FileScores(
        ref.uri,
        duration,
        run.speakers,
        scores,
        run.seconds,
        len(run.window_seconds),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 95)),
        sum(run.window_seconds),
    )


def evaluate(
    dirs: Iterable[Path], config: OnlineAttributionConfig, *, collar: float, cache: Path | None
) -> list[FileScores]:
    from voice.audio import load_audio

    embedder = TimedEmbedder(SpeakerEmbedder.load())
    attributor = OnlineSpeakerAttributor(embedder, config)
    results = []
    for ref in (r for d in dirs for r in find_reference_files(d)):
        audio = load_audio(ref.audio).mono()  # stereo legs mixed: a recorder port
        offline = offline_reference(ref, audio, cache)
        run = replay(audio, attributor, embedder)
        results.append(score_file(ref, audio, run, offline, collar))
        print(_row(results[-1]), flush=True)
    return results


@dataclass(frozen=True)
class RoleScores:
    """Talk time (s, reference words) by the role the processor gave it, on one call."""

    uri: str
    agent: str
    """Reference speaker that is the agent (decided from the whole reference transcript)."""
    correct: float
    wrong: float
    unknown: float
    decided_at: float | None
    """Call-audio time of the first final that carried a role."""
    method: str | None
    pieces: int
    """Finals out (turns split at speaker changes) per final in."""
    turns: int

    @property
    def accuracy(self) -> float:
        """Share of talk time with the right role ("unknown" counts as not right)."""
        return self.correct / max(self.correct + self.wrong + self.unknown, 1e-9)


def reference_turns(
    words: list[dict[str, Any]], endpoint: float, max_turn: float = 30.0
) -> list[list[dict[str, Any]]]:
    """The reference words cut into turns as the ASR's VAD on the *mixed* channel would: a new
    turn after ``endpoint`` s without any word, whoever speaks (so turns can hold both
    parties), or once a turn is ``max_turn`` s long (StreamingAsrProcessor's ``max_turn``)."""
    turns: list[list[dict[str, Any]]] = []
    last_end = -1e9
    for word in sorted(words, key=lambda w: w["start"]):
        if (
            not turns
            or word["start"] - last_end > endpoint
            or word["end"] - turns[-1][0]["start"] > max_turn
        ):
            turns.append([])
        turns[-1].append(word)
        last_end = max(last_end, word["end"])
    return turns


def measure_roles(
    ref: ReferenceFile,
    embedder: SpeakerEmbedder,
    config: OnlineAttributionConfig,
    endpoint: float = 0.6,
) -> RoleScores:
    """Replay a SpokenWOZ call through SpeakerAttributionProcessor: 8 kHz stereo mixed to one
    int16 leg in 20 ms AudioFrames, plus the reference words as TranscriptFinalFrames at the
    moment the mixed-channel VAD would close each turn; score the roles on the words."""
    import asyncio

    import soundfile as sf

    words = json.loads(ref.audio.with_suffix(".json").read_text(encoding="utf-8"))
    agent = _reference_agent(words)
    stereo, rate = sf.read(ref.audio, dtype="int16")
    mono = stereo.astype(np.int32).mean(axis=1).astype(np.int16)
    finals = _final_frames(words, endpoint)
    pieces, method = asyncio.run(_replay_call(ref.uri, mono, rate, finals, embedder, config))
    owner = {(w["word"], w["start"], w["end"]): w["speaker"] for w in words}
    talk = {"correct": 0.0, "wrong": 0.0, "unknown": 0.0}
    for piece in pieces:
        for word in piece.words:
            truth = "agent" if owner[(word.text, word.start, word.end)] == agent else "customer"
            verdict = "correct" if piece.role == truth else "wrong"
            talk["unknown" if piece.role == "unknown" else verdict] += word.end - word.start
    decided = next((p.audio_time for p in pieces if p.role != "unknown"), None)
    return RoleScores(
        ref.uri,
        agent,
        talk["correct"],
        talk["wrong"],
        talk["unknown"],
        decided,
        method,
        len(pieces),
        len(finals),
    )


def _reference_agent(words: list[dict]) -> str:
    """Which reference speaker is the agent, by the same rule the live path uses."""
    from voice.roles import SpokenTurn, decide_agent

    ordered = sorted(words, key=lambda w: w["start"])
    speaker_turns = [
        SpokenTurn(speaker, group[0]["start"], " ".join(w["word"] for w in group))
        for speaker, group in (
            (k, list(g)) for k, g in itertools.groupby(ordered, key=lambda w: w["speaker"])
        )
    ]
    return decide_agent(speaker_turns, sorted({w["speaker"] for w in words})).agent or "A"


def _final_frames(words: list[dict], endpoint: float) -> list[tuple[float, Any]]:
    """(audio time the VAD would close the turn, its TranscriptFinalFrame) per reference turn."""
    from voice.frames import TimedWord, TranscriptFinalFrame

    finals = []
    for index, turn in enumerate(reference_turns(words, endpoint)):
        timed = [TimedWord(w["word"], w["start"], w["end"]) for w in turn]
        frame = TranscriptFinalFrame(
            turn_id=f"mixed-{index + 1}",
            leg="mixed",
            text=" ".join(w.text for w in timed),
            words=timed,
            start=timed[0].start,
            end=max(w.end for w in timed),
            audio_time=timed[-1].end + endpoint,
        )
        finals.append((timed[-1].end + endpoint, frame))
    return finals


async def _replay_call(
    call_id: str,
    mono: np.ndarray,
    rate: int,
    finals: list[tuple[float, Any]],
    embedder: SpeakerEmbedder,
    config: OnlineAttributionConfig,
) -> tuple[list[Any], str | None]:
    """The attributed finals and the role method, after feeding audio and finals in time order."""
    from concurrent.futures import ThreadPoolExecutor

    from voice.frames import AudioFrame, CallStartedFrame, TranscriptFinalFrame
    from voice.processors.speakers import SpeakerAttributionProcessor

    with ThreadPoolExecutor(1) as executor:
        processor = SpeakerAttributionProcessor(embedder=embedder, executor=executor, config=config)
        collector = _Collector()
        pipeline = Pipeline([processor, collector])
        await pipeline.process_frame(CallStartedFrame(call_id=call_id, legs={"mixed": "unknown"}))
        chunk, pending = rate // 50, list(finals)
        for first in range(0, len(mono), chunk):
            while pending and pending[0][0] <= first / rate:
                await processor.drained()  # simulated real time: the attributor keeps up
                await pipeline.process_frame(pending.pop(0)[1])
            pcm = mono[first : first + chunk]
            await pipeline.process_frame(
                AudioFrame(pcm=pcm, sample_rate=rate, leg="mixed", pts=first / rate)
            )
        for _, final in pending:
            await processor.drained()
            await pipeline.process_frame(final)
        await pipeline.close()
    finals_out = [f for f in collector.frames if isinstance(f, TranscriptFinalFrame)]
    return finals_out, processor.role_method("mixed")


class _Collector(FrameProcessor):
    """End of the replay pipeline: keeps every frame that reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Any] = []

    async def process_frame(self, frame: Any) -> None:
        self.frames.append(frame)


def evaluate_roles(dirs: Iterable[Path], config: OnlineAttributionConfig) -> list[RoleScores]:
    """Role accuracy of the processor on every call that has a word transcript (``<id>.json``)."""
    embedder = SpeakerEmbedder.load()
    results = []
    for ref in (
        r for d in dirs for r in find_reference_files(d) if r.audio.with_suffix(".json").is_file()
    ):
        item = measure_roles(ref, embedder, config)
        results.append(item)
        print(
            f"{item.uri:10s} roles: right {100 * item.accuracy:.1f} % of talk time, wrong "
            f"{item.wrong:.1f} s, unknown {item.unknown:.1f} s, decided at {item.decided_at} s by "
            f"{item.method}, agent {item.agent}, {item.turns} finals -> {item.pieces}",
            flush=True,
        )
    return results


def _row(item: FileScores) -> str:
    der = {k: f"{100 * v.der:5.1f}" for k, v in item.scores.items()}
    return (
        f"{item.uri:10s} spk={item.online_speakers} final/ref={der['final_vs_reference']} "
        f"final/off={der['final_vs_offline']} prov/ref={der['provisional_vs_reference']} "
        f"offline/ref={der['offline_vs_reference']} rtf={item.seconds / item.duration:.3f} "
        f"win p50={item.window_ms_p50:.0f}ms p95={item.window_ms_p95:.0f}ms"
    )


def report(
    results: list[FileScores], config: OnlineAttributionConfig, collar: float, load_before: Any
) -> dict[str, Any]:
    """Per-file and pooled numbers, the settings and the machine load, as JSON-ready data."""
    spokenwoz = [r for r in results if r.uri != "sample"]
    pools = {}
    for name, items in (("spokenwoz", spokenwoz), ("all", results)):
        if items:
            pools[name] = {
                key: {
                    **asdict(pooled(r.scores[key] for r in items)),
                    "der": pooled(r.scores[key] for r in items).der,
                }
                for key in items[0].scores
            }
    seconds = sum(r.seconds for r in results)
    duration = sum(r.duration for r in results)
    return {
        "settings": {
            "config": asdict(config),
            "collar": collar,
            "skip_overlap": False,
            "chunk_seconds": CHUNK_SECONDS,
            "audio": "stereo mixed to mono, 16 kHz",
            "load_average_before": load_before,
            "load_average_after_der": os.getloadavg(),
            "cpus": os.cpu_count(),
        },
        "files": [
            {
                "uri": r.uri,
                "duration": r.duration,
                "online_speakers": r.online_speakers,
                "rtf": r.seconds / r.duration,
                "windows": r.windows,
                "window_ms_p50": r.window_ms_p50,
                "window_ms_p95": r.window_ms_p95,
                "embed_seconds": r.embed_seconds,
                **{k: {**asdict(v), "der": v.der} for k, v in r.scores.items()},
            }
            for r in results
        ],
        "pooled": pools,
        "rtf": seconds / duration if duration else 0.0,
    }


def markdown(data: dict[str, Any]) -> str:
    """The per-call table of docs/results/online_diarization.md."""

    def cell(item: dict[str, Any]) -> str:
        total = item["total"] or 1.0
        return (
            f"{100 * item['der']:.1f} ({100 * item['missed'] / total:.1f} / "
            f"{100 * item['false_alarm'] / total:.1f} / {100 * item['confusion'] / total:.1f})"
        )

    keys = (
        "final_vs_reference",
        "provisional_vs_reference",
        "offline_vs_reference",
        "final_vs_offline",
    )
    lines = [
        "| call | s | online final vs ref | online provisional vs ref | offline vs ref | "
        "online final vs offline | RTF | window ms p50 / p95 |",
        "|---" * 8 + "|",
    ]
    for item in data["files"]:
        lines.append(
            f"| {item['uri']} | {item['duration']:.0f} | "
            + " | ".join(cell(item[k]) for k in keys)
            + f" | {item['rtf']:.2f} | {item['window_ms_p50']:.0f} / {item['window_ms_p95']:.0f} |"
        )
    for name, pool in data["pooled"].items():
        lines.append(
            f"| **pooled {name}** | | " + " | ".join(cell(pool[k]) for k in keys) + " | | |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="*", type=Path, default=list(DEFAULT_DIRS))
    parser.add_argument("--duration", type=float, default=OnlineAttributionConfig.duration)
    parser.add_argument("--step", type=float, default=OnlineAttributionConfig.step)
    parser.add_argument(
        "--new-speaker-distance", type=float, default=OnlineAttributionConfig.new_speaker_distance
    )
    parser.add_argument("--collar", type=float, default=0.25)
    parser.add_argument(
        "--cache",
        type=Path,
        default=REPO / "out" / "online_diarization_cache",
        help="where the offline diarization of each call is kept between runs",
    )
    parser.add_argument(
        "--skip-roles",
        action="store_true",
        help="skip the role replay through the processor (SpokenWOZ word transcripts)",
    )
    parser.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = parser.parse_args(argv)
    config = OnlineAttributionConfig(
        duration=args.duration, step=args.step, new_speaker_distance=args.new_speaker_distance
    )
    import torch

    # One intra-op thread, as in the server (Diarizer.load does the same): on the shared 2-core
    # machine torch's default of 2 threads made every embedding several times slower.
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    print(f"load average before: {load_before}", flush=True)
    results = evaluate(args.dirs, config, collar=args.collar, cache=args.cache)
    data = report(results, config, args.collar, load_before)
    if not args.skip_roles:
        data["roles"] = [
            asdict(r) | {"accuracy": r.accuracy} for r in evaluate_roles(args.dirs, config)
        ]
    for name, pool in data["pooled"].items():
        print(name, {k: round(100 * v["der"], 1) for k, v in pool.items()})
    data["settings"]["load_average_after"] = os.getloadavg()
    print(markdown(data))
    print(f"rtf={data['rtf']:.3f} load average after: {os.getloadavg()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
