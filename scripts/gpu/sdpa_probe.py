"""First-use cost of a new attention shape per SDPA backend (CUDA; a second or so).

The live run on the H200 paid 55-100 ms for each tensor shape the decoder had not seen before
and 2-3 ms afterwards. torch 2.9+ built for CUDA 13 puts cuDNN attention first on sm90 when
cuDNN > 9.15, and cuDNN builds (NVRTC-compiles) a graph per shape, cached per thread. This
times one decode-step-like attention call (fp16, 6 heads of 64, boolean key mask) on a new shape,
the same shape again, and another new shape, with each backend forced, and reports which backend
torch picks by default, so the device run records the cause next to the benchmark.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

_BACKENDS = ("CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "FLASH_ATTENTION")


def _inputs(rows: int, keys: int, masked: bool) -> tuple[torch.Tensor, ...]:
    q = torch.randn(rows, 6, 1, 64, device="cuda", dtype=torch.float16)
    k = torch.randn(rows, 6, keys, 64, device="cuda", dtype=torch.float16)
    v = torch.randn_like(k)
    mask = torch.ones(rows, 1, 1, keys, dtype=torch.bool, device="cuda") if masked else None
    return q, k, v, mask


def probe() -> dict[str, Any]:
    """Milliseconds of (new shape, same shape, new shape) per backend, and the default pick."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out: dict[str, Any] = {"cudnn": torch.backends.cudnn.version()}
    try:  # private API: which backend torch would pick for a masked decode step
        choice = torch._fused_sdp_choice(*_inputs(2, 96, masked=True))
        out["default_masked"] = SDPBackend(choice).name
        choice = torch._fused_sdp_choice(*_inputs(2, 96, masked=False))
        out["default_unmasked"] = SDPBackend(choice).name
    except Exception as exc:  # a diagnostic only
        out["default"] = f"unknown ({type(exc).__name__})"
    for offset, name in enumerate(_BACKENDS):
        masked = name != "FLASH_ATTENTION"  # flash takes no mask
        new, other = (3 + offset, 117 + offset), (5 + offset, 203 + offset)  # unseen shapes
        times = []
        try:
            for rows, keys in (new, new, other):
                q, k, v, mask = _inputs(rows, keys, masked)
                torch.cuda.synchronize()
                began = time.perf_counter()
                with sdpa_kernel([getattr(SDPBackend, name)]):
                    F.scaled_dot_product_attention(q, k, v, mask)
                torch.cuda.synchronize()
                times.append(round(1000 * (time.perf_counter() - began), 2))
            out[name.lower()] = times
        except Exception as exc:  # a backend that cannot run this case
            out[name.lower()] = f"{type(exc).__name__}: {str(exc)[:80]}"
    return out
