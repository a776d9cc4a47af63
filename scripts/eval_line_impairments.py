#!/usr/bin/env python
"""Line impairments (mains hum, clipping, level, band limits): the front end's VAD, energy gate
and online speaker attribution per condition.

The shared calls (the four SpokenWOZ calls and pyannote's telephone sample) are impaired
deterministically at their native rate (float in [-1, 1] -> impairment -> int16 -> G.711 mu-law
round trip, all but ``clean``), resampled to 16 kHz, and measured against their reference RTTM:

- ``vad``: batch ``voice.vad.detect_speech`` (Silero + WebRTC gate, the live ``VadStream``) per
  leg against the leg's reference speech, and the online attributor's ``EnergyGate`` (fed 20 ms
  packets, as live) on the legs mixed to mono; 10 ms frames, no collar, miss and false alarm as
  % of the reference speech.
- ``der``: online attribution DER of final labels (collar 0.25 s, overlap scored) on the legs
  mixed to mono at the native rate (a recorder port), replayed in 20 ms chunks through
  ``scripts/eval_online_diarization.py``'s ``replay`` and ``score_file``; pooled over SpokenWOZ,
  and the sample alone.
- ``wer``: final-turn WER of one SpokenWOZ call's legs (tiny.en, the live VAD turns, through
  ``scripts/bench_final_pass.py``'s ``leg_finals``).

Conditions (levels in dBFS are sine-referenced: a full-scale sine is 0 dBFS): ``clean`` (no
mu-law), ``clean_mulaw``, ``hum50:LEVEL`` / ``hum60:LEVEL`` (mains hum with odd-heavy harmonics
at LEVEL dBFS), ``clip:C`` (peak normalised to 1, clipped at +-C, gained back to full scale),
``cliplow:C`` (clipped at +-C and left there), ``level:DB`` (active speech level to DB dBFS),
``peak0`` (gain to a 0 dBFS peak), ``bp`` (band-pass 300-3400 Hz), ``lp1k`` (low-pass 1 kHz).
Results: docs/results/online_diarization.md, "Line impairments".

Usage:
    .venv/bin/python scripts/eval_line_impairments.py vad                      # every condition
    .venv/bin/python scripts/eval_line_impairments.py vad --gate-only hum60:-20 hum60:-30
    .venv/bin/python scripts/eval_line_impairments.py der clean hum50:-20 --out out/impair_der.json
    .venv/bin/python scripts/eval_line_impairments.py der --gate-floor-db -60 clean level:-45
    .venv/bin/python scripts/eval_line_impairments.py wer SNG0480 --seconds 60 clean_mulaw clip:0.3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from eval_online_diarization import FileScores, TimedEmbedder

    from diarize.eval import ReferenceFile
    from diarize.streaming import OnlineAttributionConfig, OnlineSpeakerAttributor

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_DIRS = (
    DATA / "diarization" / "spokenwoz_calls_8k",
    DATA / "diarization" / "pyannote_sample_telephone",
)
SAMPLE_URI = "sample"
"""pyannote's telephone sample: reported apart from the SpokenWOZ calls."""
FRAME_SECONDS = 0.01
"""Resolution of the VAD and gate scoring (the gate's own frame)."""

# --- impairments -------------------------------------------------------------------------------

CONDITIONS = (
    "clean", "clean_mulaw",
    "hum50:-30", "hum50:-20", "hum60:-30", "hum60:-20",
    "clip:0.3", "clip:0.1",
    "level:-45", "peak0",
    "bp", "lp1k",
)  # fmt: skip
"""The study's conditions, in the order of the doc's tables."""
HUM_HARMONICS = {1: 1.0, 2: 0.2, 3: 0.5, 4: 0.1, 5: 0.3, 6: 0.05, 7: 0.15}
"""Mains hum: fundamental plus odd-heavy harmonics (transformer saturation), relative amplitudes."""
HUM_SEED = 7
"""Seed of the harmonics' random phases (every call gets the same hum)."""
_NAMES_WITH_ARG = {"hum50", "hum60", "clip", "cliplow", "level"}
_NAMES_PLAIN = {"clean", "clean_mulaw", "peak0", "bp", "lp1k"}


def condition(text: str) -> str:
    """``text`` if it names a condition (argparse type), else ``ArgumentTypeError``."""
    name, sep, arg = text.partition(":")
    if name in _NAMES_PLAIN and not sep:
        return text
    if name in _NAMES_WITH_ARG:
        try:
            float(arg)
        except ValueError:
            pass
        else:
            return text
        raise argparse.ArgumentTypeError(f"{text!r}: {name} needs a number, as in {name}:-20")
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a condition (one of {', '.join(sorted(_NAMES_PLAIN | _NAMES_WITH_ARG))})"
    )


def hum(n: int, rate: int, mains: float, level_dbfs: float, seed: int = HUM_SEED) -> np.ndarray:
    """``n`` samples of mains hum at ``mains`` Hz, RMS at ``level_dbfs`` (sine-referenced)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    h = sum(
        (a * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi)) for k, a in HUM_HARMONICS.items()),
        np.zeros(n),
    )
    rms = np.sqrt(np.mean(h**2))
    return np.asarray(h / rms * (10 ** (level_dbfs / 20) / np.sqrt(2)), dtype=np.float64)


def active_rms_db(x: np.ndarray, speech: np.ndarray | None) -> float:
    """RMS (dBFS, sine-referenced) over the samples where ``speech`` (bool mask) is set."""
    v = x[speech] if speech is not None and speech.any() else x
    return float(20 * np.log10(np.sqrt(np.mean(v**2)) * np.sqrt(2) + 1e-12))


def impair(x: np.ndarray, rate: int, cond: str, speech: np.ndarray | None = None) -> np.ndarray:
    """Float ``x`` in [-1, 1] at ``rate`` -> impaired int16, mu-law round trip unless ``clean``.

    ``speech``: the reference speech samples, for ``level`` (``None``: the whole signal).
    """
    from scipy.signal import butter, sosfiltfilt

    from telephony.codecs import ulaw_decode, ulaw_encode

    y = np.asarray(x, dtype=np.float64)
    name, _, arg = condition(cond).partition(":")
    if name in ("hum50", "hum60"):
        y = y + hum(len(y), rate, 50.0 if name == "hum50" else 60.0, float(arg))
    elif name == "clip":  # driven 1/c into the rails
        c = float(arg)
        y = np.clip(y / np.abs(y).max(), -c, c) / c
    elif name == "cliplow":
        c = float(arg)
        y = np.clip(y / np.abs(y).max(), -c, c)
    elif name == "level":
        y = y * 10 ** ((float(arg) - active_rms_db(y, speech)) / 20)
    elif name == "peak0":
        y = y / np.abs(y).max()
    elif name == "bp":
        y = sosfiltfilt(butter(4, [300, 3400], "bandpass", fs=rate, output="sos"), y)
    elif name == "lp1k":
        y = sosfiltfilt(butter(6, 1000, "lowpass", fs=rate, output="sos"), y)
    pcm = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)
    return pcm if name == "clean" else np.asarray(ulaw_decode(ulaw_encode(pcm)), dtype=np.int16)


def to_16k(pcm: np.ndarray, rate: int) -> np.ndarray:
    """int16 at ``rate`` -> float32 at 16 kHz (the repo's resampler)."""
    from voice.audio import resample

    return resample(pcm.astype(np.float32) / 32768.0, rate, 16000)


# --- recordings ----------------------------------------------------------------------------------


@dataclass
class Recording:
    """One call at its native rate, with its reference."""

    uri: str
    rate: int
    legs: list[np.ndarray]
    """float32, one per channel."""
    leg_speakers: list[set[str] | None]
    """Reference speakers of each leg (SpokenWOZ: A left, B right); ``None``: all of them."""
    ref: ReferenceFile

    @property
    def mix(self) -> np.ndarray:
        """The legs mixed to mono (a recorder port)."""
        return np.mean(self.legs, axis=0)

    def mask(self, speakers: set[str] | None, n: int, rate: float) -> np.ndarray:
        """``n`` flags at ``rate``: reference speech of ``speakers`` (``None``: anyone)."""
        m = np.zeros(n, dtype=bool)
        for seg, _, spk in self.ref.reference.itertracks(yield_label=True):
            if speakers is None or spk in speakers:
                m[int(seg.start * rate) : int(seg.end * rate)] = True
        return m

    def impaired_mix(self, cond: str) -> np.ndarray:
        """The mix under ``cond``, float32 at 16 kHz."""
        mix = self.mix
        return to_16k(impair(mix, self.rate, cond, self.mask(None, len(mix), self.rate)), self.rate)


def load_recordings(dirs: Sequence[Path]) -> list[Recording]:
    """Every audio + RTTM pair in ``dirs``, at its native rate (``find_reference_files`` order)."""
    import soundfile as sf

    from diarize.eval import find_reference_files

    recordings = []
    for ref in (r for d in dirs for r in find_reference_files(d)):
        x, rate = sf.read(ref.audio, dtype="float32", always_2d=True)
        legs = [np.ascontiguousarray(x[:, i]) for i in range(x.shape[1])]
        speakers: list[set[str] | None] = [{"A"}, {"B"}] if len(legs) == 2 else [None] * len(legs)
        recordings.append(Recording(ref.uri, rate, legs, speakers, ref))
    return recordings


# --- vad: Silero + WebRTC per leg, the energy gate on the mix ----------------------------------


def gate_flags(audio: np.ndarray, config: OnlineAttributionConfig) -> np.ndarray:
    """The online attributor's ``EnergyGate`` (set up as ``config`` sets it) over 16 kHz
    ``audio`` fed in 20 ms packets, as live: one speech flag per 10 ms frame."""
    from diarize.speech_gate import EnergyGate

    gate = EnergyGate(
        margin_db=config.gate_margin_db,
        floor_db=config.gate_floor_db,
        prior_db=config.gate_prior_db,
        fill=config.gate_fill,
        pad=config.gate_pad,
        floor_history=config.floor_history,
        band_hz=config.gate_band_hz,
    )
    frame = round(FRAME_SECONDS * 16000)
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    flags: list[bool] = []
    for first in range(0, len(frames), 2):
        speech, before = gate(frames[first : first + 2])
        if before:  # a bridged pause or an onset pad reaching into earlier packets
            flags[-before:] = [True] * min(before, len(flags))
        flags += speech.tolist()
    return np.array(flags, dtype=bool)


def _frames_of(regions: list[tuple[float, float]], n: int) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for start, end in regions:
        m[round(start / FRAME_SECONDS) : round(end / FRAME_SECONDS)] = True
    return m


def _leg_vad(rec: Recording, leg: np.ndarray, speakers: set[str] | None, cond: str) -> dict[str, Any]:
    """Batch VAD of one impaired leg against the leg's reference speech (10 ms frame counts)."""
    from voice.vad import detect_speech

    audio = to_16k(impair(leg, rec.rate, cond, rec.mask(speakers, len(leg), rec.rate)), rec.rate)
    n = int(len(audio) / 16000 / FRAME_SECONDS)
    ref = rec.mask(speakers, n, 1 / FRAME_SECONDS)
    regions = [(r.start, r.end) for r in detect_speech(audio)]
    hyp = _frames_of(regions, n)
    return {
        "ref": int(ref.sum()),
        "miss": int((ref & ~hyp).sum()),
        "fa": int((~ref & hyp).sum()),
        "speech": int(hyp.sum()),
        "first": regions[0][0] if regions else None,
    }


def evaluate_vad(
    recordings: list[Recording], cond: str, config: OnlineAttributionConfig, *, gate_only: bool
) -> dict[str, Any]:
    """VAD (unless ``gate_only``) and gate miss / false alarm (% of reference speech) under ``cond``."""
    vad = {"ref": 0, "miss": 0, "fa": 0, "speech": 0}
    gate = {"ref": 0, "miss": 0, "fa": 0}
    first: float | None = None
    for rec in recordings:
        for leg, speakers in zip(rec.legs, rec.leg_speakers, strict=True) if not gate_only else ():
            counts = _leg_vad(rec, leg, speakers, cond)
            for key in vad:
                vad[key] += counts[key]
            if rec.uri == SAMPLE_URI:
                first = counts["first"]  # the sample has one leg
        flags = gate_flags(rec.impaired_mix(cond), config)
        ref = rec.mask(None, len(flags), 1 / FRAME_SECONDS)
        gate["ref"] += int(ref.sum())
        gate["miss"] += int((ref & ~flags).sum())
        gate["fa"] += int((~ref & flags).sum())
    row: dict[str, Any] = {
        "gate_miss_pct": 100 * gate["miss"] / gate["ref"],
        "gate_fa_pct": 100 * gate["fa"] / gate["ref"],
    }
    if not gate_only:
        row |= {
            "vad_miss_pct": 100 * vad["miss"] / vad["ref"],
            "vad_fa_pct": 100 * vad["fa"] / vad["ref"],
            "vad_fa_s": vad["fa"] * FRAME_SECONDS,
            "vad_speech_s": vad["speech"] * FRAME_SECONDS,
            "ref_s": vad["ref"] * FRAME_SECONDS,
            "sample_first_start": first,
        }
    return row


def _vad_line(cond: str, row: dict[str, Any]) -> str:
    gate = f"gate miss {row['gate_miss_pct']:5.1f} % FA {row['gate_fa_pct']:5.1f} %"
    if "vad_miss_pct" not in row:
        return f"{cond:12s} {gate}"
    return (
        f"{cond:12s} VAD miss {row['vad_miss_pct']:5.1f} % FA {row['vad_fa_pct']:5.1f} % | {gate} | "
        f"sample's first speech at {row['sample_first_start']} s"
    )


# --- der: online attribution -------------------------------------------------------------------


def _pooled_cell(items: list[FileScores]) -> dict[str, float]:
    from diarize.eval import pooled

    p = pooled(i.scores["final_vs_reference"] for i in items)
    total = p.total or 1.0
    return {
        "der": 100 * p.der,
        "miss": 100 * p.missed / total,
        "fa": 100 * p.false_alarm / total,
        "conf": 100 * p.confusion / total,
    }


def evaluate_der(
    recordings: list[Recording], cond: str, attributor: OnlineSpeakerAttributor, embedder: TimedEmbedder
) -> dict[str, Any]:
    """Final-label DER (%, with miss / FA / confusion) under ``cond``: SpokenWOZ pooled, sample."""
    import eval_online_diarization as online

    per = []
    for rec in recordings:
        audio = rec.impaired_mix(cond)
        run = online.replay(audio, attributor, embedder)
        # the "offline" hypothesis is the reference itself: only final_vs_reference is read
        per.append(online.score_file(rec.ref, audio, run, rec.ref.reference, 0.25))
    return {
        "spokenwoz": _pooled_cell([p for p in per if p.uri != SAMPLE_URI]),
        "sample": _pooled_cell([p for p in per if p.uri == SAMPLE_URI]),
        "speakers": {p.uri: p.online_speakers for p in per},
        "per_call_der": {p.uri: round(100 * p.scores["final_vs_reference"].der, 1) for p in per},
        "rtf": sum(p.seconds for p in per) / sum(p.duration for p in per),
    }


def _der_line(cond: str, row: dict[str, Any]) -> str:
    def cell(c: dict[str, float]) -> str:
        return f"{c['der']:5.1f} ({c['miss']:.1f} / {c['fa']:.1f} / {c['conf']:.1f})"

    return (
        f"{cond:12s} DER SpokenWOZ {cell(row['spokenwoz'])} | sample {cell(row['sample'])} "
        f"(miss / FA / conf) per call {row['per_call_der']} rtf {row['rtf']:.3f}"
    )


# --- wer: final-turn WER of one call -------------------------------------------------------------


def run_wer(call_name: str, seconds: float | None, conds: list[str], threads: int) -> dict[str, Any]:
    """Final-turn WER (tiny.en, beam 5, 3 s context) of ``call_name``'s legs under each condition.

    ``level`` is referenced to the whole leg here (no reference speech mask), as in the study.
    """
    import importlib

    from asr import AsrOptions
    from asr.live import load_streaming_engine
    from asr.streaming import StreamingConfig, WhisperTurnDecoder
    from asr.wer import word_errors

    # By name: mypy would follow these into bench_streaming.py, which has type errors of its own.
    final_pass = importlib.import_module("bench_final_pass")
    streaming = importlib.import_module("bench_streaming")
    calls = [c for c in streaming.load_calls(DEFAULT_DIRS[0], seconds) if c.name == call_name]
    if not calls:
        raise SystemExit(f"no call {call_name!r} in {DEFAULT_DIRS[0]}")
    engine = load_streaming_engine("tiny.en", workers=1, cpu_threads=threads, encoder_window="trimmed")
    decoder = final_pass.TimedDecoder(WhisperTurnDecoder(engine, final=AsrOptions(beam_size=5)))
    config = StreamingConfig(final_context=3.0)
    results = {}
    for cond in conds:
        total = None
        for call in calls:
            for leg in streaming.LEGS:
                x = call.legs[leg].astype(np.float64) / 32768.0
                audio = to_16k(impair(x, call.rate, cond), call.rate)
                errors = word_errors(call.refs[leg], final_pass.leg_finals(audio, decoder, config))
                total = errors if total is None else total + errors
        assert total is not None
        results[cond] = {"wer": 100 * total.wer, "reference_words": total.reference_words}
        print(
            f"{call_name} {cond:12s} final WER {100 * total.wer:.1f} % ({total.reference_words} words)",
            flush=True,
        )
    return results


# --- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conds_help = f"conditions (default: {' '.join(CONDITIONS)})"
    vad = sub.add_parser("vad", help="VAD and energy-gate miss / false alarm per condition")
    vad.add_argument("conditions", nargs="*", type=condition, help=conds_help)
    vad.add_argument("--gate-only", action="store_true", help="the energy gate alone (skips Silero: fast)")
    der = sub.add_parser("der", help="online attribution DER per condition (2-5 min each)")
    der.add_argument("conditions", nargs="*", type=condition, help=conds_help)
    for p in (vad, der):
        p.add_argument(
            "--gate-floor-db",
            type=float,
            default=None,
            help="the gate's absolute floor (dBFS; default: OnlineAttributionConfig's)",
        )
        p.add_argument("--out", type=Path, help="write the numbers as JSON (rewritten after each condition)")
    wer = sub.add_parser("wer", help="final-turn WER of one SpokenWOZ call per condition")
    wer.add_argument("call", help="call id, e.g. SNG0480")
    wer.add_argument("conditions", nargs="+", type=condition)
    wer.add_argument("--seconds", type=float, default=60.0, help="first seconds of the call (0: all)")
    wer.add_argument("--threads", type=int, default=1, help="CPU threads of the decode")
    wer.add_argument("--out", type=Path, help="write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.command != "wer":
        args.conditions = args.conditions or list(CONDITIONS)
    return args


def _write(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "wer":
        _write(args.out, run_wer(args.call, args.seconds or None, args.conditions, args.threads))
        return 0
    from diarize.streaming import OnlineAttributionConfig

    config = OnlineAttributionConfig()
    if args.gate_floor_db is not None:
        config = OnlineAttributionConfig(gate_floor_db=args.gate_floor_db)
    recordings = load_recordings(DEFAULT_DIRS)
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict[str, Any] = {}
    if args.command == "vad":
        for cond in args.conditions:
            results[cond] = evaluate_vad(recordings, cond, config, gate_only=args.gate_only)
            print(_vad_line(cond, results[cond]), flush=True)
            _write(args.out, results)
        return 0
    import eval_online_diarization as online
    import torch

    from diarize.embedding import SpeakerEmbedder
    from diarize.streaming import OnlineSpeakerAttributor

    # One intra-op thread, as in the server and eval_online_diarization.py.
    torch.set_num_threads(1)
    embedder = online.TimedEmbedder(SpeakerEmbedder.load())
    attributor = OnlineSpeakerAttributor(embedder, config)
    for cond in args.conditions:
        results[cond] = evaluate_der(recordings, cond, attributor, embedder)
        print(_der_line(cond, results[cond]), flush=True)
        _write(args.out, results)
    print(f"load average after: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
