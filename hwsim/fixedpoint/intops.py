"""Exact integer matmul / conv / linear on integer-valued torch tensors.

Why: the emulator must be bit-exact *and* fast, and an int64 CPU matmul is ~200x slower than a
float32 one. A float32 dot product of integers is exact as long as every partial sum stays within
2^24 in magnitude (float64: 2^53), whatever order the BLAS library sums in. So we bound every
partial sum by K·max|a|·max|b|, split the reduction dimension K into chunks that keep each chunk in
the float32-exact regime, and add the chunk results exactly (float64 while the total bound is
≤ 2^53, int64 beyond). Operands whose single products exceed 2^53 are split into integer limbs.
int8 x int8 with K ≤ 1024 is a single float32 GEMM.

Results are int64 and exact whenever the true result fits in int64 (beyond that they wrap modulo
2^64, like an int64 matmul). Inputs on the ``meta`` device give ``meta`` results (shapes-only mode).
Requirements: the operands hold integer values (any dtype; float operands are checked). While a
kernel runs, float32 matmul precision is forced to "highest" and TF32 is disabled on CUDA, so the
GEMMs cannot silently use bf16/TF32 (the previous settings are restored afterwards).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from hwsim.errors import HwsimError

_F32_EXACT = 2 ** 24
_F64_EXACT = 2 ** 53
#: Below this many K-elements per float32 chunk, one float64 GEMM is cheaper than many small ones.
_MIN_F32_CHUNK = 128
#: Smallest useful float64 chunk before we split operands into limbs instead.
_MIN_F64_CHUNK = 16

#: Cheap magnitude bounds from the dtype alone (no scan needed).
_DTYPE_ABSMAX = {torch.int8: 128, torch.uint8: 255, torch.bool: 1}

IntPair = int | Sequence[int]


def _absmax(t: torch.Tensor) -> int:
    """Upper bound on max|t| (exact for wide dtypes, the dtype bound for int8/uint8/bool)."""
    bound = _DTYPE_ABSMAX.get(t.dtype)
    if bound is not None:
        return bound
    if t.numel() == 0:
        return 0
    lo, hi = torch.aminmax(t)
    if t.is_floating_point():
        lo_f, hi_f = float(lo), float(hi)
        if not (abs(lo_f) < float("inf") and abs(hi_f) < float("inf")):
            raise HwsimError(f"integer kernel got a non-finite operand (range {lo_f}..{hi_f}); "
                             "quantize the tensor to integer codes first")
        if not torch.equal(t, torch.trunc(t)):
            raise HwsimError("integer kernel got a non-integer float operand; pass integer codes "
                             "(quantize first), not real values")
        return int(max(-lo_f, hi_f))
    return max(-int(lo), int(hi))


@contextlib.contextmanager
def _exact_float_mode(device: torch.device) -> Iterator[None]:
    """Force full-precision float GEMM/conv (no bf16 on CPU, no TF32 on CUDA) while inside."""
    prec = torch.get_float32_matmul_precision()
    cuda = device.type == "cuda"
    tf32_mm = torch.backends.cuda.matmul.allow_tf32 if cuda else False
    tf32_cudnn = torch.backends.cudnn.allow_tf32 if cuda else False
    try:
        if prec != "highest":
            torch.set_float32_matmul_precision("highest")
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        yield
    finally:
        if prec != "highest":
            torch.set_float32_matmul_precision(prec)
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = tf32_mm
            torch.backends.cudnn.allow_tf32 = tf32_cudnn


#: torch runs elementwise kernels on ≤ this many elements inline (no parallel region).
_INLINE_ELEMS = 32768


def _convert(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype)`` in inline-sized pieces on CPU.

    Why: a dtype conversion is ~1 % of a GEMM's work, but as a parallel region it pays a thread
    barrier; on a busy machine (threads descheduled) that barrier cost as much as half the GEMM.
    Converting in pieces below torch's parallel grain size keeps it on the calling thread.
    """
    n = t.numel()
    if n <= _INLINE_ELEMS or t.device.type != "cpu" or t.dtype == dtype:
        return t.to(dtype)
    if t.dim() == 2 and not t.is_contiguous() and t.t().is_contiguous():
        return _convert(t.t(), dtype).t()  # transposed weights: convert the stored layout
    if not t.is_contiguous():
        return t.to(dtype)
    out = torch.empty(t.shape, dtype=dtype)
    src, dst = t.reshape(-1), out.view(-1)
    for i in range(0, n, _INLINE_ELEMS):
        dst[i:i + _INLINE_ELEMS].copy_(src[i:i + _INLINE_ELEMS])
    return out


def _is_meta(*ts: torch.Tensor) -> bool:
    return any(t.device.type == "meta" for t in ts)


def _meta_like(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=torch.float32, device="meta")


# ---- matmul -------------------------------------------------------------------------------
def _narrow_k(a: torch.Tensor, b: torch.Tensor, k0: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return a.narrow(-1, k0, n), b.narrow(-2 if b.dim() >= 2 else 0, k0, n)


def _chunked_matmul(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, chunk: int,
                    total_bound: int) -> torch.Tensor:
    """Σ over K-chunks of exact float GEMMs; sums in float64 while exact, else int64."""
    k = a.shape[-1]
    af, bf = _convert(a, dtype), _convert(b, dtype)
    if chunk >= k:
        return _convert(torch.matmul(af, bf), torch.int64)
    acc_type = torch.float64 if total_bound <= _F64_EXACT else torch.int64
    acc: torch.Tensor | None = None
    for k0 in range(0, k, chunk):
        ac, bc = _narrow_k(af, bf, k0, min(chunk, k - k0))
        part = _convert(torch.matmul(ac, bc), acc_type)
        acc = part if acc is None else acc.add_(part)
    assert acc is not None
    return _convert(acc, torch.int64)


def _split_limbs(t: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """t = hi·2^bits + lo with 0 ≤ lo < 2^bits (exact, int64)."""
    t64 = t.to(torch.int64)
    lo = torch.bitwise_and(t64, (1 << bits) - 1)
    hi = torch.bitwise_right_shift(t64, bits)
    return hi, lo


def _matmul_exact(a: torch.Tensor, b: torch.Tensor, ma: int, mb: int) -> torch.Tensor:
    k = a.shape[-1]
    p = ma * mb
    if p * k <= _F32_EXACT:
        return _chunked_matmul(a, b, torch.float32, k, p * k)
    if p <= _F32_EXACT and _F32_EXACT // p >= _MIN_F32_CHUNK:
        return _chunked_matmul(a, b, torch.float32, _F32_EXACT // p, p * k)
    if p <= _F64_EXACT and _F64_EXACT // p >= min(k, _MIN_F64_CHUNK):
        return _chunked_matmul(a, b, torch.float64, _F64_EXACT // p, p * k)
    # Products too wide even for float64 chunks: split the wider operand into two limbs.
    if ma >= mb:
        bits = max(1, (ma.bit_length() + 1) // 2)
        hi, lo = _split_limbs(a, bits)
        out = _matmul_exact(hi, b, _absmax(hi), mb)
        return torch.bitwise_left_shift(out, bits).add_(_matmul_exact(lo, b, (1 << bits) - 1, mb))
    bits = max(1, (mb.bit_length() + 1) // 2)
    hi, lo = _split_limbs(b, bits)
    out = _matmul_exact(a, hi, ma, _absmax(hi))
    return torch.bitwise_left_shift(out, bits).add_(_matmul_exact(a, lo, ma, (1 << bits) - 1))


def int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact ``a @ b`` (torch.matmul broadcasting) for integer-valued tensors; returns int64."""
    if _is_meta(a, b):
        return torch.matmul(_meta_like(a), _meta_like(b)).to(torch.int64)
    ma, mb = _absmax(a), _absmax(b)
    if ma == 0 or mb == 0 or a.shape[-1] == 0:
        shape = torch.matmul(_meta_like(a), _meta_like(b)).shape
        return torch.zeros(shape, dtype=torch.int64, device=a.device)
    if a.device.type == "cpu" and torch.get_float32_matmul_precision() == "highest":
        return _matmul_exact(a, b, ma, mb)  # fast path: nothing to switch
    with _exact_float_mode(a.device):
        return _matmul_exact(a, b, ma, mb)


def int_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Exact ``x @ w.T + bias`` (w: [out, in], like torch.nn.functional.linear); returns int64."""
    y = int_matmul(x, w.transpose(-1, -2))
    if bias is not None:
        if y.device.type == "meta" or bias.device.type == "meta":
            return y
        y = y + bias.to(torch.int64)
    return y


# ---- conv2d -------------------------------------------------------------------------------
def _pair(v: IntPair) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(i) for i in v)
    return (t[0], t[1]) if len(t) == 2 else (t[0], t[0])


def _channel_slice(x: torch.Tensor, w: torch.Tensor, groups: int, c0: int,
                   n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input channels [c0, c0+n) of every group, for x (NCHW) and w (O, C/groups, kh, kw)."""
    if groups == 1:
        return x[:, c0:c0 + n], w[:, c0:c0 + n]
    nb, c, h, wd = x.shape
    cg = c // groups
    xs = x.reshape(nb, groups, cg, h, wd)[:, :, c0:c0 + n].reshape(nb, groups * n, h, wd)
    return xs, w[:, c0:c0 + n]


def _conv_chunked(x: torch.Tensor, w: torch.Tensor, groups: int, kw: dict, dtype: torch.dtype,
                  chunk: int, total_bound: int) -> torch.Tensor:
    """Σ over input-channel chunks of exact float convs; sums in float64 while exact, else int64."""
    cg = w.shape[1]
    xf, wf = _convert(x, dtype), _convert(w, dtype)
    if chunk >= cg:
        return _convert(F.conv2d(xf, wf, **kw), torch.int64)
    acc_type = torch.float64 if total_bound <= _F64_EXACT else torch.int64
    acc: torch.Tensor | None = None
    for c0 in range(0, cg, chunk):
        xs, ws = _channel_slice(xf, wf, groups, c0, min(chunk, cg - c0))
        part = _convert(F.conv2d(xs, ws, **kw), acc_type)
        acc = part if acc is None else acc.add_(part)
    assert acc is not None
    return _convert(acc, torch.int64)


def _conv_exact(x: torch.Tensor, w: torch.Tensor, mx: int, mw: int, groups: int,
                kw: dict) -> torch.Tensor:
    cg, taps = w.shape[1], w.shape[2] * w.shape[3]
    p = mx * mw
    if p * cg * taps <= _F32_EXACT:
        return _conv_chunked(x, w, groups, kw, torch.float32, cg, p * cg * taps)
    if p * taps <= _F32_EXACT and _F32_EXACT // (p * taps) * taps >= _MIN_F32_CHUNK:
        return _conv_chunked(x, w, groups, kw, torch.float32, _F32_EXACT // (p * taps),
                             p * cg * taps)
    if p * taps <= _F64_EXACT and _F64_EXACT // (p * taps) >= min(cg, _MIN_F64_CHUNK):
        return _conv_chunked(x, w, groups, kw, torch.float64, _F64_EXACT // (p * taps),
                             p * cg * taps)
    # Too wide for float64: split the wider operand into two integer limbs (zero padding
    # stays zero in both limbs, so the split commutes with the convolution).
    if mx >= mw:
        bits = max(1, (mx.bit_length() + 1) // 2)
        hi, lo = _split_limbs(x, bits)
        out = _conv_exact(hi, w, max(_absmax(hi), 1), mw, groups, kw)
        return torch.bitwise_left_shift(out, bits).add_(
            _conv_exact(lo, w, (1 << bits) - 1, mw, groups, kw))
    bits = max(1, (mw.bit_length() + 1) // 2)
    hi, lo = _split_limbs(w, bits)
    out = _conv_exact(x, hi, mx, max(_absmax(hi), 1), groups, kw)
    return torch.bitwise_left_shift(out, bits).add_(
        _conv_exact(x, lo, mx, (1 << bits) - 1, groups, kw))


def _conv_via_gemm(x: torch.Tensor, w: torch.Tensor, groups: int, kw: dict) -> torch.Tensor:
    """im2col + exact GEMM. Used off-CPU, where cuDNN may pick inexact FFT/Winograd algorithms."""
    (sh, sw), (dh, dw) = kw["stride"], kw["dilation"]
    o, cg, kh, kwid = w.shape
    pad = kw["padding"]
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        else:  # "same" (stride 1): total padding d·(k−1), the extra one at the end
            th, tw = dh * (kh - 1), dw * (kwid - 1)
            x = F.pad(x, (tw // 2, tw - tw // 2, th // 2, th - th // 2))
            pad = (0, 0)
    n, c, h, wd = x.shape
    cols = F.unfold(x.to(torch.float64) if x.is_floating_point() else x.to(torch.int64).to(
        torch.float64), (kh, kwid), dilation=(dh, dw), padding=pad, stride=(sh, sw))
    oh = (h + 2 * pad[0] - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pad[1] - dw * (kwid - 1) - 1) // sw + 1
    cols = cols.reshape(n, groups, cg * kh * kwid, oh * ow)
    wm = w.reshape(groups, o // groups, cg * kh * kwid)
    y = int_matmul(wm, cols)  # (n, groups, o/groups, L)
    return y.reshape(n, o, oh, ow)


def int_conv2d(x: torch.Tensor, w: torch.Tensor, *, stride: IntPair = (1, 1),
               padding: IntPair | str = (0, 0), dilation: IntPair = (1, 1),
               groups: int = 1, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Exact NCHW x OIHW conv2d with zero padding for integer-valued tensors; returns int64.

    Zero padding equals TFLite's "skip padded taps" once the input offset has been applied to x.
    """
    pad = padding if isinstance(padding, str) else _pair(padding)
    kw = dict(stride=_pair(stride), padding=pad, dilation=_pair(dilation), groups=groups)
    if _is_meta(x, w):
        return F.conv2d(_meta_like(x), _meta_like(w), **kw).to(torch.int64)
    mx, mw = _absmax(x), _absmax(w)
    if mx == 0 or mw == 0 or w.shape[1] * w.shape[2] * w.shape[3] == 0:
        y = torch.zeros(F.conv2d(_meta_like(x), _meta_like(w), **kw).shape, dtype=torch.int64,
                        device=x.device)
    elif x.device.type != "cpu":
        y = _conv_via_gemm(x, w, groups, kw)
    else:
        with _exact_float_mode(x.device):
            y = _conv_exact(x, w, mx, mw, groups, kw)
    if bias is not None:
        y = y + bias.to(torch.int64).reshape(1, -1, 1, 1)
    return y
