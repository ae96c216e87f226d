"""Exact integer matmul / conv on integer-valued tensors.

Why: the emulator must be bit-exact *and* fast. float32 products are exact while
K·max|a|·max|b| ≤ 2^24, float64 while ≤ 2^53; beyond that we fall back to int64 arithmetic.
(Placeholder implementation by the integrator; the fixed-point helper owns and optimises it.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_F32_EXACT = 2 ** 24
_F64_EXACT = 2 ** 53


def _absmax(t: torch.Tensor) -> int:
    if t.numel() == 0 or t.device.type == "meta":
        return 0
    return int(t.abs().max().item())


def int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact a @ b for integer-valued tensors (any dtype); returns int64."""
    k = a.shape[-1]
    bound = k * _absmax(a) * _absmax(b)
    if bound <= _F32_EXACT:
        return torch.matmul(a.to(torch.float32), b.to(torch.float32)).to(torch.int64)
    if bound <= _F64_EXACT:
        return torch.matmul(a.to(torch.float64), b.to(torch.float64)).to(torch.int64)
    return torch.matmul(a.to(torch.int64), b.to(torch.int64))


def int_conv2d(x: torch.Tensor, w: torch.Tensor, *, stride=(1, 1), padding=(0, 0),
               dilation=(1, 1), groups: int = 1) -> torch.Tensor:
    """Exact NCHW conv2d of integer-valued tensors (zero padding); returns int64."""
    k = w.shape[1] * w.shape[2] * w.shape[3]
    bound = k * _absmax(x) * _absmax(w)
    if bound > _F64_EXACT:
        raise OverflowError(f"int_conv2d operands too large for an exact float64 path (bound {bound})")
    dtype = torch.float32 if bound <= _F32_EXACT else torch.float64
    y = F.conv2d(x.to(dtype), w.to(dtype), stride=stride, padding=padding, dilation=dilation,
                 groups=groups)
    return y.to(torch.int64)
