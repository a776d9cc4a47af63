"""Shared test set-up: markers, the shared evaluation data, and offline model environment.

Every test module declares exactly one marker (``unit``, ``model``, ``data``, ``e2e``) through
``pytestmark``; collection fails otherwise, so the suite's cost profile stays visible.
Tests that read ``../shared/data`` skip with a clear reason when it is absent (a user's clone).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NEXTLINE_SHARED_DATA", REPO.parent / "shared" / "data"))
MARKERS = {"unit", "model", "data", "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse test modules that do not declare exactly one of the suite's markers."""
    for item in items:
        own = {m.name for m in item.iter_markers()} & MARKERS
        if len(own) != 1:
            raise pytest.UsageError(
                f"{item.nodeid}: declare exactly one of {sorted(MARKERS)} via pytestmark (found {sorted(own)})"
            )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA} (set NEXTLINE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def bundled_suggestion_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo's bundled (real, small) suggestion model with its encoder attached;
    tests that change model files copy it again."""
    from voice import demo
    from voice.batch.demo_model import attach_encoder

    if not (demo.BUNDLED_MODEL / "manifest.json").is_file():
        pytest.skip("the bundled demo model is not in this checkout")
    target = tmp_path_factory.mktemp("bundled") / "model"
    shutil.copytree(demo.BUNDLED_MODEL, target)
    attach_encoder(target, Path.home() / ".cache" / "nextline")
    return target
