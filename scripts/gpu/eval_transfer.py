"""WER of the torch backend with the float weights vs the quantised transfer weights (CPU).

    python scripts/gpu/eval_transfer.py --model tiny.en --bits 8 4 --asterisk 12

Decodes JFK, the three LibriVox clips and the first ``--asterisk`` 8 kHz Asterisk prompts (one
batch per variant, greedy, no prompt) with the float32 weights converted from CTranslate2 and
with each quantised transfer file (dequantised to float32), and prints pooled WER per set and
how many transcripts differ from the float ones. Results are recorded in docs/results/gpu.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from asr.ct2_convert import load_transfer, read_ct2_model, save_transfer  # noqa: E402
from asr.models import resolve_whisper_model  # noqa: E402
from asr.torch_backend import TorchBackendConfig, TorchWhisperDecoder  # noqa: E402
from asr.types import AsrOptions  # noqa: E402
from asr.wer import pooled, word_errors  # noqa: E402
from voice.audio import load_audio  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "asr"


def clips(asterisk: int) -> list[tuple[str, np.ndarray, str]]:
    """(set, audio, reference) of the evaluation clips."""
    out = [
        (
            "jfk",
            load_audio(SHARED / "jfk" / "jfk.flac").mono(),
            (SHARED / "jfk" / "jfk.txt").read_text().strip(),
        )
    ]
    librivox = SHARED / "librivox_sense_and_sensibility"
    with open(librivox / "transcription.tsv") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            audio = load_audio(librivox / f"{row['utt_id']}.wav").mono()
            out.append(("librivox", audio, row["reference"]))
    prompts = SHARED / "asterisk_prompts_8k"
    with open(prompts / "transcription.tsv") as handle:
        for row in list(csv.DictReader(handle, delimiter="\t"))[:asterisk]:
            out.append(("asterisk", load_audio(prompts / row["file"]).mono(), row["reference"]))
    return out


def main() -> None:
    """Print the WER table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--bits", type=int, nargs="*", default=[8, 4])
    parser.add_argument("--asterisk", type=int, default=12)
    parser.add_argument("--ct2", action="store_true", help="add faster-whisper int8 (greedy)")
    args = parser.parse_args()
    data = clips(args.asterisk)
    weights = read_ct2_model(resolve_whisper_model(args.model))
    variants = [("float32", weights)]
    with tempfile.TemporaryDirectory() as tmp:
        for bits in args.bits:
            path = Path(tmp) / f"{bits}.safetensors"
            size = save_transfer(weights, path, bits=bits)
            variants.append((f"int{bits} ({size / 1e6:.1f} MB)", load_transfer(path)))
        texts: dict[str, list[str]] = {}
        for name, w in variants:
            decoder = TorchWhisperDecoder(w, TorchBackendConfig(device="cpu"))
            start = time.perf_counter()
            results = decoder.transcribe_windows(
                [a for _, a, _ in data], [None] * len(data), [AsrOptions(beam_size=1)] * len(data)
            )
            texts[name] = [r.text for r in results]
            print(
                f"{args.model} {name}: decoded {len(data)} clips in "  # noqa: T201
                f"{time.perf_counter() - start:.1f} s"
            )
        if args.ct2:
            from asr import WhisperEngine

            engine = WhisperEngine.load(args.model, device="cpu", compute_type="int8")
            texts["faster-whisper int8 (CPU path)"] = [
                engine.transcribe_turn(a, AsrOptions(beam_size=1)).text for _, a, _ in data
            ]
    for name, hyps in texts.items():
        for k, (hyp, ref) in enumerate(zip(hyps, texts["float32"], strict=True)):
            if hyp != ref:
                print(f"  {name} #{k}: {hyp!r}\n  {'float32':>{len(name)}} #{k}: {ref!r}")  # noqa: T201
    print("| weights | " + " | ".join(sorted({s for s, _, _ in data})) + " | differ from float32 |")  # noqa: T201
    for name, hyps in texts.items():
        cells = []
        for subset in sorted({s for s, _, _ in data}):
            pairs = [(ref, hyp) for (s, _, ref), hyp in zip(data, hyps, strict=True) if s == subset]
            wer = pooled([word_errors(ref, hyp) for ref, hyp in pairs]).wer
            cells.append(f"{100 * wer:.1f} %")
        differ = sum(a != b for a, b in zip(hyps, texts["float32"], strict=True))
        print(f"| {name} | " + " | ".join(cells) + f" | {differ}/{len(hyps)} |")  # noqa: T201


if __name__ == "__main__":
    main()
