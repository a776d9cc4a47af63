#!/usr/bin/env python
"""Latency and throughput of the suggestion engine: single warm calls and micro-batched callers.

Re-run on a quiet machine for numbers worth publishing; the load average before and after is
printed so a contended run is visible. What is measured:

- single: --samples calls played one at a time, turn by turn to turn 105, each suggestion warm
  (one new turn embedded); p50/p99 around turn 5 (turns 1-9) and turn 100 (turns 96-104);
- offered load: suggestions requested at --rate per second (open loop, Poisson arrivals), each
  advancing one of --active-calls calls by one turn, through the ``MicroBatcher``; latency =
  submit -> result, as a live call sees it at that load;
- saturated: --callers closed-loop threads (the next turn is sent when the answer arrives):
  the most suggestions per second the engine serves here, plus the process CPU time per
  suggestion and the ceiling it implies on two dedicated cores (2000 ms / CPU ms), which
  contention from other processes distorts much less than wall-clock throughput.

Calls are real text: turns of the given conversations, concatenated until a call has enough
turns for turn 100.

    python scripts/bench_suggest.py --model models/persuasionforgood/<version> --data data/pfg.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import threading
import time
from pathlib import Path

import numpy as np

from suggest.batching import MicroBatcher
from suggest.data.format import read_conversations
from suggest.engine import EngineConfig, SuggestionEngine
from suggest.types import SuggestContext, Turn


def long_calls(data: Path, count: int, length: int, seed: int) -> list[list[Turn]]:
    """``count`` calls of ``length`` real turns each (conversations concatenated, shuffled)."""
    conversations = read_conversations(data).conversations
    turns = [t for c in conversations for t in c.turns]
    rng = random.Random(seed)
    calls = []
    for _ in range(count):
        start = rng.randrange(0, max(1, len(turns) - length))
        calls.append([Turn(t.role, t.text) for t in turns[start : start + length]])
    return calls


def single(
    engine: SuggestionEngine, calls: list[list[Turn]], turns: int
) -> list[tuple[int, float]]:
    """(turn, ms) of every warm suggestion while each call is played turn by turn, one at a time.

    At turn t the engine's state already holds turns 0..t-2, so each suggestion embeds exactly
    one new turn, as in a live call.
    """
    latencies = []
    for i, call in enumerate(calls):
        call_id = f"single-{i}"
        for t in range(1, turns + 1):
            started = time.perf_counter()
            result = engine.suggest(SuggestContext(call_id=call_id, turns=tuple(call[:t])))
            latencies.append((t, (time.perf_counter() - started) * 1e3))
            assert result.latency.turns_encoded == 1
        engine.end_call(call_id)
    return latencies


def at(latencies: list[tuple[int, float]], centre: int, spread: int = 4) -> dict:
    """Percentiles of the suggestions within ``spread`` turns of ``centre``."""
    return _percentiles([ms for t, ms in latencies if abs(t - centre) <= spread])


def saturated(
    engine: SuggestionEngine,
    calls: list[list[Turn]],
    callers: int,
    seconds: float,
    **options: float,
) -> dict:
    """Closed loop: ``callers`` threads each send their call's next turn when the last returns.

    Measures the most the engine can serve; latency here is queueing (Little's law: callers /
    throughput), not what a live call sees at a given load — that is :func:`offered`.
    """
    latencies: list[float] = []
    batch_sizes: list[int] = []
    lock, stop = threading.Lock(), threading.Event()

    def caller(index: int) -> None:
        n = 0
        while not stop.is_set():
            call, call_id = calls[(index + n * callers) % len(calls)], f"sat-{index}-{n}"
            for t in range(1, len(call) + 1):
                if stop.is_set():
                    break
                started = time.perf_counter()
                result = batcher.suggest(SuggestContext(call_id=call_id, turns=tuple(call[:t])), 60)
                with lock:
                    latencies.append((time.perf_counter() - started) * 1e3)
                    batch_sizes.append(result.latency.batch_size)
            engine.end_call(call_id)
            n += 1

    with MicroBatcher(engine, **options) as batcher:  # type: ignore[arg-type]
        threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(callers)]
        started, cpu_started = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    cpu_ms = (time.process_time() - cpu_started) * 1e3 / max(1, len(latencies))
    return {
        "cpu_ms_per_suggestion": round(cpu_ms, 2),
        "ceiling_per_s_on_2_dedicated_cores": round(2000.0 / cpu_ms, 1) if cpu_ms else None,
        "callers": callers,
        "suggestions": len(latencies),
        "seconds": round(wall, 2),
        "throughput_per_s": round(len(latencies) / wall, 1),
        **_percentiles(latencies),
        "mean_batch": round(float(np.mean(batch_sizes)), 1) if batch_sizes else 0,
    }


def offered(
    engine: SuggestionEngine, calls: list[list[Turn]], rate: float, seconds: float, **options: float
) -> dict:
    """Open loop: suggestions requested at ``rate`` per second (Poisson), as live calls would.

    Each request advances one of many active calls by one finished turn; a call with a request
    still in flight is skipped, as a live call cannot finish two turns at once.
    """
    rng = random.Random(1)
    progress = [0] * len(calls)
    busy = [False] * len(calls)
    latencies: list[float] = []
    batch_sizes: list[int] = []
    lock = threading.Lock()

    def done(index: int, started: float, future: object) -> None:
        result = future.result()  # type: ignore[attr-defined]
        with lock:
            latencies.append((time.perf_counter() - started) * 1e3)
            batch_sizes.append(result.latency.batch_size)
            busy[index] = False

    with MicroBatcher(engine, **options) as batcher:  # type: ignore[arg-type]
        begin = time.perf_counter()
        next_at, cursor, sent, all_busy = begin, 0, 0, 0
        while next_at - begin < seconds:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += rng.expovariate(rate)
            with lock:  # never wait while holding the lock: finished requests need it
                free = next(
                    (c for c in range(cursor, cursor + len(calls)) if not busy[c % len(calls)]),
                    None,
                )
                if free is None:
                    all_busy += 1  # overloaded: every call still waits for its last answer
                    continue
                index = free % len(calls)
                busy[index] = True
            cursor = free + 1
            progress[index] = progress[index] % len(calls[index]) + 1
            started = time.perf_counter()
            context = SuggestContext(
                call_id=f"open-{index}", turns=tuple(calls[index][: progress[index]])
            )
            future = batcher.submit(context)
            future.add_done_callback(lambda f, i=index, t=started: done(i, t, f))
            sent += 1
    wall = time.perf_counter() - begin  # dispatch plus draining the queue
    return {
        "offered_per_s": rate,
        "sent": sent,
        "not_sent_all_calls_busy": all_busy,
        "seconds": round(wall, 2),
        "served_per_s": round(len(latencies) / wall, 1),
        **_percentiles(latencies),
        "mean_batch": round(float(np.mean(batch_sizes)), 1) if batch_sizes else 0,
    }


def _percentiles(values: np.ndarray | list[float]) -> dict:
    values = np.asarray(values)
    if len(values) == 0:
        return {"p50_ms": None, "p99_ms": None, "n": 0}
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "n": int(len(values)),
    }


def main() -> None:
    args = _arguments()
    load_before = os.getloadavg()
    engine = SuggestionEngine.load(
        args.model, EngineConfig(encoder_parallel=args.parallel, max_calls=100_000)
    )
    calls = long_calls(
        args.data, max(args.samples, args.active_calls, args.callers * 4), 110, seed=0
    )
    single(engine, calls[:3], 10)  # warm-up: onnxruntime allocations, caches
    machine = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
    }
    results: dict = {
        "machine": machine,
        "model": engine.model_version,
        "encoder": engine.model.encoder.to_dict(),
        "encoder_parallel": args.parallel,
    }
    cpu_started = time.process_time()
    played = single(engine, calls[: args.samples], 105)
    results["single_cpu_ms_per_suggestion"] = round(
        (time.process_time() - cpu_started) * 1e3 / len(played), 2
    )
    results["single_all_turns"] = _percentiles([ms for _, ms in played])
    results["single_turn_5"], results["single_turn_100"] = at(played, 5), at(played, 100)
    results["turn100_over_turn5_p50"] = round(
        results["single_turn_100"]["p50_ms"] / results["single_turn_5"]["p50_ms"], 3
    )
    options = {
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "workers": args.workers,
    }
    if not args.skip_batched:
        active = calls[: args.active_calls]
        results["offered"] = [
            offered(engine, active, rate, args.seconds, **options) for rate in args.rate
        ]
        results["saturated"] = saturated(engine, calls, args.callers, args.seconds, **options)
    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument(
        "--data", type=Path, required=True, help="Conversation JSONL the call texts come from."
    )
    parser.add_argument(
        "--samples", type=int, default=40, help="Calls played turn by turn (single)."
    )
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[250.0, 500.0], help="Offered suggestions/s."
    )
    parser.add_argument(
        "--active-calls", type=int, default=2000, help="Live calls the offered load spreads over."
    )
    parser.add_argument("--callers", type=int, default=32, help="Closed-loop callers (saturated).")
    parser.add_argument("--seconds", type=float, default=20.0, help="Duration of each batched run.")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=4.0)
    parser.add_argument("--workers", type=int, default=2, help="Batcher worker threads.")
    parser.add_argument(
        "--parallel", type=int, default=2, help="Texts of a batch embedded at once."
    )
    parser.add_argument("--skip-batched", action="store_true")
    parser.add_argument("--out", type=Path, help="Write the results as JSON.")
    return parser.parse_args()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
