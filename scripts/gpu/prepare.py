"""Build the folder the GPU benchmark carries to the device (run here, on the CPU machine).

    .venv/bin/python scripts/gpu/prepare.py --wheels   # writes .gpu-torch/ (git-ignored)

The device has no network, no CTranslate2 runtime for its CUDA, and no ``../shared``; a call to
it carries at most 64 MiB. This writes, into ``.gpu-torch/`` (in ``.git/info/exclude``; not
``.gpu/``, which ``scripts/gpu_prepare.sh`` deletes and refills for the CTranslate2 route):

- ``model.safetensors``: Whisper tiny.en as int8 per-row weights with float16 scales
  (:func:`asr.ct2_convert.save_transfer`, 38.6 MB; ``--bits 4`` halves it);
- ``calls.npz``: each leg of the shared SpokenWOZ 8 kHz stereo calls as G.711 mu-law bytes, the
  way Twilio delivers a call (7.2 MB; CC BY-NC 4.0: evaluation only, never committed);
- ``whl/`` (``--wheels``): soxr, webrtcvad-wheels and faster-whisper (its Silero file only)
  wheels for Python 3.12, for ``frontend_cost.py`` on the device (1.4 MB);
- ``vad.json``: per leg, the live path's VAD decisions over time, computed here with the real
  ``voice.vad.VadStream`` on the mu-law-decoded audio, fed 20 ms frames exactly as
  ``voice.processors.asr.StreamingAsrProcessor._feed`` does: speech started, pause since,
  speech stopped, and the 30 s maximum-turn split. VAD is deterministic, so the device replays
  these decisions at their times instead of running Silero for hundreds of legs on its cores;
- ``refs.json``: per leg, SpokenWOZ's silver words as one reference text, for the final-pass
  WER on the device (``final_wer.py``; CC BY-NC 4.0 like the calls).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from asr.ct2_convert import WhisperWeights, read_ct2_model, save_transfer  # noqa: E402
from asr.models import resolve_whisper_model  # noqa: E402
from telephony.codecs import ulaw_decode, ulaw_encode  # noqa: E402
from voice.vad import VadEventType, VadParams, VadStream  # noqa: E402

CALLS = REPO.parent / "shared" / "data" / "diarization" / "spokenwoz_calls_8k"
FRAME = 0.02  # seconds per telephony frame
MAX_TURN = 30.0  # StreamingAsrProcessor's default max_turn

WHEELS = ("soxr==1.1.0", "webrtcvad-wheels==2.0.14.post1", "faster-whisper==1.2.1")
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)

BEGIN, PAUSE, CLOSE = 0, 1, 2
"""Action codes in vad.json: ``[time, BEGIN, start]``, ``[time, PAUSE, since or -1]``,
``[time, CLOSE, end, 1 if the VAD closed it else 0 (maximum turn length)]``; ``time`` is the
leg time at which the frame that caused it had been fed."""


def vad_actions(pcm: np.ndarray, rate: int, params: VadParams) -> list[list[float]]:
    """The processor's VAD-driven calls for one leg of int16 PCM."""
    vad = VadStream(params)
    size = round(FRAME * rate)
    actions: list[list[float]] = []
    turn_start: float | None = None
    last_speech = 0.0
    pause: float | None = None
    for k in range(len(pcm) // size):
        now = round((k + 1) * FRAME, 3)
        for event in vad.push(pcm[k * size : (k + 1) * size], rate):
            if event.type is VadEventType.SPEECH_STARTED:
                last_speech, turn_start, pause = vad.time, event.time, None
                actions.append([now, BEGIN, round(event.time, 4)])
            else:
                actions.append([now, CLOSE, round(event.time, 4), 1])
                turn_start = None
        if vad.in_speech:
            if vad.frame_is_speech:
                last_speech = vad.time
            since = None if vad.frame_is_speech else last_speech
            if since != pause:
                actions.append([now, PAUSE, round(since, 4) if since is not None else -1.0])
                pause = since
        if turn_start is not None and vad.time - turn_start > MAX_TURN:
            actions.append([now, CLOSE, round(vad.time, 4), 0])
            actions.append([now, BEGIN, round(vad.time, 4)])
            turn_start, pause = vad.time, None
    return actions


def read_stereo(path: Path) -> tuple[int, np.ndarray]:
    """(rate, int16 (frames, channels)) of a PCM WAV file."""
    with wave.open(str(path), "rb") as handle:
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        return handle.getframerate(), data.reshape(-1, handle.getnchannels())


def main() -> None:
    """Write .gpu-torch/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".gpu-torch")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--bits", type=int, default=8, choices=(8, 4))
    parser.add_argument("--calls", type=Path, default=CALLS)
    parser.add_argument("--skip-model", action="store_true", help="keep an existing model file")
    parser.add_argument("--wheels", action="store_true", help="also download the front-end wheels")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "model.safetensors"
    if not (args.skip_model and model_path.is_file()):
        weights = read_ct2_model(resolve_whisper_model(args.model))
        weights = WhisperWeights(
            weights.dims,
            weights.state,
            weights.config,
            weights.tokenizer_json,
            source=f"{args.model} int{args.bits}",
        )
        save_transfer(weights, model_path, bits=args.bits)
    legs, timelines = encode_calls(args.calls)
    np.savez(args.out / "calls.npz", **legs)
    if args.wheels:
        download_wheels(args.out / "whl")
    (args.out / "vad.json").write_text(json.dumps({"frame": FRAME, "legs": timelines}))
    (args.out / "refs.json").write_text(json.dumps(reference_texts(args.calls), indent=1))
    report(args.out)


def encode_calls(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, object]]]:
    """Each leg of the folder's stereo WAV calls as mu-law bytes, and its VAD timeline."""
    legs: dict[str, np.ndarray] = {}
    timelines: dict[str, dict[str, object]] = {}
    for wav in sorted(folder.glob("*.wav")):
        rate, pcm = read_stereo(wav)
        for channel, name in enumerate(("A", "B")):
            coded = np.frombuffer(ulaw_encode(pcm[:, channel]), dtype=np.uint8)
            key = f"{wav.stem}_{name}"
            legs[key] = coded
            decoded = ulaw_decode(coded)
            timelines[key] = {
                "rate": rate,
                "duration": len(coded) / rate,
                "actions": vad_actions(decoded, rate, VadParams()),
            }
            print(
                f"{key}: {len(coded) / rate:.1f} s, "  # noqa: T201
                f"{sum(a[1] == BEGIN for a in timelines[key]['actions'])} turns"
            )
    return legs, timelines


def reference_texts(folder: Path) -> dict[str, str]:
    """Leg key (``<call>_A``/``_B``) -> the leg's reference words (``<call>.json``), joined."""
    refs = {}
    for wav in sorted(folder.glob("*.wav")):
        words = json.loads(wav.with_suffix(".json").read_text())
        for side in ("A", "B"):
            refs[f"{wav.stem}_{side}"] = " ".join(w["word"] for w in words if w["speaker"] == side)
    return refs


def download_wheels(folder: Path) -> None:
    """The front-end wheels for the device's Python 3.12 (pip download, no dependencies)."""
    platforms = [flag for p in PLATFORMS for flag in ("--platform", p)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        *platforms,
        "-d",
        str(folder),
        *WHEELS,
    ]
    subprocess.run(command, check=True)


def report(folder: Path) -> None:
    """Print what will be carried."""
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        total += path.stat().st_size
        print(f"{path.relative_to(folder)}: {path.stat().st_size / 1e6:.2f} MB")  # noqa: T201
    print(f"{folder}: {total / 1e6:.1f} MB to carry")  # noqa: T201


if __name__ == "__main__":
    main()
