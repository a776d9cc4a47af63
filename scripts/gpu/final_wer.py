"""WER of the live path's final pass with the GPU backend, on the device or here (CPU dry run).

    python scripts/gpu/final_wer.py --data .gpu-torch --beam 5 1 --out "$OUT"

Every leg of the carried calls (``prepare.py``: mu-law legs, the live path's VAD decisions,
``refs.json``) goes through a :class:`asr.streaming.StreamingTranscriber` with the default
:class:`~asr.streaming.StreamingConfig` and no partials: the audio is inserted up to each VAD
decision's time, a turn begins where the VAD opened it, and at every close (VAD or the 30 s
maximum turn) the turn's final is decoded at once, one request at a time, as the live path
decodes it. The finals of each leg are scored against its reference words where jiwer is
installed; the device image has none, so there the texts go to ``final_wer.json`` and are
scored here: ``python scripts/gpu/final_wer.py --score FILE --data .gpu-torch``.

This is ``scripts/bench_final_pass.py`` for the device: numpy and torch only, the VAD replayed
instead of run, the transfer weights instead of the CTranslate2 model. Running it here too
(float32 on CPU) gives the reference the device's float16 number is compared with.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
for _name in ("asr",):  # a bare namespace: no package __init__ with the CPU path's imports
    _module = types.ModuleType(_name)
    _module.__path__ = [str(REPO / _name)]
    sys.modules.setdefault(_name, _module)

from asr.ct2_convert import load_transfer  # noqa: E402
from asr.streaming import StreamingConfig, StreamingTranscriber  # noqa: E402
from asr.torch_backend import TorchBackendConfig, TorchWhisperDecoder  # noqa: E402
from asr.types import AsrOptions  # noqa: E402
from asr.wer import WerCounts, pooled, word_errors  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import BEGIN, CLOSE, RATE, LegData, load_calls  # noqa: E402


class TimedDecoder:
    """The decoder, with the wall time and count of its decodes added up."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.seconds: list[float] = []

    def decode_batch(self, requests: Any) -> Any:
        started = time.perf_counter()
        out = self.decoder.decode_batch(requests)
        self.seconds.append(time.perf_counter() - started)
        return out


def leg_finals(leg: LegData, decoder: TimedDecoder, config: StreamingConfig) -> str:
    """The leg's finals, turn by turn, joined: the VAD decisions replayed at their times."""
    transcriber = StreamingTranscriber(decoder, config)
    texts, fed, split = [], 0, False
    for time_s, kind, *rest in leg.actions:
        upto = min(len(leg.audio), round(time_s * RATE))
        if upto > fed:
            transcriber.insert_audio(leg.audio[fed:upto])
            fed = upto
        if int(kind) == BEGIN:  # after a maximum-turn split the new turn starts inside speech
            transcriber.begin_turn(rest[0], pre_roll=not split)
        elif int(kind) == CLOSE:
            split = not rest[1]
            if (turn := transcriber.finish(rest[0])) is not None:
                texts.append(turn.text)
    return " ".join(texts)


def score(rows: list[dict[str, Any]], refs: dict[str, str]) -> None:
    """Add the pooled final WER of each row's leg texts (needs jiwer)."""
    for row in rows:
        errors: WerCounts = pooled([word_errors(refs[k], t) for k, t in row["texts"].items()])
        row["final_wer"] = round(100 * errors.wer, 2)
        row["reference_words"] = errors.reference_words


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".gpu-torch")
    parser.add_argument("--beam", type=int, nargs="+", default=[5, 1], help="beam sizes to score")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (CPU runs)")
    parser.add_argument("--legs", type=int, default=0, help="the first N legs only (dry runs)")
    parser.add_argument("--out", type=Path, default=None, help="write final_wer.json here")
    parser.add_argument("--score", type=Path, default=None, help="score this final_wer.json")
    args = parser.parse_args()
    refs = json.loads((args.data / "refs.json").read_text())
    if args.score:
        rows = json.loads(args.score.read_text())
        score(rows, refs)
        for row in rows:
            print(json.dumps({k: v for k, v in row.items() if k != "texts"}))  # noqa: T201
        return 0
    rows = decode_all(args)
    try:
        score(rows, refs)
    except ImportError:
        print("no jiwer here: texts saved, score them with --score", flush=True)  # noqa: T201
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "final_wer.json").write_text(json.dumps(rows, indent=1))
    return 0


def decode_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each beam size's finals of every leg, with the decode times."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    weights = load_transfer(args.data / "model.safetensors")
    legs = [leg for pair in load_calls(args.data) for leg in pair][: args.legs or None]
    rows = []
    for beam in args.beam:
        # one request at a time (5 rows with beam 5): the buckets up to 8 rows, warmed up and
        # graphed on CUDA as the server's decoder is; on CPU neither (the defaults)
        config = TorchBackendConfig(device=args.device, max_rows=8, graph_copies=1)
        decoder = TorchWhisperDecoder(weights, config, final=AsrOptions(beam_size=beam))
        timed = TimedDecoder(decoder)
        texts = {leg.key: leg_finals(leg, timed, StreamingConfig()) for leg in legs}
        ms = 1000 * np.asarray(timed.seconds[1:] or timed.seconds)  # the first pays the warm-up
        row = {
            "model": weights.source,
            "device": str(decoder.device),
            "dtype": str(decoder.dtype),
            "beam": beam,
            "finals": len(timed.seconds),
            "ms_per_final_p50": round(float(np.percentile(ms, 50)), 1),
            "ms_per_final_p95": round(float(np.percentile(ms, 95)), 1),
        }
        print(json.dumps(row), flush=True)  # noqa: T201
        rows.append({**row, "texts": texts})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
