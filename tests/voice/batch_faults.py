"""A batch worker function that kills its own process on chosen files.

It lives in an importable module (not a test file) because spawned pool workers import it by
name. The other files are decoded for real, without ASR: what the tests check is the pool's
recovery, and skipping the models keeps each pool start at about a second.
"""

from __future__ import annotations

import os
from typing import Any

from voice.audio import load_audio
from voice.batch.options import TranscribeOptions
from voice.batch.runner import FileJob
from voice.transcript import CallTranscript


def decode_or_die(job: FileJob, options: TranscribeOptions, cpu_threads: int = 0) -> tuple[str, Any]:
    """Exit the worker process abruptly (as the OOM killer would) on files named ``crash*``."""
    if job.path.stem.startswith("crash"):
        os._exit(137)
    audio = load_audio(job.path)
    transcript = CallTranscript(job.name, audio.info, [], [],
                                options={**options.to_dict(), "fingerprint": options.fingerprint()})
    return "done", transcript.to_dict()
