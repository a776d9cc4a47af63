"""CPU cost of the live path's per-leg front end (the GPU benchmark replays it instead).

    PYTHONPATH=/tmp/site python3 scripts/gpu/frontend_cost.py --data .gpu-torch --out "$OUT"

Per 20 ms telephony frame, ``StreamingAsrProcessor`` resamples 8 -> 16 kHz (soxr stream), runs
the VAD (``VadStream.push``: its own soxr stream, WebRTC gate, Silero ONNX on one thread) and
inserts the audio into the leg's transcriber. This feeds every carried leg through exactly that,
on one core, and reports CPU milliseconds per second of audio per leg and what that means in
cores for N two-leg calls. Needs soxr, webrtcvad-wheels and faster-whisper (for the bundled
Silero file only) from the carried wheels, plus onnxruntime from the image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
for _name in ("asr", "voice"):  # only the modules used (see bench_gpu.py)
    _module = types.ModuleType(_name)
    _module.__path__ = [str(REPO / _name)]
    sys.modules.setdefault(_name, _module)

from asr.streaming import StreamingTranscriber  # noqa: E402
from voice.vad import VadParams, VadStream  # noqa: E402


def main() -> None:
    """Print and write the cost."""
    import soxr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".gpu-torch")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per leg")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_data import ulaw_to_float

    coded = np.load(args.data / "calls.npz")
    audio_seconds = 0.0
    cpu = 0.0
    for key in sorted(coded.files):
        pcm = (ulaw_to_float(coded[key][: int(args.seconds * 8000)]) * 32768).astype(np.int16)
        vad, transcriber = VadStream(VadParams()), StreamingTranscriber()
        resampler = soxr.ResampleStream(8000, 16000, 1, dtype="float32")
        start = time.process_time()
        for k in range(len(pcm) // 160):
            frame = pcm[k * 160 : (k + 1) * 160]
            samples = resampler.resample_chunk(frame.astype(np.float32) / 32768.0)
            transcriber.insert_audio(np.asarray(samples, dtype=np.float32))
            vad.push(frame, 8000)
        cpu += time.process_time() - start
        audio_seconds += len(pcm) / 8000
    ms_per_second = 1000 * cpu / audio_seconds
    result = {
        "legs": len(coded.files),
        "audio_seconds": audio_seconds,
        "cpu_seconds": cpu,
        "cpu_ms_per_leg_second": ms_per_second,
        "cores_per_100_calls": 200 * ms_per_second / 1000,
    }
    print(json.dumps(result), flush=True)  # noqa: T201
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "frontend_cost.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
