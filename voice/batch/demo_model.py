"""The suggestion model of ``voice demo``: trained once on PersuasionForGood, then cached.

PersuasionForGood (Apache-2.0) is the redistributable dialogue set with outcomes in the shared
data. The model is keyed by a hash of the imported conversations and the nextline version, so
editing the data or upgrading retrains, and every other run reuses the cached directory.
Training writes to a temporary folder that is renamed into place, so an interrupted run never
leaves a half-written model that a later run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from voice.errors import ConfigError

DEMO_TENANT = "demo"


def _nextline_version() -> str:
    try:
        return version("nextline")
    except PackageNotFoundError:
        return "dev"


def cached_pfg_model(source: Path, models_root: Path, cache_dir: Path,
                     say: Callable[[str], None] = lambda _m: None, *, limit: int | None = None) -> Path:
    """The demo model directory, training it first when no cached one matches the data.

    ``limit`` trains on the first conversations only (tests: a small real model in a minute).

    Raises:
        ConfigError: the data is missing or the suggestion engine cannot train on it.
    """
    from suggest.data.format import data_hash
    from suggest.data.importers import import_persuasionforgood
    from suggest.errors import SuggestError

    try:
        report = import_persuasionforgood(source, tenant=DEMO_TENANT)
    except (OSError, SuggestError) as exc:
        raise ConfigError(f"cannot read PersuasionForGood at {source}: {exc}",
                          hint="set NEXTLINE_SHARED_DATA to the folder holding dialogues/") from exc
    conversations = report.conversations[:limit] if limit else report.conversations
    key = hashlib.sha256(f"{data_hash(conversations)}:{_nextline_version()}".encode()).hexdigest()[:12]
    target = models_root / DEMO_TENANT / f"pfg-{key}"
    if model_loads(target):
        return target
    say(f"training the demo suggestion model on {len(conversations)} PersuasionForGood "
        "conversations (once; cached for later runs)")
    _train(conversations, target, cache_dir, say)
    return target


def model_loads(model_dir: Path) -> bool:
    """Whether a cached model is there and readable by this engine (a format change retrains it)."""
    if not (model_dir / "manifest.json").is_file():
        return False
    from suggest.model import load_model

    try:
        load_model(model_dir)
    except Exception:  # any failure to read means "train again", never "serve a broken model"
        return False
    return True


def _train(conversations: list[Any], target: Path, cache_dir: Path, say: Callable[[str], None],
           version: str | None = None, **overrides: Any) -> None:
    from suggest.errors import SuggestError
    from suggest.train.config import TrainConfig
    from suggest.train.pipeline import train

    # The trainer names the version after the folder it writes: train under the version's name.
    partial = target.parent / ".partial" / (version or target.name)
    shutil.rmtree(partial, ignore_errors=True)
    config = TrainConfig(tenant=DEMO_TENANT, split="all", evaluate_heldout=False, **overrides)
    try:
        train(conversations, config, partial, cache_dir=cache_dir, hook=say)
    except SuggestError as exc:
        raise ConfigError(f"training the demo model failed: {exc}") from exc
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    with contextlib.suppress(OSError):
        partial.parent.rmdir()


def attach_encoder(model_dir: Path, cache_dir: Path) -> None:
    """Give a model shipped without its encoder (to stay small) the one exported from the installed MiniLM.

    Raises:
        ConfigError: the encoder cannot be exported here.
    """
    from suggest.encoder.export import ensure_encoder
    from suggest.encoder.onnx_encoder import ENCODER_FILES

    spec = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8")).get("encoder", {})
    try:
        encoder_dir = ensure_encoder(cache_dir, spec.get("quantization", "int8"), int(spec.get("max_tokens", 128)))
    except Exception as exc:  # torch/onnx export problems surface as many types
        raise ConfigError(f"cannot export the sentence encoder: {exc}", hint="run scripts/setup.sh") from exc
    (model_dir / "encoder").mkdir(parents=True, exist_ok=True)
    for name in ENCODER_FILES:
        shutil.copyfile(encoder_dir / name, model_dir / "encoder" / name)


BUNDLED_EXEMPLARS_PER_ACTION = 80
"""Keeps a bundled model under 5 MiB: each exemplar costs two 384-float vectors (3 KiB)."""
NOTICE = """Suggestion model for `voice demo` (used when ../shared/data is absent).

Trained by nextline (`scripts/build_demo_model.py`) on the PersuasionForGood corpus:
Wang et al., "Persuasion for Good: Towards a Personalized Persuasive Dialogue System for
Social Good", ACL 2019 (https://gitlab.com/ucdavisnlp/persuasionforgood), Apache-2.0.
exemplars.json quotes persuader utterances of that corpus. The sentence encoder is not
included: it is exported at first use from the installed all-MiniLM-L6-v2 package.
"""


def build_bundled_model(source: Path, out_dir: Path, cache_dir: Path,
                        say: Callable[[str], None] = lambda _m: None) -> Path:
    """Train the small demo model that ships in the package, without its encoder (maintainers)."""
    from suggest.data.importers import import_persuasionforgood

    conversations = import_persuasionforgood(source, tenant=DEMO_TENANT).conversations
    _train(conversations, out_dir, cache_dir, say, version=f"pfg-small-{_nextline_version()}",
           max_exemplars_per_action=BUNDLED_EXEMPLARS_PER_ACTION)
    shutil.rmtree(out_dir / "encoder", ignore_errors=True)
    _forget_encoder_digests(out_dir / "manifest.json")
    (out_dir / "NOTICE.md").write_text(NOTICE, encoding="utf-8")
    for path in out_dir.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; a packaged file must be readable by all
    return out_dir


def _forget_encoder_digests(manifest_path: Path) -> None:
    """The shipped model has no ``encoder/`` (attach_encoder exports it from the installed
    MiniLM, whose ``model.onnx`` ``encoder.sha256`` still pins): its manifest lists no digests
    of it, as models saved before encoder digests, so it loads before the encoder is attached."""
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("encoder/")}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                             encoding="utf-8")
