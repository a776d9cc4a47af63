#!/usr/bin/env python
"""Live-path benchmark: N concurrent real stereo calls through ``/ws/twilio`` of a running
``voice serve``, in real time, measured from the client side of the product's own ingress.

The script starts ``voice serve`` as a subprocess (``--model``, optionally ``--suggest-model``)
on free 127.0.0.1 ports with a throw-away data folder and a supervisor token (``voice agents
add``). For each N of ``--calls`` it replays N of the shared SpokenWOZ 8 kHz calls (round-robin,
call i starting ``i * --stagger`` s later) with the scripted Twilio client at speed 1, follows
every call's ``WS /ws/calls/{id}/events`` from ``since=0``, and reports one row:

- word-commit latency p50/p95 and end of turn -> ``transcript.final`` / -> ``suggestion``
  p50/p95, "end of turn" taken both as the end of the turn's last word and as the VAD close
  (definitions in ``bench_live_measure.py``); the client knows when it sent each 20 ms chunk;
- WER of the streamed finals (and of the partials alone) vs the offline WER of the same model
  on the same legs (``WhisperEngine`` over each whole leg's VAD regions, cached; shared with
  ``bench_streaming.py``), normalised by ``asr/wer.py``, against SpokenWOZ's silver words;
- server CPU (cores busy over the run, from /proc) and RSS (peak);
- lag growth: VAD close -> final and partial lag, last third of the call audio minus the first
  third; a row is *sustained* when both grew by less than 0.5 s and the client never fell
  more than 0.25 s behind its real-time schedule.

Then (unless ``--no-sip``) one SIPREC call through the SIP listener: ffmpeg plays both channels
of a call as RTP (``bench_live_sip.py``); same latencies and WER.

The host is shared: every row carries the 1-minute load average. Examples:
    .venv/bin/python scripts/bench_live.py --calls 1,2,3,4 --out runs/live.json
    .venv/bin/python scripts/bench_live.py --calls 2 --duration 60 --suggest-model models/acme/v3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import bench_live_measure as measure  # noqa: E402 - after the path set-up above
from bench_streaming import DEFAULT_CALLS, LEGS, Call, load_calls, offline_texts  # noqa: E402

TWILIO_LEGS = {"inbound": "A", "outbound": "B"}
"""Twilio track -> SpokenWOZ speaker: A (left, customer) is sent inbound, B (agent) outbound."""
SIP_LEGS = {"label-1": "A", "label-2": "B"}


# --- the server under test --------------------------------------------------------------------


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``voice serve`` as a subprocess, with its pid for CPU and RSS."""

    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args, self.data_dir = args, data_dir
        self.port, self.sip_port = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _voice(self, *argv: str) -> list[str]:
        return [sys.executable, "-c", "from voice.cli import main; main()", *argv]

    def start(self) -> None:
        added = subprocess.run(
            self._voice(
                "agents",
                "add",
                "bench-supervisor",
                "--role",
                "supervisor",
                "--data-dir",
                str(self.data_dir),
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        self.token = added.stdout.strip().splitlines()[-1]
        argv = [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--sip-port",
            str(self.sip_port),
            "--model",
            self.args.model,
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        if self.args.suggest_model:
            argv += ["--suggest-model", self.args.suggest_model]
        env = {
            **os.environ,
            "NEXTLINE_TELEPHONY": "{rtp_port_min: 0, rtp_port_max: 0}",
            "NEXTLINE_DEVICE": self.args.device,
        }
        log = (self.data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            self._voice(*argv), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self, limit: float = 600.0) -> None:
        import httpx

        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise SystemExit(f"voice serve exited; see {self.data_dir / 'server.log'}")
            try:
                if httpx.get(f"http://{self.host}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("voice serve did not become ready")

    def usage(self) -> tuple[float, float]:
        """(CPU seconds used so far, RSS MB now) of the server process."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = (
            next(
                int(line.split()[1])
                for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
            / 1024
        )
        return cpu, rss

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


# --- one call: replay, follow its events ------------------------------------------------------


@dataclass
class CallRun:
    """One replayed call: what was sent when, and every event the server published."""

    name: str
    agent_id: str
    sent_at: dict[str, list[float]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    max_lag: float = 0.0


async def follow_events(
    server: Server, agent_id: str, limit: float = 900.0
) -> list[dict[str, Any]]:
    """Find the call of ``agent_id`` in ``GET /api/calls`` and read its event stream to the end."""
    import httpx
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {server.token}"}
    async with asyncio.timeout(limit):
        async with httpx.AsyncClient(headers=headers, timeout=10) as http:
            while True:
                calls = (
                    await http.get(f"http://{server.host}/api/calls", params={"agent_id": agent_id})
                ).json()
                if calls["calls"]:
                    call_id = calls["calls"][0]["call_id"]
                    break
                await asyncio.sleep(0.1)
        url = f"ws://{server.host}/ws/calls/{call_id}/events?since=0"
        async with connect(url, additional_headers=headers, max_size=2**24) as ws:
            return [json.loads(message) async for message in ws]


async def twilio_call(server: Server, call: Call, agent_id: str, delay: float) -> CallRun:
    from telephony.clients import ReplayOptions, replay_twilio

    await asyncio.sleep(delay)
    audio = np.stack([call.legs["A"], call.legs["B"]])
    options = ReplayOptions(speed=1.0, tenant="bench", agent_id=agent_id)
    events = asyncio.create_task(follow_events(server, agent_id))
    result = await replay_twilio(f"ws://{server.host}/ws/twilio", audio, options)
    run = CallRun(call.name, agent_id, {leg: result.sent_at for leg in TWILIO_LEGS}, await events)
    run.max_lag = result.max_lag
    return run


async def sip_call(server: Server, call: Call, workdir: Path) -> CallRun:
    from bench_live_sip import AGENT_ID, siprec_call

    audio = np.stack([call.legs["A"], call.legs["B"]])
    events = asyncio.create_task(follow_events(server, AGENT_ID))
    sent = await siprec_call(server.sip_port, audio, workdir)
    return CallRun(call.name, AGENT_ID, sent.sent_at, await events)


# --- a run of N calls -------------------------------------------------------------------------


async def _sample_usage(server: Server, samples: list[tuple[float, float, float]]) -> None:
    while True:
        samples.append((time.time(), *server.usage()))
        await asyncio.sleep(1.0)


async def measured(server: Server, jobs: list[Any]) -> tuple[list[CallRun], dict[str, Any]]:
    """Run the call jobs while sampling the server's CPU and RSS."""
    samples: list[tuple[float, float, float]] = []
    sampler = asyncio.create_task(_sample_usage(server, samples))
    t0, (cpu0, _) = time.time(), server.usage()
    runs = await asyncio.gather(*jobs)
    wall, (cpu1, rss) = time.time() - t0, server.usage()
    sampler.cancel()
    usage = {
        "cpu_cores": (cpu1 - cpu0) / wall,
        "rss_mb_peak": max([rss] + [s[2] for s in samples]),
        "wall_s": wall,
        "cpu_s": cpu1 - cpu0,
    }
    return list(runs), usage


def row_of(
    runs: list[CallRun],
    legs: dict[str, str],
    refs: dict[str, str],
    offline: dict[str, str],
    t0: float,
) -> dict[str, Any]:
    """Measure every leg of every call and summarise them in one row."""
    per_leg = {}
    for number, run in enumerate(runs):
        for leg, speaker in legs.items():
            log = measure.replay_log(run.agent_id, leg, run.events, run.sent_at[leg], t0)
            per_leg[f"{run.name}/{speaker}#{number}"] = measure.measure_leg(
                log, leg, run.events, t0
            )
    row = measure.summarize(per_leg, refs, offline)
    row["final_texts"] = {key: m.texts["final"] for key, m in per_leg.items()}
    row["max_client_lag"] = max(run.max_lag for run in runs)
    errors = [e["message"] for run in runs for e in run.events if e["type"] == "error"]
    row["errors"] = len(errors)
    row["error_messages"] = sorted(set(errors))[:20]
    row["ended"] = sum(bool(run.events) and run.events[-1]["type"] == "call.ended" for run in runs)
    return row


async def idle(server: Server) -> dict[str, Any]:
    """Wait until the server has no call and no queued decode; return its /healthz."""
    import httpx

    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            health = (await http.get(f"http://{server.host}/healthz")).json()
            asr = health.get("asr", {})
            if (
                not health["active_calls"]
                and not asr.get("queued_finals")
                and not asr.get("running")
            ):
                return health
            await asyncio.sleep(0.5)


def scheduler_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The decode scheduler's counters for one run (its percentiles cover the server's life)."""
    asr0, asr1 = before.get("asr", {}), after.get("asr", {})
    counters = (
        "finals_done",
        "partials_done",
        "partials_cancelled",
        "partials_coalesced",
        "failures",
    )
    delta = {k: asr1[k] - asr0.get(k, 0) for k in counters if k in asr1}
    lifetime = {
        k: asr1.get(k) for k in ("decode_ms", "wait_ms", "partial_spacing", "busy_fraction")
    }
    return {**delta, "server_lifetime": lifetime}


async def run_twilio(
    server: Server,
    n: int,
    calls: list[Call],
    args: argparse.Namespace,
    refs: dict[str, str],
    offline: dict[str, str],
) -> dict[str, Any]:
    before = await idle(server)
    load = os.getloadavg()[0]
    t0 = time.time()
    row_tag = f"{n}-{int(t0 * 1000) % 100_000_000}"  # unique per row: "--calls 1,1,1" repeats N
    jobs = [
        twilio_call(server, calls[i % len(calls)], f"bench-n{row_tag}-{i}", i * args.stagger)
        for i in range(n)
    ]
    runs, usage = await measured(server, jobs)
    row = {"ingress": "twilio", "calls": n, **row_of(runs, TWILIO_LEGS, refs, offline, t0), **usage}
    row["audio_s"] = sum(len(r.sent_at["inbound"]) * 0.02 for r in runs)
    row["load"] = [load, os.getloadavg()[0]]
    row["scheduler"] = scheduler_delta(before, await idle(server))
    return row


async def run_sip(
    server: Server, call: Call, refs: dict[str, str], offline: dict[str, str], workdir: Path
) -> dict[str, Any]:
    before = await idle(server)
    load, t0 = os.getloadavg()[0], time.time()
    runs, usage = await measured(server, [sip_call(server, call, workdir)])
    row = {"ingress": "siprec", "calls": 1, **row_of(runs, SIP_LEGS, refs, offline, t0), **usage}
    row["audio_s"] = call.duration
    row["load"] = [load, os.getloadavg()[0]]
    row["scheduler"] = scheduler_delta(before, await idle(server))
    return row


# --- report -----------------------------------------------------------------------------------


def sustained(row: dict[str, Any]) -> bool:
    """Real time kept: latency did not grow over the call and the client kept its schedule."""
    return row["lag_growth"] < 0.5 and row["final_growth"] < 0.5 and row["max_client_lag"] < 0.25


def meets_goals(row: dict[str, Any]) -> bool:
    """Issue 4's targets: commit p50 <= 1.5 s and p95 <= 2.5 s, VAD close -> final p50 <= 0.7 s,
    final WER <= offline + 3 points, sustained."""
    wer = row["wer"]
    return (
        row["commit_p50"] <= 1.5
        and row["commit_p95"] <= 2.5
        and row["final_close_p50"] <= 0.7
        and wer["final"] <= wer["offline"] + 3.0
        and sustained(row)
    )


def _ms(row: dict[str, Any], key: str) -> str:
    low, high = row[f"{key}_p50"], row[f"{key}_p95"]
    return "-" if np.isnan(low) else f"{1000 * low:.0f} / {1000 * high:.0f}"


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nmodel {args.model} on {args.device}, suggestion model {args.suggest_model or 'none'}, "
        f"duration {args.duration or 'full'} s per call, stagger {args.stagger} s, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "| ingress | calls | commit p50/p95 s | VAD close->final p50/p95 ms | last word->final "
        "p50/p95 ms | VAD close->suggestion p50/p95 ms | last word->suggestion p50/p95 ms | "
        "WER final / partial / committed / offline % | lag p50 s | growth s | server CPU cores | "
        "RSS MB | sustained | goals | load 1m |"
    )
    print("|---" * 15 + "|")
    for r in rows:
        w = r["wer"]
        print(
            f"| {r['ingress']} | {r['calls']} | {r['commit_p50']:.2f} / {r['commit_p95']:.2f} | "
            f"{_ms(r, 'final_close')} | {_ms(r, 'final_word')} | {_ms(r, 'suggestion_close')} | "
            f"{_ms(r, 'suggestion_word')} | {w['final']:.1f} / {w['partial']:.1f} / "
            f"{w['committed']:.1f} / {w['offline']:.1f} | {r['lag_p50']:.2f} | "
            f"{max(r['lag_growth'], r['final_growth']):+.2f} | {r['cpu_cores']:.2f} | "
            f"{r['rss_mb_peak']:.0f} | {'yes' if sustained(r) else 'NO'} | "
            f"{'met' if meets_goals(r) else 'missed'} | {r['load'][0]:.1f}-{r['load'][1]:.1f} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--calls", default="1,2,3,4", help="comma-separated numbers of concurrent calls")
    p.add_argument("--model", default="tiny.en", help="Whisper model of the server")
    p.add_argument("--device", default="cpu", help="the server's device (cpu, cuda, auto)")
    p.add_argument(
        "--suggest-model", default=None, help="suggestion model directory for the server"
    )
    p.add_argument(
        "--data", default=str(DEFAULT_CALLS), help="folder of <id>.wav + <id>.json calls"
    )
    p.add_argument("--duration", type=float, default=None, help="replay only the first S seconds")
    p.add_argument("--stagger", type=float, default=7.3, help="seconds between call starts")
    p.add_argument("--no-sip", dest="sip", action="store_false", help="skip the SIPREC run")
    p.add_argument("--sip-call", default=None, help="call id for the SIP run (default: the first)")
    p.add_argument(
        "--cache",
        default=str(REPO / "runs" / "bench_streaming_offline.json"),
        help="offline transcripts (shared with bench_streaming.py)",
    )
    p.add_argument("--out", default=None, help="write all rows as JSON here")
    p.add_argument(
        "--keep", action="store_true", help="keep the server's data folder (DB, audio, log)"
    )
    return p.parse_args(argv)


async def run_all(server: Server, args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    calls = load_calls(Path(args.data), args.duration)
    refs = {f"{c.name}/{leg}": c.refs[leg] for c in calls for leg in LEGS}
    offline_args = SimpleNamespace(
        cache=args.cache, model=args.model, device=args.device, duration=args.duration
    )
    offline = await asyncio.to_thread(offline_texts, calls, offline_args)
    rows = []
    for n in [int(x) for x in args.calls.split(",") if x]:
        print(
            f"{n} call(s) through /ws/twilio, load {os.getloadavg()[0]:.1f} ...",
            file=sys.stderr,
            flush=True,
        )
        rows.append(await run_twilio(server, n, calls, args, refs, offline))
        print_table(rows[-1:], args)
    if args.sip:
        call = next((c for c in calls if c.name == args.sip_call), calls[0])
        print(
            f"1 SIPREC call ({call.name}), load {os.getloadavg()[0]:.1f} ...",
            file=sys.stderr,
            flush=True,
        )
        rows.append(await run_sip(server, call, refs, offline, workdir))
        print_table(rows[-1:], args)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    server = Server(args, workdir / "server")
    server.data_dir.mkdir(parents=True)
    try:
        server.start()
        rows = asyncio.run(run_all(server, args, workdir))
    finally:
        server.stop()
    print_table(rows, args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
