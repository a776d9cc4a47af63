"""The stereo same-channel check correlates the channels in blocks (bounded memory on long calls)
and agrees with numpy's whole-array correlation on real audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.server.harness import bundled_sample
from voice.batch.pipeline import _correlation

pytestmark = pytest.mark.unit


def _phone_call() -> np.ndarray:
    samples, _ = sf.read(bundled_sample()[0], dtype="float32")
    return np.asarray(samples)


@pytest.mark.parametrize("other", ["same", "echo", "other half"])
def test_block_correlation_matches_numpy_on_a_real_call(other: str) -> None:
    call = _phone_call()
    first = call[: len(call) // 2]
    second = {"same": first.copy(),
              "echo": first + 0.5 * np.roll(first, 800),
              "other half": call[len(call) // 2: len(call) // 2 + len(first)]}[other]
    want = float(np.corrcoef(first, second)[0, 1])
    assert _correlation(first, second, block=4096) == pytest.approx(want, abs=1e-9)
