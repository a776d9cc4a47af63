"""A model's encoder files are checked like its weights: a corrupt one is a typed refusal.

Models saved now record the digests of ``encoder/<name>`` in their manifest; models saved
before (the bundled demo model among them) still load, and a corrupt encoder file of theirs is
refused by the encoder loader with a :class:`ModelFormatError` naming the file. Uses the bundled
model with a stand-in encoder folder (a real tokenizer, the manifest's spec, placeholder ONNX
bytes): every refusal happens before an ONNX graph is read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from suggest.encoder import load_encoder
from suggest.encoder.spec import load_tokenizer
from suggest.errors import ModelFormatError
from suggest.model import load_model, save_model
from suggest.registry import CURRENT_FILE, ModelRegistry

pytestmark = pytest.mark.unit

ENCODER_NAMES = ("encoder/encoder.json", "encoder/model.onnx", "encoder/tokenizer.json")


@pytest.fixture(scope="module")
def saved(bundled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model saved by this release, with an encoder folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    encoder_dir = tmp_path_factory.mktemp("encoder")
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "donate": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    tokenizer.save(str(encoder_dir / "tokenizer.json"))
    spec = json.loads((bundled / "manifest.json").read_text())["encoder"]
    (encoder_dir / "encoder.json").write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    (encoder_dir / "model.onnx").write_bytes(b"placeholder graph")
    target = tmp_path_factory.mktemp("saved") / "model"
    save_model(load_model(bundled), target, encoder_dir)
    return target


def _install(model: Path, root: Path, version: str, *, before_digests: bool = False) -> Path:
    """A copy of ``model`` in registry ``root``; ``before_digests``: as saved before this
    release (the manifest's encoder entries removed, nothing else changed)."""
    target = root / "acme" / version
    shutil.copytree(model, target)
    if before_digests:
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["files"] = {
            k: v for k, v in manifest["files"].items() if not k.startswith("encoder/")
        }
        (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_a_saved_model_records_its_encoder_files_and_loads(saved: Path) -> None:
    files = json.loads((saved / "manifest.json").read_text())["files"]
    assert set(ENCODER_NAMES) <= set(files)
    assert load_model(saved).specs.n_actions > 0


def test_a_truncated_or_altered_encoder_file_is_refused_by_load_promote_and_list(
    saved: Path, tmp_path: Path
) -> None:
    good = _install(saved, tmp_path, "20260101T000000Z")
    truncated = _install(saved, tmp_path, "20260201T000000Z")
    tokenizer = truncated / "encoder" / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:40])
    altered = _install(saved, tmp_path, "20260301T000000Z")
    spec = json.loads((altered / "encoder" / "encoder.json").read_text())
    spec["max_tokens"] = 512  # still a valid spec: only the digest tells
    (altered / "encoder" / "encoder.json").write_text(json.dumps(spec))
    missing = _install(saved, tmp_path, "20260401T000000Z")
    (missing / "encoder" / "tokenizer.json").unlink()

    assert load_model(good).specs.n_actions > 0
    expected = {
        truncated: r"encoder/tokenizer\.json does not match its manifest digest",
        altered: r"encoder/encoder\.json does not match its manifest digest",
        missing: r"encoder/tokenizer\.json is missing",
    }
    for model, message in expected.items():
        with pytest.raises(ModelFormatError, match=message):
            load_model(model)
        with pytest.raises(ModelFormatError, match=message):
            ModelRegistry(tmp_path).promote("acme", model.name)
    assert not (tmp_path / "acme" / CURRENT_FILE).exists()
    problems = {e.version: e.problem for e in ModelRegistry(tmp_path).versions("acme")}
    assert problems["20260101T000000Z"] == ""
    assert "tokenizer.json" in problems["20260201T000000Z"]
    assert "encoder.json" in problems["20260301T000000Z"]
    assert "tokenizer.json" in problems["20260401T000000Z"]


def test_a_model_saved_before_encoder_digests_still_loads(
    bundled: Path, saved: Path, tmp_path: Path
) -> None:
    assert load_model(bundled).specs.n_actions > 0  # shipped manifest, no encoder entries
    older = _install(saved, tmp_path, "20260101T000000Z", before_digests=True)
    assert load_model(older).specs.n_actions > 0


def test_a_corrupt_tokenizer_of_an_older_model_is_a_typed_refusal_naming_the_file(
    saved: Path, tmp_path: Path
) -> None:
    older = _install(saved, tmp_path, "20260101T000000Z", before_digests=True)
    tokenizer = older / "encoder" / "tokenizer.json"
    assert load_tokenizer(tokenizer).encode("donate").ids == [1]  # readable before the damage
    tokenizer.write_bytes(tokenizer.read_bytes()[:40])
    load_model(older)  # nothing recorded to check it against: the encoder loader refuses it
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json is not a readable tokenizer"):
        load_encoder(older / "encoder")
    with pytest.raises(ModelFormatError, match=r"tokenizer\.json.*restore the model's encoder/"):
        ModelRegistry(tmp_path).promote("acme", older.name)
    (older / "encoder" / "encoder.json").write_bytes(b"\xff{not json")
    with pytest.raises(ModelFormatError, match=r"encoder\.json is not an encoder spec"):
        load_encoder(older / "encoder")
