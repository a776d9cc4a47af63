"""Real peers for the live tests: sipp, ffmpeg as an RTP sender, and the speech they carry.

Speech with known words comes from the shared Asterisk prompts (8 kHz telephone IVR voice,
``asr/asterisk_prompts_8k/transcription.tsv``) and the SpokenWOZ calls (word-level references
in ``<id>.json``, speaker A on the left channel = customer, B on the right = agent).
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.fakes.peers import SIPP_PCAPS

SIPREC_SCENARIO = Path(__file__).resolve().parent.parent / "telephony" / "sipp" / "siprec_uac.xml"
PROMPT_RATE = 8000



async def run_sipp(args: list[str], workdir: Path, limit: float = 60.0) -> tuple[int, str]:
    """One sipp call (``-m 1``) from 127.0.0.1; returns its exit code and the tail of its output."""
    pcap = workdir / "pcap"
    if not pcap.exists():
        pcap.symlink_to(SIPP_PCAPS)  # sipp's built-in scenarios look for pcap/ in the cwd
    process = await asyncio.create_subprocess_exec(
        "sipp", *args, "-i", "127.0.0.1", "-p", "0", "-mp", "0", "-m", "1",
        "-nostdin", "-trace_err",
        cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    errors = await asyncio.to_thread(
        lambda: "".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    )
    return process.returncode or 0, output.decode(errors="replace")[-2000:] + errors[-2000:]


async def send_rtp_with_ffmpeg(wav: Path, port: int, limit: float = 60.0) -> None:
    """Play ``wav`` in real time as PCMU RTP, 20 ms packets, to 127.0.0.1:``port``."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(wav),
        "-af", "aresample=8000,asetnsamples=n=160:p=0", "-ac", "1", "-c:a", "pcm_mulaw",
        "-payload_type", "0", "-f", "rtp", f"rtp://127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, errors = await asyncio.wait_for(process.communicate(), limit)
    assert process.returncode == 0, errors.decode(errors="replace")


class Prompts:
    """The shared Asterisk prompts: audio and reference text by sound name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with (folder / "transcription.tsv").open(encoding="utf-8") as f:
            self.text = {
                row["asterisk_sound_name"].replace("/", "__"): row["reference"]
                for row in csv.DictReader(f, delimiter="\t")
            }

    def path(self, name: str) -> Path:
        return self.folder / "wav" / f"{name}.wav"

    def audio(self, name: str) -> np.ndarray:
        return read_pcm(self.path(name))

    def joined(self, names: list[str], out: Path, gap: float = 1.5) -> tuple[Path, str]:
        """The prompts one after another with ``gap`` s of silence between (separate turns)."""
        silence = np.zeros(int(gap * PROMPT_RATE), np.int16)
        parts = [part for name in names for part in (self.audio(name), silence)]
        sf.write(out, np.concatenate(parts), PROMPT_RATE, subtype="PCM_16")
        return out, " ".join(self.text[name] for name in names)


def read_pcm(path: Path) -> np.ndarray:
    """A mono 8 kHz WAV as int16."""
    samples, rate = sf.read(path, dtype="int16")
    assert rate == PROMPT_RATE and samples.ndim == 1
    return samples


def spokenwoz_reference(words_json: Path, speaker: str, until: float) -> str:
    """The silver reference words of one SpokenWOZ speaker that end before ``until`` seconds."""
    words = json.loads(words_json.read_text(encoding="utf-8"))
    return " ".join(w["word"] for w in words if w["speaker"] == speaker and w["end"] <= until)
