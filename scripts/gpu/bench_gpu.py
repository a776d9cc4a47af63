"""GPU benchmark of the live ASR path: N concurrent real calls, real-time paced, one GPU.

    python scripts/gpu/bench_gpu.py --data .gpu-torch --calls 16,64,128,256,512 --out "$OUT"

What runs for real, on the wall clock: every call leg has its own
:class:`asr.streaming.StreamingTranscriber` (LocalAgreement-2 partials, whole-turn finals, the
default :class:`~asr.streaming.StreamingConfig`); one :class:`voice.live.scheduler.DecodeScheduler`
(finals first, coalesced partials, load-adaptive partial spacing) hands batches of up to
``--max-batch`` requests to one :class:`asr.torch_backend.TorchWhisperDecoder` (float16 on
CUDA: batched encoder, batched greedy decoding with a KV cache, cross-attention DTW word times).
A feeder thread inserts each leg's 16 kHz audio every ``--tick`` seconds as it "arrives".

What is replayed rather than computed: the VAD. Each leg's speech-started / pause /
speech-stopped decisions were computed once by ``scripts/gpu/prepare.py`` with the live path's
own ``VadStream`` on the same audio, and are applied at the times the live path would take them
(the front end is CPU work that a real deployment spreads over its cores; ``frontend_cost.py``
measures it). Call ``i`` plays SpokenWOZ call ``i % 4`` from a staggered offset, so turns of
different calls do not line up.

Measured per N (definitions as in ``scripts/bench_streaming.py``):

- word-commit latency: when a word was first shown committed (a partial's newly committed
  words, held while an earlier final of the leg is outstanding, or the turn's final for words no
  partial committed) minus when its audio end was fed;
- end of turn -> final: final applied minus the VAD's turn close (end-of-input closes excluded);
- lag growth: median partial lag and final latency in the last third of the run minus the first
  third; *sustained* when both grew by less than 0.5 s and the feeder never slipped 0.25 s;
- batch sizes, decode time per batch, GPU utilisation (NVML, sampled every 0.2 s) and the
  share of wall time the GPU worker(s) spent decoding.

Goals (issue 4): commit p50 <= 1.5 s and p95 <= 2.5 s, end of turn -> final p50 <= 0.7 s,
sustained. The sweep stops after the first N that misses them (trying one N halfway between the
last pass and the miss), or when ``--budget`` seconds would be exceeded. Results go to
``OUT/gpu_bench.json`` and ``OUT/gpu_bench.md`` after every N.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import types
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
# Our packages as bare namespaces: only the modules used below are imported, never a package
# __init__ that may pull in the CPU path's dependencies (faster-whisper, CTranslate2, soxr,
# FastAPI), which the GPU image does not have.
for _name in ("asr", "voice", "voice.live"):
    _module = types.ModuleType(_name)
    _module.__path__ = [str(REPO / _name.replace(".", "/"))]
    sys.modules.setdefault(_name, _module)

from asr.ct2_convert import load_transfer  # noqa: E402
from asr.streaming import DecodeRequest, StreamingConfig, StreamingTranscriber  # noqa: E402
from asr.torch_backend import TorchBackendConfig, TorchWhisperDecoder  # noqa: E402
from asr.types import AsrOptions  # noqa: E402
from voice.live.scheduler import DecodeScheduler, SchedulerConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_capacity import capacity  # noqa: E402
from bench_data import BEGIN, CLOSE, PAUSE, RATE, LegData, load_calls, state_at  # noqa: E402
from bench_report import markdown, summarize  # noqa: E402

# --- one run ------------------------------------------------------------------------------------


@dataclass
class Leg:
    """A live leg of one simulated call."""

    data: LegData
    offset: float
    key: tuple[int, str]
    transcriber: StreamingTranscriber
    fed: float = 0.0
    next_action: int = 0
    in_turn: bool = False
    pending: bool = False
    finals_out: int = 0
    held: list[tuple[float, float]] = field(default_factory=list)  # (audio end, fed wall)
    committed_end: dict[int, float] = field(default_factory=dict)  # turn -> last partial word end
    closes: dict[int, tuple[float, bool]] = field(default_factory=dict)  # turn -> (wall, by VAD)


@dataclass
class RunLog:
    """Raw measurements of one N."""

    commits: list[tuple[float, float, bool]] = field(
        default_factory=list
    )  # (audio, latency, final)
    finals: list[tuple[float, float]] = field(default_factory=list)  # (audio, latency)
    lags: list[tuple[float, float]] = field(default_factory=list)  # (audio, partial lag)
    batches: list[tuple[float, int, int, float]] = field(default_factory=list)  # (t, n, finals, s)
    gpu_util: list[float] = field(default_factory=list)
    queue: list[tuple[float, int, float]] = field(default_factory=list)  # (t, depth, spacing)
    errors: int = 0
    slip: float = 0.0
    words: int = 0


class Run:
    """N calls replayed against one scheduler for ``duration`` seconds of wall time."""

    def __init__(
        self,
        decoder: TorchWhisperDecoder,
        calls: list[tuple[LegData, LegData]],
        n: int,
        args: argparse.Namespace,
        step: float,
        ids: list[int] | None = None,
    ) -> None:
        self.decoder, self.args = decoder, args
        self.log = RunLog()
        self.lock = threading.Lock()
        self.config = StreamingConfig(step=step)
        self.tick_walls: list[float] = []
        self.t0 = 0.0
        self.feeding = True  # no new partials once the input has ended
        self.legs: list[Leg] = []
        span = args.duration + 1.0
        for i in ids if ids is not None else range(n):  # a shard plays its share of the ids
            pair = calls[i % len(calls)]
            room = max(0.0, min(p.duration for p in pair) - span)
            offset = round((i * 7.37) % room, 2) if room > 0 else 0.0
            for data in pair:
                transcriber = StreamingTranscriber(config=self.config, offset=offset)
                index, open_turn = state_at(data.actions, offset)
                self.legs.append(
                    Leg(
                        data,
                        offset,
                        (i, data.key),
                        transcriber,
                        fed=offset,
                        next_action=index,
                        in_turn=open_turn,
                    )
                )
        self.scheduler = DecodeScheduler(
            self._decode, SchedulerConfig(workers=args.workers, max_batch=args.max_batch)
        )

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def fed_wall(self, leg: Leg, audio: float) -> float:
        """Wall time (run clock) at which the leg's audio up to ``audio`` had been inserted."""
        if not self.tick_walls:
            return 0.0
        k = math.ceil((audio - leg.offset) / self.args.tick - 1e-9) - 1
        return self.tick_walls[min(max(k, 0), len(self.tick_walls) - 1)]

    def _decode(self, requests: list[DecodeRequest]) -> list[list[Any]]:
        start = time.perf_counter()
        out = self.decoder.decode_batch(requests)
        seconds = time.perf_counter() - start
        self.log.batches.append(
            (start - self.t0, len(requests), sum(r.final for r in requests), seconds)
        )
        return out

    # --- feeding (main thread) ----------------------------------------------------------------

    def play(self) -> RunLog:
        """Feed every leg in real time, then close open turns and wait for the finals."""
        stop = threading.Event()
        sampler = threading.Thread(target=self._sample, args=(stop,), daemon=True)
        self.t0 = time.perf_counter()
        for leg in self.legs:  # a call joined mid-turn: its turn starts now
            if leg.in_turn:
                leg.transcriber.begin_turn(leg.offset)
        sampler.start()
        ticks = int(self.args.duration / self.args.tick)
        for k in range(1, ticks + 1):
            due = k * self.args.tick
            wait = due - self.now()
            if wait > 0:
                time.sleep(wait)
            self.log.slip = max(self.log.slip, self.now() - due)
            for leg in self.legs:
                self._advance(leg, leg.offset + due)
            self.tick_walls.append(self.now())
            for leg in self.legs:
                if leg.in_turn:
                    self._maybe_partial(leg)
        self.feeding = False
        for leg in self.legs:  # end of input: close open turns (not counted as VAD closes)
            self._close(leg, leg.fed, by_vad=False)
        self.scheduler.wait_idle(timeout=self.args.drain)
        stop.set()
        self.scheduler.close(wait=True)
        sampler.join()
        return self.log

    def _advance(self, leg: Leg, until: float) -> None:
        """Apply the leg's VAD decisions up to ``until`` and insert its audio. Outside a turn
        the audio waits: the next decision inserts it all at once (only its pre-roll is kept)."""
        actions = leg.data.actions
        while leg.next_action < len(actions) and actions[leg.next_action][0] <= until:
            action = actions[leg.next_action]
            leg.next_action += 1
            self._insert(leg, action[0])
            self._apply(leg, action)
        if leg.in_turn:
            self._insert(leg, until)

    def _insert(self, leg: Leg, until: float) -> None:
        start, stop = round(leg.fed * RATE), round(until * RATE)
        if stop > start:
            leg.transcriber.insert_audio(leg.data.audio[start:stop])
            leg.fed = stop / RATE

    def _apply(self, leg: Leg, action: list[float]) -> None:
        kind = int(action[1])
        if kind == BEGIN:
            leg.in_turn = True
            leg.transcriber.begin_turn(max(action[2], leg.offset))
        elif kind == PAUSE:
            leg.transcriber.note_pause(None if action[2] < 0 else action[2])
        elif kind == CLOSE:
            leg.in_turn = False
            self._close(leg, action[2], by_vad=bool(action[3]))

    def _close(self, leg: Leg, end: float, *, by_vad: bool) -> None:
        request = leg.transcriber.close_turn(end)
        if request is None:
            return
        with self.lock:
            leg.finals_out += 1
            leg.closes[request.turn] = (self.now(), by_vad)
        future = self.scheduler.submit_final(leg.key, lambda: request)
        future.add_done_callback(lambda f: self._on_final(leg, request, f))

    def _maybe_partial(self, leg: Leg) -> None:
        with self.lock:
            if not self.feeding or leg.pending or not leg.transcriber.partial_due():
                return
            leg.pending = True
        future = self.scheduler.submit_partial(leg.key, leg.transcriber.partial_request)
        future.add_done_callback(lambda f: self._on_partial(leg, f))

    # --- results (worker threads) ---------------------------------------------------------------

    def _on_partial(self, leg: Leg, future: Future[Any]) -> None:
        result = None
        if not future.cancelled():
            if future.exception() is not None:
                self.log.errors += 1
            else:
                result = future.result()
        if result is not None:
            request, words = result
            update = leg.transcriber.apply_partial(request, words)
            now = self.now()
            if update is not None:
                self.log.lags.append(
                    (request.end - leg.offset, now - self.fed_wall(leg, request.end))
                )
                with self.lock:
                    for word in update.newly_committed:
                        self._commit(leg, word.end, now, by_final=False)
                    if update.committed:
                        leg.committed_end[update.turn] = update.committed[-1].end
        with self.lock:
            leg.pending = False
        self._maybe_partial(leg)

    def _commit(self, leg: Leg, end: float, now: float, *, by_final: bool) -> None:
        """Record a word shown committed (under ``self.lock``); held behind an open final."""
        if leg.finals_out and not by_final:
            leg.held.append((end, now))
            return
        self.log.commits.append((end - leg.offset, now - self.fed_wall(leg, end), by_final))
        self.log.words += 1

    def _on_final(self, leg: Leg, request: DecodeRequest, future: Future[Any]) -> None:
        words: list[Any] = []
        if future.cancelled() or future.exception() is not None:
            self.log.errors += 1
        elif future.result() is not None:
            words = future.result()[1]
        turn = leg.transcriber.apply_final(request, words)
        now = self.now()
        with self.lock:
            closed_at, by_vad = leg.closes.pop(request.turn, (now, False))
            if by_vad:
                self.log.finals.append((turn.end - leg.offset, now - closed_at))
            last = leg.committed_end.pop(request.turn, -math.inf)
            for word in turn.words:
                if word.end > last + 0.05:
                    self._commit(leg, word.end, now, by_final=True)
            leg.finals_out -= 1
            if leg.finals_out == 0:
                for end, _ in leg.held:
                    self.log.commits.append(
                        (end - leg.offset, now - self.fed_wall(leg, end), False)
                    )
                    self.log.words += 1
                leg.held.clear()

    def _sample(self, stop: threading.Event) -> None:
        handle = _nvml()
        while not stop.wait(0.2):
            m = self.scheduler.metrics()
            self.log.queue.append((self.now(), m.queue_depth, m.partial_spacing))
            if handle is not None:
                import pynvml

                self.log.gpu_util.append(float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))


def _nvml() -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # no NVML (CPU run): utilisation is reported as n/a
        return None


# --- the sweep --------------------------------------------------------------------------------


def next_n(tried: dict[int, bool], plan: list[int]) -> int | None:
    """The next N of the sweep: the plan in order until a miss, then bisection steps while the
    gap is wider than a quarter of the last pass."""
    misses = sorted(n for n, ok in tried.items() if not ok)
    if not misses:
        return next((n for n in plan if n not in tried), None)
    passes = [n for n, ok in tried.items() if ok and n < misses[0]]
    low = max(passes, default=0)
    mid = (low + misses[0]) // 2
    if low and mid not in tried and misses[0] - low > max(8, low // 4):
        return mid
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".gpu-torch")
    parser.add_argument(
        "--weights", type=Path, default=None, help="default: DATA/model.safetensors"
    )
    parser.add_argument("--calls", default="16,64,128,256,384,512,768,1024,1536")
    parser.add_argument("--duration", type=float, default=30.0, help="wall seconds per N")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="decoder processes (each its own model and GIL); 0 = decode in this process",
    )
    parser.add_argument(
        "--no-warm-up", action="store_true", help="skip the decoders' warm-up (to measure it)"
    )
    parser.add_argument(
        "--step", type=float, default=0.5, help="partial step of the sweep (the CPU default is 1.0)"
    )
    parser.add_argument(
        "--reference-steps",
        default="1.0",
        help="also run the smallest N at these steps (comma list; '' for none)",
    )
    parser.add_argument(
        "--graphs",
        choices=["on", "off", "force"],
        default="on",
        help="replay the decode step as CUDA graphs (asr.torch_graphs); force: also on CPU, "
        "where the graphs' buffers are used without capturing (dry runs)",
    )
    parser.add_argument(
        "--final-beam", type=int, default=1, help="beam size of finals (the server's default is 5)"
    )
    parser.add_argument(
        "--graph-copies", type=int, default=0, help="graphs per row bucket (0: one per worker)"
    )
    parser.add_argument(
        "--eager-reference",
        type=int,
        default=0,
        help="also run this N with the graphs set aside first (same process, same warm-up)",
    )
    parser.add_argument(
        "--shard",
        default="",
        help="I/K: this process plays call ids I, I+K, ... of each N (N counts all shards); "
        "the K processes start each N together through --barrier and bench_shards.py merges",
    )
    parser.add_argument("--barrier", type=Path, default=None, help="shared folder of the shards")
    parser.add_argument("--tick", type=float, default=0.04)
    parser.add_argument("--drain", type=float, default=15.0)
    parser.add_argument("--capacity", default="1,16,64,128,256")
    parser.add_argument("--budget", type=float, default=400.0, help="stop starting runs after this")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "gpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    transfer = args.weights or args.data / "model.safetensors"
    probe = _probe(args.device)
    config = TorchBackendConfig(
        device=args.device,
        dtype=args.dtype,
        max_rows=args.max_batch,
        warm_up=not args.no_warm_up,
        cuda_graphs={"on": None, "off": False, "force": True}[args.graphs],
        graph_copies=args.graph_copies or max(1, args.workers),
    )
    if args.processes > 0:  # one decoder per process: no GIL shared with the calls' Python work
        from asr.torch_processes import DecoderProcesses

        decoder: Any = DecoderProcesses(transfer, config, args.processes)
        args.workers = args.processes
        source = Path(transfer).name
        warm = list(decoder.warm_up_seconds)
    else:  # warms up on this thread; the scheduler's threads build their own cuDNN conv plans
        weights = load_transfer(transfer)
        decoder = TorchWhisperDecoder(weights, config, final=AsrOptions(beam_size=args.final_beam))
        source = weights.source
        warm = [decoder.warm_up_seconds]
    device = (
        torch.cuda.get_device_name(0)
        if decoder.device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    info = {
        "device": device,
        "model": source,
        "processes": args.processes,
        "dtype": str(decoder.dtype),
        "workers": args.workers,
        "max_batch": args.max_batch,
        "duration": args.duration,
        "step": args.step,
        "torch": torch.__version__,
        "warm_up_s": [round(w, 2) for w in warm],
        "graphs": getattr(decoder, "graphs", None) is not None,
        "graph_copies": config.graph_copies,
        "final_beam": args.final_beam,
        "shard": args.shard,
        "sdpa_probe": probe,
    }
    loaded = time.perf_counter() - began
    print(f"loaded {source} on {device} in {loaded:.1f} s, warm-up included", flush=True)  # noqa: T201
    print(  # noqa: T201
        f"warm-up: {max(warm):.1f} s ({', '.join(f'{w:.1f}' for w in warm)} s per decoder; "
        f"{len(config_grid(config))} row buckets)",
        flush=True,
    )
    calls = load_calls(args.data)
    sizes = [int(s) for s in args.capacity.split(",") if s and int(s) <= args.max_batch]
    info["capacity"] = capacity(decoder, calls, sizes)
    if info["graphs"] and sizes:
        from bench_graphs import graph_check

        info["graph_check"] = graph_check(decoder, calls, max(sizes))
    if args.shard:
        from bench_shards import shard_sweep

        shard_sweep(decoder, calls, args, info, began, Run)
        return 0
    rows = sweep(decoder, calls, args, info, began)
    print(markdown(rows, info), flush=True)  # noqa: T201
    print(f"total {time.perf_counter() - began:.0f} s", flush=True)  # noqa: T201
    return 0


def _probe(device: str) -> dict[str, Any]:
    """The SDPA first-use probe on CUDA (``sdpa_probe.py``), printed; empty on CPU."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return {}
    from sdpa_probe import probe

    result = probe()
    print(f"sdpa first use (ms: new shape, same, new): {json.dumps(result)}", flush=True)  # noqa: T201
    return result


def config_grid(config: TorchBackendConfig) -> list[int]:
    """The row buckets a decoder with ``config`` warms up."""
    from asr.torch_shapes import row_buckets

    return row_buckets(max(1, config.max_rows))


def sweep(
    decoder: Any,
    calls: list[tuple[LegData, LegData]],
    args: argparse.Namespace,
    info: dict[str, Any],
    began: float,
) -> list[dict[str, Any]]:
    """The reference runs, then the N sweep; results written to ``args.out`` after each run."""
    import torch

    plan = [int(n) for n in args.calls.split(",") if n]
    rows: list[dict[str, Any]] = []
    tried: dict[int, bool] = {}
    criterion = "goals_met"  # until the smallest N misses the goals: then only lag growth
    references = [float(x) for x in args.reference_steps.split(",") if x]
    queue: list[tuple[int, float, bool]] = [
        (min(plan), step, True) for step in references if step != args.step
    ]
    if args.eager_reference and getattr(decoder, "graphs", None) is not None:
        queue.insert(0, (args.eager_reference, args.step, False))
    while queue or (n := next_n(tried, plan)) is not None:
        n, step, graphed = queue.pop(0) if queue else (n, args.step, True)
        if not graphed:  # the same N with the graphs set aside: the eager reference row
            from bench_graphs import eager_row

            rows.append(eager_row(decoder, calls, n, args, step, Run))
            continue
        if time.perf_counter() - began + args.duration + args.drain + 5 > args.budget:
            print(f"budget reached before N={n}", flush=True)  # noqa: T201
            break
        cuda = decoder.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        log = Run(decoder, calls, n, args, step).play()
        row = summarize(n, log, args, time.perf_counter() - start, step)
        if cuda:
            row["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
        row["graphs"] = getattr(decoder, "graphs", None) is not None
        rows.append(row)
        if step == args.step:
            if not tried and not row["goals_met"]:
                criterion = "sustained"
            tried[n] = bool(row[criterion]) and row["errors"] == 0
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
        print(json.dumps(rounded), flush=True)  # noqa: T201
        rows.sort(key=lambda r: (r["step"] != args.step, not r.get("graphs", True), r["calls"]))
        (args.out / "gpu_bench.json").write_text(json.dumps({"info": info, "rows": rows}, indent=1))
        (args.out / "gpu_bench.md").write_text(markdown(rows, info))
    return rows


if __name__ == "__main__":
    sys.exit(main())
