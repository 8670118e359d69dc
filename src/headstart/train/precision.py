"""Mixed precision for training: bf16 autocast where the hardware computes bf16 natively, else fp32.

Weights, optimizer state, evaluation and prediction stay fp32; only the training forward pass runs
under ``torch.autocast`` (PyTorch's own mixed precision; the same switch as Accelerate's and
Lightning's ``bf16-mixed``). bf16 keeps fp32's exponent range, so no loss scaling is needed.
On CPUs with AVX512-BF16 or AMX it trains MiniLM about 1.5x faster at equal accuracy (BENCHMARKS.md);
on CPUs without them autocast emulates bf16 and is *slower*, so ``"auto"`` leaves those at fp32.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import HeadstartError
from .config import PRECISIONS

__all__ = ["autocast", "native_bf16", "resolve_precision"]


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` computes bf16 matrix products in hardware."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own probes (>= 2.1)
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training on ``device``, or None for plain fp32."""
    if precision not in PRECISIONS:
        raise HeadstartError(f"precision must be one of {', '.join(PRECISIONS)}. Got {precision!r}.")
    if precision == "fp32" or (precision == "auto" and not native_bf16(device)):
        return None
    if device.type not in ("cpu", "cuda"):
        raise HeadstartError(f"precision='bf16' is supported on CPU and CUDA, not {device.type!r}; use 'fp32'.")
    return torch.bfloat16


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``; a no-op for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
