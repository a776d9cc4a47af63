#!/usr/bin/env python
"""The live path's final pass alone: WER and decode time over every VAD turn of the calls.

Each leg of the shared SpokenWOZ calls (8 kHz stereo) goes through the live path's
``VadStream`` and ``StreamingTranscriber`` with no partials: at every VAD close the turn's final
request (the turn plus ``--context`` seconds of the leg's earlier speech) is decoded, exactly
as ``voice serve`` decodes it. The finals of each leg are scored against SpokenWOZ's silver
words and compared with the offline WER of the same model over each whole leg (cached in
``runs/bench_streaming_offline.json``, shared with ``bench_streaming.py``). ``--mulaw`` sends the
audio through G.711 mu-law first, as the Twilio and SIP paths receive it.

Usage:
    .venv/bin/python scripts/bench_final_pass.py --window trimmed --context 3 --beam 5 --mulaw
    .venv/bin/python scripts/bench_final_pass.py --backend torch --context 10 --beam 5 --mulaw  # GPU path
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))


class TimedDecoder:
    """Wraps a turn decoder and adds up the wall time of its decodes."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.seconds = 0.0
        self.count = 0

    def decode_batch(self, requests: Any) -> Any:
        started = time.perf_counter()
        out = self.decoder.decode_batch(requests)
        self.seconds += time.perf_counter() - started
        self.count += len(requests)
        return out


def leg_finals(audio: np.ndarray, decoder: TimedDecoder, config: Any) -> str:
    """The leg's final texts, turn by turn, joined."""
    from asr.streaming import StreamingTranscriber
    from voice.live.replay import vad_turn_finals

    return " ".join(turn.text for turn in vad_turn_finals(StreamingTranscriber(decoder, config), audio))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", choices=["full", "trimmed"], default="trimmed", help="encoder window")
    parser.add_argument("--context", type=float, default=3.0, help="seconds of earlier speech before the turn")
    parser.add_argument("--beam", type=int, default=5, help="beam size of the final (1 = greedy)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the decode")
    parser.add_argument("--mulaw", action="store_true", help="G.711 mu-law round trip first")
    parser.add_argument("--duration", type=float, default=None, help="first seconds of each call only")
    parser.add_argument("--backend", choices=["faster-whisper", "torch"], default="faster-whisper",
                        help="torch: the GPU path's decoder (full window), here on CPU in float32")
    parser.add_argument("--cache", default=str(REPO / "runs" / "bench_streaming_offline.json"))
    args = parser.parse_args()

    from bench_streaming import LEGS, load_calls, offline_texts

    from asr import AsrOptions
    from asr.live import load_streaming_engine
    from asr.streaming import StreamingConfig, WhisperTurnDecoder
    from asr.wer import word_errors
    from telephony.codecs import ulaw_decode, ulaw_encode
    from voice.audio import resample

    calls = load_calls(DATA / "diarization" / "spokenwoz_calls_8k", args.duration)
    offline = offline_texts(calls, argparse.Namespace(cache=args.cache, model="tiny.en", device="cpu",
                                                      duration=args.duration))
    if args.backend == "torch":
        import torch

        from asr.torch_backend import TorchBackendConfig, TorchWhisperDecoder

        torch.set_num_threads(args.threads)
        args.window = "full"
        final = AsrOptions(beam_size=args.beam)
        decoder = TimedDecoder(TorchWhisperDecoder.load("tiny.en", TorchBackendConfig(device="cpu"), final=final))
    else:
        engine = load_streaming_engine("tiny.en", workers=1, cpu_threads=args.threads, encoder_window=args.window)
        decoder = TimedDecoder(WhisperTurnDecoder(engine, final=AsrOptions(beam_size=args.beam)))
    config = StreamingConfig(final_context=args.context)
    streamed = offline_total = None
    for call in calls:
        for leg in LEGS:
            pcm = ulaw_decode(ulaw_encode(call.legs[leg])) if args.mulaw else call.legs[leg]
            audio = resample(np.asarray(pcm, dtype=np.float32) / 32768.0, call.rate, 16000)
            ours = word_errors(call.refs[leg], leg_finals(audio, decoder, config))
            theirs = word_errors(call.refs[leg], offline[f"{call.name}/{leg}"])
            streamed = ours if streamed is None else streamed + ours
            offline_total = theirs if offline_total is None else offline_total + theirs
    assert streamed is not None and offline_total is not None
    print(f"{args.backend}: window {args.window}, context {args.context:g} s, beam {args.beam}, mu-law {args.mulaw}: "
          f"final WER {100 * streamed.wer:.1f} % (offline {100 * offline_total.wer:.1f} %, "
          f"{streamed.reference_words} words), {decoder.count} finals, "
          f"{1000 * decoder.seconds / max(1, decoder.count):.0f} ms each ({args.threads} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
