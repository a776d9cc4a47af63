"""Whisper in plain torch: log-mel features, encoder, and a decoder with a preallocated KV cache.

Written for batched decoding across streams (:mod:`asr.torch_backend`): every decoder call takes
a whole batch, each row with its own (left-padded) prompt, and the self-attention cache is one
preallocated tensor per layer that rows can be dropped from (:meth:`KVCache.select`) when their
text has ended. Parameter names are those of Hugging Face's ``WhisperForConditionalGeneration``
without the ``model.`` prefix, so :func:`asr.ct2_convert.hf_state_dict` loads as is; the output
projection is tied to the token embeddings. Only torch is needed (no transformers), so the same
code runs on the CUDA machine (float16) and in the CPU tests (float32).

The log-mel front end reproduces faster-whisper's ``FeatureExtractor`` (``padding=160``, Slaney
mel filters, log10, clamp at max - 8, ``(x + 4) / 4``) on whole batches, and pads each request's
features to the 30 s window with zeros, as faster-whisper's ``pad_or_trim`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asr.ct2_convert import WhisperDims, WhisperWeights

__all__ = ["N_FRAMES", "SAMPLE_RATE", "KVCache", "WhisperTorch", "log_mel_batch", "mel_filters"]

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_FRAMES = 3000
"""Mel frames of one 30 s window (the encoder's fixed input)."""


# --- features ---------------------------------------------------------------------------------


def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Slaney mel filters (librosa's ``mel(htk=False, norm='slaney')``), (n_mels, bins)."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mels = np.linspace(0.0, 45.245640471924965, n_mels + 2)  # mel(0 Hz) .. mel(8 kHz)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_mel = 1000.0 / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = 1000.0 * np.exp(logstep * (mels[log_t] - min_log_mel))
    fdiff = np.diff(freqs)
    ramps = freqs.reshape(-1, 1) - fftfreqs.reshape(1, -1)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]))[:, None]
    return weights.astype(np.float32)


def log_mel_batch(
    audios: list[np.ndarray], filters: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, list[int]]:
    """Log-mel features of each 16 kHz clip (at most 30 s), padded to one window.

    The clips travel to the device as one flat array in which each clip (with faster-whisper's
    160 trailing zeros and the STFT's reflected edges) starts on a hop boundary, so one
    ``unfold`` frames them all and no row is padded to the longest clip.

    Returns:
        ``(features, frames)``: float32 (B, n_mels, 3000) and each clip's own frame count.
    """
    half = N_FFT // 2
    padded = [len(a) + HOP + 2 * half for a in audios]
    starts = np.cumsum([0] + [-(-n // HOP) * HOP for n in padded])
    flat = np.zeros(int(starts[-1]) + N_FFT, dtype=np.float32)
    for audio, start in zip(audios, starts[:-1], strict=False):
        clip = np.pad(np.asarray(audio, dtype=np.float32), (0, HOP))
        flat[start : start + len(clip) + 2 * half] = np.pad(clip, half, mode="reflect")
    frames = [len(a) // HOP + 1 for a in audios]  # each clip's STFT frames minus the last
    first = torch.from_numpy(starts[:-1] // HOP)
    counts = torch.tensor(frames)
    row = torch.repeat_interleave(torch.arange(len(audios)), counts)
    column = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        counts.cumsum(0) - counts, counts
    )
    windows = (
        torch.from_numpy(flat).to(device).unfold(0, N_FFT, HOP)[(first[row] + column).to(device)]
    )
    spectrum = torch.fft.rfft(
        windows * torch.hann_window(N_FFT, periodic=True, device=device), dim=-1
    )
    power = spectrum.real.square() + spectrum.imag.square()  # (all frames, bins)
    log_spec = torch.log10(torch.clamp(torch.matmul(power, filters.T), min=1e-10))
    row, column = row.to(device), column.to(device)
    top = torch.full((len(audios),), -torch.inf, device=device).scatter_reduce(
        0, row, log_spec.amax(dim=1), reduce="amax"
    )
    log_spec = (torch.maximum(log_spec, top[row, None] - 8.0) + 4.0) / 4.0
    out = torch.zeros((len(audios), N_FRAMES, filters.shape[0]), dtype=torch.float32, device=device)
    keep = column < N_FRAMES
    out[row[keep], column[keep]] = log_spec[keep]
    return out.transpose(1, 2), [min(f, N_FRAMES) for f in frames]


# --- model ------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention with Whisper's projections (no key bias)."""

    def __init__(self, state: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(state, state)
        self.k_proj = nn.Linear(state, state, bias=False)
        self.v_proj = nn.Linear(state, state)
        self.out_proj = nn.Linear(state, state)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, state) -> (B, heads, T, head_dim)."""
        b, t, _ = x.shape
        return x.view(b, t, self.heads, -1).transpose(1, 2)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, T, head_dim) -> projected (B, T, state)."""
        b, _, t, _ = x.shape
        return self.out_proj(x.transpose(1, 2).reshape(b, t, -1))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + GELU MLP."""

    def __init__(self, state: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = Attention(state, heads)
        self.self_attn_layer_norm = nn.LayerNorm(state)
        self.fc1 = nn.Linear(state, ffn)
        self.fc2 = nn.Linear(ffn, state)
        self.final_layer_norm = nn.LayerNorm(state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One encoder block."""
        attn = self.self_attn
        h = self.self_attn_layer_norm(x)
        q, k, v = attn.split(attn.q_proj(h)), attn.split(attn.k_proj(h)), attn.split(attn.v_proj(h))
        x = x + attn.merge(F.scaled_dot_product_attention(q, k, v))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class AudioEncoder(nn.Module):
    """Two convolutions, sinusoidal positions, pre-norm blocks."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        state = dims.n_audio_state
        self.conv1 = nn.Conv1d(dims.n_mels, state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(state, state, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(dims.n_audio_ctx, state)
        self.layers = nn.ModuleList(
            EncoderLayer(state, dims.n_audio_head, dims.n_ffn) for _ in range(dims.n_audio_layer)
        )
        self.layer_norm = nn.LayerNorm(state)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, 3000) -> (B, 1500, state)."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.embed_positions.weight[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


@dataclass
class KVCache:
    """Self-attention keys and values of every decoder layer, (layers, B, heads, length, dim);
    zeros where nothing was written."""

    keys: torch.Tensor
    values: torch.Tensor

    @classmethod
    def empty(cls, dims: WhisperDims, batch: int, length: int, like: torch.Tensor) -> KVCache:
        """A cache for ``batch`` rows of up to ``length`` tokens, dtype/device of ``like``."""
        head_dim = dims.n_text_state // dims.n_text_head
        shape = (dims.n_text_layer, batch, dims.n_text_head, length, head_dim)
        return cls(like.new_zeros(shape), like.new_zeros(shape))

    def select(self, rows: torch.Tensor) -> KVCache:
        """Only ``rows`` of the batch, every position copied: attention reads the whole cache
        (masked), so positions not written yet must stay zeros, never uninitialised memory (a
        NaN there would reach the output through a zero attention weight)."""
        return KVCache(self.keys.index_select(1, rows), self.values.index_select(1, rows))


CrossKV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per decoder layer: encoder keys and values, (B, heads, 1500, head_dim)."""


class DecoderLayer(nn.Module):
    """Pre-norm self-attention (cached), cross-attention, GELU MLP."""

    def __init__(self, state: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = Attention(state, heads)
        self.self_attn_layer_norm = nn.LayerNorm(state)
        self.encoder_attn = Attention(state, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(state)
        self.fc1 = nn.Linear(state, ffn)
        self.fc2 = nn.Linear(ffn, state)
        self.final_layer_norm = nn.LayerNorm(state)

    def forward(
        self,
        x: torch.Tensor,
        cache_k: torch.Tensor,
        cache_v: torch.Tensor,
        start: int | torch.Tensor,
        mask: torch.Tensor,
        cross: tuple[torch.Tensor, torch.Tensor],
        heads: list[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens at cache positions ``[start, start + T)``; ``mask`` (B, 1, T, length) says which
        of the cache's positions each query may see. With ``heads``, also the scaled
        cross-attention logits of those heads, (B, len(heads), T, frames).

        Attention reads the whole preallocated cache, not ``cache[:, :, :start + T]``: a slice
        is a new shape at every decode step, and on the H200 each new shape cost 55-100 ms the
        first time (cuDNN attention builds a graph per shape; docs/results/gpu.md).

        ``start`` may be a (1,) tensor for a one-token step: the write position is then read on
        the device, so a CUDA graph captured once serves every step (:mod:`asr.torch_graphs`)."""
        attn = self.self_attn
        h = self.self_attn_layer_norm(x)
        keys, values = attn.split(attn.k_proj(h)), attn.split(attn.v_proj(h))
        if isinstance(start, torch.Tensor):
            cache_k.index_copy_(2, start, keys)
            cache_v.index_copy_(2, start, values)
        else:
            cache_k[:, :, start : start + x.shape[1]] = keys
            cache_v[:, :, start : start + x.shape[1]] = values
        q = attn.split(attn.q_proj(h))
        out = F.scaled_dot_product_attention(q, cache_k, cache_v, mask)
        x = x + attn.merge(out)
        cross_attn = self.encoder_attn
        q = cross_attn.split(cross_attn.q_proj(self.encoder_attn_layer_norm(x)))
        x = x + cross_attn.merge(F.scaled_dot_product_attention(q, *cross))
        logits = None
        if heads:
            scale = q.shape[-1] ** -0.5
            logits = torch.matmul(
                q[:, heads].float() * scale, cross[0][:, heads].float().transpose(2, 3)
            )
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x)))), logits


class TextDecoder(nn.Module):
    """Token and position embeddings, decoder blocks, tied output projection."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.dims = dims
        state = dims.n_text_state
        self.embed_tokens = nn.Embedding(dims.n_vocab, state)
        self.embed_positions = nn.Embedding(dims.n_text_ctx, state)
        self.layers = nn.ModuleList(
            DecoderLayer(state, dims.n_text_head, dims.n_ffn) for _ in range(dims.n_text_layer)
        )
        self.layer_norm = nn.LayerNorm(state)

    def cross_kv(self, encoded: torch.Tensor) -> CrossKV:
        """Keys and values of the encoder output for every layer (computed once per batch)."""
        out = []
        for layer in self.layers:
            attn = cast(DecoderLayer, layer).encoder_attn
            out.append((attn.split(attn.k_proj(encoded)), attn.split(attn.v_proj(encoded))))
        return out

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        start: int | torch.Tensor,
        mask: torch.Tensor,
        cross: CrossKV,
        align_heads: dict[int, list[int]] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hidden states (B, T, state) after the final norm for ``tokens`` (B, T) at cache
        positions ``[start, start + T)``, and the alignment heads' cross-attention logits."""
        x = self.embed_tokens(tokens) + self.embed_positions(positions)
        collected = []
        for index, layer in enumerate(self.layers):
            heads = (align_heads or {}).get(index)
            x, logits = layer(
                x, cache.keys[index], cache.values[index], start, mask, cross[index], heads
            )
            if logits is not None:
                collected.append(logits)
        return self.layer_norm(x), collected

    def step(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: KVCache,
        start: int | torch.Tensor,
        mask: torch.Tensor,
        cross: CrossKV,
    ) -> torch.Tensor:
        """Next-token logits (B, vocabulary) of one token per row (``tokens`` (B, 1)) written at
        cache position ``start``: the decode loops' step (greedy, beam, CUDA graph)."""
        hidden, _ = self(tokens, positions, cache, start, mask, cross)
        return self.logits(hidden[:, 0])

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (float32) of hidden states."""
        return torch.matmul(hidden, self.embed_tokens.weight.T).float()


class WhisperTorch(nn.Module):
    """The whole model; ``from_weights`` loads converted CTranslate2 weights."""

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.decoder = TextDecoder(dims)

    @classmethod
    def from_weights(
        cls, weights: WhisperWeights, device: str | torch.device, dtype: torch.dtype
    ) -> WhisperTorch:
        """Build, load (strictly) and move to ``device``/``dtype``, in eval mode."""
        model = cls(weights.dims)
        state = {
            name.removeprefix("model."): torch.from_numpy(np.ascontiguousarray(value))
            for name, value in weights.state.items()
        }
        model.load_state_dict(state, strict=True)
        return model.to(device=device, dtype=dtype).eval()
