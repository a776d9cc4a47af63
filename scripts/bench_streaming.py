#!/usr/bin/env python
"""Streaming ASR benchmark: N concurrent stereo calls replayed through StreamingAsrProcessor.

No server: each call is a pipeline ``[StreamingAsrProcessor, FrameRecorder]`` fed 20 ms frames of
both legs (8 kHz, as telephony delivers them), all calls on one event loop and one process-wide
DecodeScheduler over one loaded model, as in ``voice serve``.

Reported per N (one table row each):

- word-commit latency p50/p95: when a word is first shown committed (a partial's committed
  words, or the turn's final for words no partial committed) minus when its audio end was fed;
- end of turn -> final p50/p95, measured two ways: from the VAD's turn-close event (the
  ``SpeechStoppedFrame``, emitted ``min_silence_duration`` after the last speech) and from the
  feed time of the final's last word end (this one includes the VAD hang time);
- WER of the finals, of the partials alone (per turn, the last partial's committed + tentative
  words: LocalAgreement with a flush at the turn end) and of committed partial words only,
  against the offline WER of the same model on the same legs (``WhisperEngine.transcribe`` of
  the whole leg over its VAD regions). References are SpokenWOZ's silver word lists;
- process CPU (cores busy) and RSS; decode time percentiles from the scheduler;
- lag growth: median partial lag and final latency in the last third of the calls minus the
  first third. A row is *sustained* when both grew by less than 0.5 s and frames were never
  fed more than 0.25 s late (the event loop kept up).

Modes: ``realtime`` (wall clock; the default), ``unaware`` (computation-unaware: the clock is
the audio fed, feeding waits for decodes; latencies are the policy's own, independent of CPU),
``fast`` (as fast as possible; finals/WER only). The host is shared: the script prints the load
average next to every row. Re-run on a quiet machine with the same command.

Examples:
    .venv/bin/python scripts/bench_streaming.py --calls 1,2,3,4               # the CPU table
    .venv/bin/python scripts/bench_streaming.py --calls 1 --mode unaware --duration 60
    .venv/bin/python scripts/bench_streaming.py --device cuda --calls 50,100 --max-batch 32 \\
        --procs 4 --duration 60          # see scripts/gpu_bench.sh
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from voice.live.replay import growth, percentile  # noqa: E402 - after the path set-up

DATA = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CALLS = DATA / "diarization" / "spokenwoz_calls_8k"
LEGS = {"A": ("customer", 0), "B": ("agent", 1)}  # SpokenWOZ: speaker A left, B right


@dataclass
class Call:
    """One stereo call: int16 PCM per leg at its native rate, and each leg's reference text."""

    name: str
    rate: int
    legs: dict[str, np.ndarray]
    refs: dict[str, str]

    @property
    def duration(self) -> float:
        return min(len(p) for p in self.legs.values()) / self.rate


def load_calls(folder: Path, duration: float | None) -> list[Call]:
    """The folder's ``<id>.wav`` + ``<id>.json`` pairs, cut to ``duration`` seconds."""
    calls = []
    for path in sorted(folder.glob("*.wav")):
        ref_path = path.with_suffix(".json")
        if not ref_path.is_file():
            continue
        with wave.open(str(path)) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
        limit = len(pcm) if duration is None else int(duration * rate)
        words = json.loads(ref_path.read_text())
        end = limit / rate
        refs = {
            leg: " ".join(w["word"] for w in words if w["speaker"] == leg and w["end"] <= end)
            for leg in LEGS
        }
        legs = {leg: np.ascontiguousarray(pcm[:limit, ch]) for leg, (_, ch) in LEGS.items()}
        calls.append(Call(path.stem, rate, legs, refs))
    if not calls:
        raise SystemExit(f"no <id>.wav + <id>.json calls in {folder}")
    return calls


# --- offline reference -----------------------------------------------------------------------


def offline_texts(calls: list[Call], args: argparse.Namespace) -> dict[str, str]:
    """``call/leg`` -> offline transcript (whole leg, VAD regions), cached per model/duration."""
    cache_path = Path(args.cache)
    cache: dict[str, str] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    prefix = f"{args.model}|{args.device}|{args.duration}|"
    missing = [(c, leg) for c in calls for leg in LEGS if prefix + f"{c.name}/{leg}" not in cache]
    if missing:
        from asr import WhisperEngine
        from voice.audio import resample
        from voice.vad import detect_speech

        engine = WhisperEngine.load(args.model, device=args.device)
        for call, leg in missing:
            audio = resample(call.legs[leg].astype(np.float32) / 32768.0, call.rate, 16000)
            regions = [(r.start, r.end) for r in detect_speech(audio)]
            text = engine.transcribe(audio, speech=regions).text
            cache[prefix + f"{call.name}/{leg}"] = text
            print(f"offline {call.name}/{leg}: {len(text.split())} words", file=sys.stderr)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache, indent=1))
    return {f"{c.name}/{leg}": cache[prefix + f"{c.name}/{leg}"] for c in calls for leg in LEGS}


# --- one run of N calls ----------------------------------------------------------------------


@dataclass
class RunRaw:
    """Raw measurements of one run (picklable: shards send them to the parent)."""

    calls: int
    audio_seconds: float = 0.0
    commit: list[float] = field(default_factory=list)
    commit_by_final: int = 0
    final_from_close: list[float] = field(default_factory=list)
    final_from_word: list[float] = field(default_factory=list)
    lag_points: list[tuple[float, float]] = field(default_factory=list)  # (audio time, lag)
    final_points: list[tuple[float, float]] = field(default_factory=list)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)  # call/leg -> kind -> text
    max_slip: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    rss_mb: float = 0.0
    queue_samples: list[tuple[float, int, float]] = field(default_factory=list)
    scheduler: dict[str, Any] = field(default_factory=dict)


def build_scheduler(args: argparse.Namespace) -> Any:
    """Load the model once and start the process-wide decode scheduler."""
    from asr import AsrOptions
    from asr.batched import BatchedWhisperDecoder
    from asr.live import load_streaming_engine
    from asr.streaming import DecodeRequest, WhisperTurnDecoder
    from voice.live.scheduler import DecodeScheduler, SchedulerConfig

    engine = load_streaming_engine(
        args.model, device=args.device, compute_type=args.compute_type, workers=args.workers,
        cpu_threads=args.cpu_threads, encoder_window=args.encoder_window,
    )  # fmt: skip
    partial = AsrOptions(beam_size=args.partial_beam)
    final = AsrOptions(beam_size=args.final_beam)
    if args.max_batch > 1:
        decoder: Any = BatchedWhisperDecoder(engine, partial=partial, final=final)
    else:
        from voice.live.asr_runtime import partial_window

        around = partial_window(args.partial_window) if args.partial_window else None
        decoder = WhisperTurnDecoder(engine, partial=partial, final=final, around=around)
    silence = np.zeros(16000, dtype=np.float32)
    decoder.decode_batch([DecodeRequest(silence, 0.0, None, True, 0)])  # warm-up
    config = SchedulerConfig(workers=args.workers, max_batch=args.max_batch)
    return DecodeScheduler(decoder.decode_batch, config)


def streaming_config(args: argparse.Namespace) -> Any:
    from asr.streaming import StreamingConfig

    pause = None if args.pause_commit in ("off", "none") else float(args.pause_commit)
    defaults = StreamingConfig()
    if args.prompt_chars is None:
        args.prompt_chars = defaults.prompt_chars
    if args.final_context is None:
        args.final_context = defaults.final_context
    return StreamingConfig(
        step=args.step, first_decode=args.first_decode, agreement=args.agreement,
        pause_commit=pause, final_prompt=args.final_prompt, prompt_chars=args.prompt_chars,
        final_context=args.final_context,
    )  # fmt: skip


async def run_calls(n: int, calls: list[Call], scheduler: Any, args: argparse.Namespace) -> RunRaw:
    """Replay ``n`` calls at once (replicas of the files start ``stagger`` s later each)."""
    from voice.live import replay
    from voice.processor import Pipeline
    from voice.processors.asr import StreamingAsrProcessor

    mode = replay.ReplayMode(args.mode)
    config = streaming_config(args)
    jobs, pipelines, recorders, names = [], [], [], []
    audio_seconds = 0.0
    for i in range(n):
        call = calls[i % len(calls)]
        pad = np.zeros(int(args.stagger * (i // len(calls)) * call.rate), dtype=np.int16)
        legs = {leg: np.concatenate([pad, pcm]) for leg, pcm in call.legs.items()}
        audio_seconds += min(len(p) for p in legs.values()) / call.rate
        processor = StreamingAsrProcessor(scheduler, config=config)
        clock = replay.ReplayClock(mode)  # per call: in unaware mode each call has its own pace
        recorder = replay.FrameRecorder(clock)
        pipeline = Pipeline([processor, recorder])
        pipelines.append(pipeline)
        recorders.append(recorder)
        names.append(call.name)
        jobs.append(replay.replay_call(
            pipeline, legs, call.rate, call_id=f"{call.name}#{i}",
            roles={leg: role for leg, (role, _) in LEGS.items()}, mode=mode, clock=clock,
            busy=lambda p=processor: p.busy, drained=processor.drained,
        ))  # fmt: skip
    raw = RunRaw(n, audio_seconds)
    sampler = asyncio.create_task(_sample_queue(scheduler, replay.ReplayClock(mode), raw))
    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    logs = await asyncio.gather(*jobs)
    raw.wall_seconds = time.perf_counter() - wall0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    raw.cpu_seconds = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    raw.rss_mb = _rss_mb()
    sampler.cancel()
    for pipeline in pipelines:
        await pipeline.close()
    for name, log, recorder in zip(names, logs, recorders, strict=True):
        log.emitted = recorder.emitted
        _measure(raw, name, log)
    raw.scheduler = _scheduler_summary(scheduler)
    return raw


def _measure(raw: RunRaw, name: str, log: Any) -> None:
    from voice.live import replay

    raw.max_slip = max(raw.max_slip, log.max_slip)
    for leg in LEGS:
        for commit in replay.commit_latencies(log, leg):
            raw.commit.append(commit.latency)
            raw.commit_by_final += commit.by_final
        for audio_time, lag in replay.partial_lags(log, leg):
            raw.lag_points.append((audio_time, lag))
        for final in replay.final_latencies(log, leg):
            raw.final_from_close.append(final.from_close)
            raw.final_points.append((final.end, final.from_close))
            if final.from_last_word is not None:
                raw.final_from_word.append(final.from_last_word)
        raw.texts[f"{name}/{leg}#{log.call_id}"] = {
            "final": replay.final_text(log, leg),
            "partial": replay.partial_text(log, leg),
            "committed": replay.partial_text(log, leg, committed_only=True),
        }


async def _sample_queue(scheduler: Any, clock: Any, raw: RunRaw) -> None:
    while True:
        m = scheduler.metrics()
        raw.queue_samples.append((clock(), m.queue_depth, m.busy_fraction))
        await asyncio.sleep(0.5)


def _scheduler_summary(scheduler: Any) -> dict[str, Any]:
    m = scheduler.metrics()
    return {
        "decode_ms": {k: asdict(v) for k, v in m.decode_ms.items()},
        "wait_ms": {k: asdict(v) for k, v in m.wait_ms.items()},
        "partials_done": m.partials_done, "finals_done": m.finals_done,
        "coalesced": m.partials_coalesced, "spacing": m.partial_spacing,
    }  # fmt: skip


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_shard(n: int, args: argparse.Namespace) -> RunRaw:
    """One process' share of a run: its own model, scheduler and event loop."""
    calls = load_calls(Path(args.data), args.duration)
    scheduler = build_scheduler(args)
    try:
        return asyncio.run(run_calls(n, calls, scheduler, args))
    finally:
        scheduler.close()


# --- summary -------------------------------------------------------------------------------


def summarize(raws: list[RunRaw], offline: dict[str, str], refs: dict[str, str]) -> dict[str, Any]:
    """Merge shards' raw numbers into one table row."""
    from asr.wer import pooled, word_errors

    merged = RunRaw(sum(r.calls for r in raws))
    for r in raws:
        for key in ("commit", "final_from_close", "final_from_word", "lag_points", "final_points"):
            getattr(merged, key).extend(getattr(r, key))
        merged.texts.update(r.texts)
        merged.commit_by_final += r.commit_by_final
    wers: dict[str, float] = {}
    for kind in ("final", "partial", "committed"):
        counts = [word_errors(refs[k.split("#")[0]], t[kind]) for k, t in merged.texts.items()]
        wers[kind] = 100 * pooled(counts).wer
    off = [word_errors(refs[k.split("#")[0]], offline[k.split("#")[0]]) for k in merged.texts]
    wers["offline"] = 100 * pooled(off).wer
    wall = max(r.wall_seconds for r in raws)
    return {
        "calls": merged.calls,
        "commit_p50": percentile(merged.commit, 50), "commit_p95": percentile(merged.commit, 95),
        "words": len(merged.commit), "words_by_final": merged.commit_by_final,
        "final_close_p50": percentile(merged.final_from_close, 50),
        "final_close_p95": percentile(merged.final_from_close, 95),
        "final_word_p50": percentile(merged.final_from_word, 50),
        "final_word_p95": percentile(merged.final_from_word, 95),
        "wer": wers,
        "lag_p50": percentile([lag for _, lag in merged.lag_points], 50),
        "lag_growth": growth(merged.lag_points), "final_growth": growth(merged.final_points),
        "max_slip": max(r.max_slip for r in raws),
        "cpu_cores": sum(r.cpu_seconds for r in raws) / wall if wall else 0.0,
        "cpu_per_call_second": sum(r.cpu_seconds for r in raws)
        / max(1e-9, sum(r.audio_seconds for r in raws)),
        "rss_mb": sum(r.rss_mb for r in raws),
        "queue_max": max((q for r in raws for _, q, _ in r.queue_samples), default=0),
        "scheduler": [r.scheduler for r in raws],
        "load": os.getloadavg(),
    }  # fmt: skip




def sustained(row: dict[str, Any]) -> bool:
    return row["lag_growth"] < 0.5 and row["final_growth"] < 0.5 and row["max_slip"] < 0.25


def meets_goals(row: dict[str, Any]) -> bool:
    """Issue 4's targets: commit p50 <= 1.5 s, p95 <= 2.5 s, close -> final p50 <= 0.7 s,
    final WER <= offline + 3 points, sustained."""
    wer = row["wer"]
    return (
        row["commit_p50"] <= 1.5 and row["commit_p95"] <= 2.5 and row["final_close_p50"] <= 0.7
        and wer["final"] <= wer["offline"] + 3.0 and sustained(row)
    )  # fmt: skip


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nmodel {args.model} on {args.device}, mode {args.mode}, workers {args.workers} x "
          f"{args.cpu_threads} thread(s), batch {args.max_batch}, procs {args.procs}, step "
          f"{args.step} s, pause commit {args.pause_commit}, beams {args.partial_beam}/"
          f"{args.final_beam}, window {args.encoder_window}, prompt chars {args.prompt_chars}, "
          f"final context {args.final_context} s, duration {args.duration}")  # fmt: skip
    print("| calls | commit p50/p95 s | close->final p50/p95 ms | last word->final p50/p95 ms |"
          " WER final / partial / committed / offline % | lag p50 s | lag growth s | CPU cores |"
          " CPU s per call-s | RSS MB | queue max | partials / finals | sustained | goals |"
          " load 1m |")
    print("|---" * 15 + "|")
    for r in rows:
        w = r["wer"]
        print(
            f"| {r['calls']} | {r['commit_p50']:.2f} / {r['commit_p95']:.2f} | "
            f"{1000 * r['final_close_p50']:.0f} / {1000 * r['final_close_p95']:.0f} | "
            f"{1000 * r['final_word_p50']:.0f} / {1000 * r['final_word_p95']:.0f} | "
            f"{w['final']:.1f} / {w['partial']:.1f} / {w['committed']:.1f} / {w['offline']:.1f} | "
            f"{r['lag_p50']:.2f} | {max(r['lag_growth'], r['final_growth']):+.2f} | "
            f"{r['cpu_cores']:.2f} | {r['cpu_per_call_second']:.2f} | {r['rss_mb']:.0f} | "
            f"{r['queue_max']} | "
            f"{sum(s['partials_done'] for s in r['scheduler'])} / "
            f"{sum(s['finals_done'] for s in r['scheduler'])} | "
            f"{'yes' if sustained(r) else 'NO'} | {'met' if meets_goals(r) else 'missed'} | "
            f"{r['load'][0]:.1f} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--calls", default="1,2,3,4", help="comma-separated numbers of concurrent calls")
    p.add_argument("--mode", default="realtime", choices=["realtime", "unaware", "fast"])
    p.add_argument("--data", default=str(DEFAULT_CALLS))
    p.add_argument("--duration", type=float, default=None, help="use only the first S seconds")
    p.add_argument("--stagger", type=float, default=7.3, help="start delay of each replica round")
    p.add_argument("--model", default="tiny.en")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compute-type", default="auto")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--cpu-threads", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=1, help=">1: cross-stream batches (CUDA)")
    p.add_argument("--procs", type=int, default=1, help="worker processes, each with a model")
    p.add_argument("--encoder-window", default="full", choices=["full", "trimmed"])
    p.add_argument("--partial-window", default=None, metavar="MIN,PAD",
                   help="trimmed window of partials, e.g. 12,8 (as voice serve's asr_partial_window); default: "
                        "the finals' 20,10")
    p.add_argument("--step", type=float, default=1.0)
    p.add_argument("--first-decode", type=float, default=1.0)
    p.add_argument("--agreement", type=int, default=2)
    p.add_argument("--pause-commit", default="0.25", help="seconds, or 'off' (plain LA-2)")
    p.add_argument("--partial-beam", type=int, default=1)
    p.add_argument("--final-beam", type=int, default=1)
    p.add_argument("--final-prompt", action="store_true")
    p.add_argument("--final-context", type=float, default=None, help="seconds (default: config)")
    p.add_argument("--prompt-chars", type=int, default=None, help="default: the config's")
    p.add_argument("--cache", default=str(REPO / "runs" / "bench_streaming_offline.json"))
    p.add_argument("--out", default=None, help="write all rows as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    calls = load_calls(Path(args.data), args.duration)
    refs = {f"{c.name}/{leg}": c.refs[leg] for c in calls for leg in LEGS}
    offline = offline_texts(calls, args)
    rows = []
    for n in [int(x) for x in args.calls.split(",")]:
        load = os.getloadavg()[0]
        print(f"running {n} call(s), load {load:.1f} ...", file=sys.stderr, flush=True)
        shares = [n // args.procs + (i < n % args.procs) for i in range(args.procs)]
        if args.procs == 1:
            raws = [run_shard(n, args)]
        else:
            with multiprocessing.get_context("spawn").Pool(args.procs) as pool:
                raws = pool.starmap(run_shard, [(s, args) for s in shares if s])
        rows.append(summarize(raws, offline, refs))
        print_table(rows[-1:], args)
    print_table(rows, args)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
