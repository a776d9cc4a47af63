"""Replay call files through a Twilio or AudioHook endpoint, N calls at once.

Example (4 concurrent SpokenWOZ calls in real time through Twilio):
    python -m telephony.clients twilio ws://127.0.0.1:8000/ws/twilio \
        ../shared/data/diarization/spokenwoz_calls_8k/SNG0072.wav --calls 4
Prints one JSON line per call, then a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
from dataclasses import asdict

from telephony.clients.audiohook import replay_audiohook
from telephony.clients.common import ReplayOptions, ReplayResult, load_call
from telephony.clients.twilio import replay_twilio


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m telephony.clients",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=["twilio", "audiohook"])
    parser.add_argument("url", help="ws://HOST:PORT/ws/twilio or .../ws/audiohook")
    parser.add_argument("files", nargs="+", help="call files; reused round-robin for --calls")
    parser.add_argument("--calls", type=int, default=1, help="concurrent calls (default 1)")
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = flat out")
    parser.add_argument("--stagger", type=float, default=0.0, help="seconds between call starts")
    parser.add_argument("--chunk-ms", type=int, default=None, help="audio per message")
    parser.add_argument("--tenant", default=None)
    parser.add_argument("--agent-id", default=None, help="agent id; {n} is the call number")
    parser.add_argument("--customer-channel", type=int, default=0)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("NEXTLINE_AUDIOHOOK_API_KEY", ""),
        help="AudioHook X-API-KEY (default: $NEXTLINE_AUDIOHOOK_API_KEY)",
    )
    return parser.parse_args(argv)


async def _one(args: argparse.Namespace, number: int, path: str) -> ReplayResult:
    await asyncio.sleep(number * args.stagger)
    chunk = args.chunk_ms or (20 if args.kind == "twilio" else 100)
    options = ReplayOptions(
        chunk_ms=chunk,
        speed=args.speed,
        tenant=args.tenant,
        agent_id=(args.agent_id or "").format(n=number) or None,
        customer_channel=args.customer_channel,
    )
    audio = load_call(path)
    if args.kind == "twilio":
        return await replay_twilio(args.url, audio, options)
    return await replay_audiohook(args.url, audio, options, api_key=args.api_key)


async def _main(args: argparse.Namespace) -> int:
    files = list(itertools.islice(itertools.cycle(args.files), args.calls))
    results = await asyncio.gather(
        *(_one(args, n, f) for n, f in enumerate(files)), return_exceptions=True
    )
    failures = 0
    for number, (path, result) in enumerate(zip(files, results, strict=True)):
        if isinstance(result, BaseException):
            failures += 1
            print(json.dumps({"call": number, "file": path, "error": repr(result)}))
            continue
        summary = {k: v for k, v in asdict(result).items() if k not in ("received", "sent_at")}
        print(
            json.dumps(
                {"call": number, "file": path, **summary, "server_messages": len(result.received)}
            )
        )
    print(json.dumps({"calls": len(files), "failures": failures}))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    return asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
