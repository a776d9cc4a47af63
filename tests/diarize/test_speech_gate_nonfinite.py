"""EnergyGate on non-finite input: a NaN or inf frame must not blind the gate for what follows."""

from __future__ import annotations

import numpy as np
import pytest

from diarize.speech_gate import EnergyGate
from tests.fakes.speakers import Said, speak

pytestmark = pytest.mark.unit


def _gate() -> EnergyGate:
    return EnergyGate(margin_db=9.0, floor_db=-55.0, prior_db=-60.0, fill=0.5, pad=0.1, floor_history=10.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_speech_after_a_non_finite_sample_is_still_heard(bad: float) -> None:
    gate = _gate()
    audio = speak([Said(None, 1.0), Said("agent", 1.0), Said(None, 1.0), Said("agent", 1.0)])
    audio[16000 + 100] = bad  # inside the first speech, 1.0 s in
    frames = audio.reshape(-1, 160)
    flags = np.concatenate([gate(frames[first : first + 10])[0] for first in range(0, len(frames), 10)])
    assert flags[300:400].all()  # the second speech, 3.0-4.0 s, long after the bad sample
    assert not flags[:90].any()
