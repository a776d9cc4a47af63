"""Shared real inputs of the diarization tests: the pyannote telephone sample and CAM++ run as
the server runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from pyannote.core import Annotation

from diarize.embedding import SpeakerEmbedder
from diarize.rttm import read_rttm
from voice.audio import load_audio


@pytest.fixture(scope="module")
def sample(shared_data: Path) -> tuple[np.ndarray, Annotation]:
    """The pyannote telephone sample (mono, 16 kHz) and its reference."""
    folder = shared_data / "diarization" / "pyannote_sample_telephone"
    return load_audio(folder / "sample.wav").mono(), read_rttm(folder / "sample.rttm")["sample"]


@pytest.fixture(scope="module")
def embedder() -> Iterator[SpeakerEmbedder]:
    """CAM++ on one torch thread, as the server runs it: with the default two on a shared 2-core
    machine the streaming tests took 280 s instead of about 15. Process-wide: restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield SpeakerEmbedder.load()
    finally:
        torch.set_num_threads(previous)
