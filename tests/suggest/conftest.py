"""Fixtures shared by the suggestion-model tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundled() -> Path:
    """The demo's bundled (real, small) model folder, read only: no encoder attached (see
    ``bundled_suggestion_model`` in tests/conftest.py for a copy that serves suggestions)."""
    from voice import demo

    if not (demo.BUNDLED_MODEL / "manifest.json").is_file():
        pytest.skip("the bundled demo model is not in this checkout")
    return Path(demo.BUNDLED_MODEL)
