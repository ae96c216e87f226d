"""Quantized number formats (QFormat) and integer tensors that carry one (QTensor).

Why: every workload (TFLite int8/int16, BMPQ symmetric b-bit and ternary weights, ZOQO grid codes)
must say exactly which integers a tensor holds and how they map to reals, so the emulator computes
on the codes and the trace prices the right width. Two real-value mappings are supported:

- affine (TFLite, BMPQ): ``r = scale · (q − zero_point)`` with an integer zero point;
- offset (ZOQO grid codes): ``r = offset + scale · q``; the equivalent zero point
  ``−offset/scale`` is non-integer in general, so it is kept in this float form.

Scales/zero points/offsets are per tensor or per channel along ``axis``. Quantization divides by the
scale in the input's float precision (float32 in, float32 math — like torch training code and
TFLite's float quantize), then rounds with an explicit mode (default half away from zero).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from hwsim.errors import HwsimError
from hwsim.fixedpoint.rounding import Seed, int_range, round_float

Number = float | int
PerChannel = Number | Sequence[Number]


def _tup(v):
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().reshape(-1).tolist()
        return tuple(v) if len(v) != 1 else v[0]
    if isinstance(v, (list, tuple)):
        return tuple(v) if len(v) != 1 else v[0]
    return v


@dataclass(frozen=True)
class QFormat:
    """An integer format: width, signedness, real-value mapping, optional per-channel axis."""

    bits: int
    signed: bool = True
    scale: PerChannel = 1.0
    zero_point: PerChannel = 0
    offset: PerChannel | None = None  # r = offset + scale·q (zero_point must stay 0)
    axis: int | None = None
    narrow: bool = False  # signed only: drop the most negative code (symmetric ±(2^(b−1)−1))
    container: int | None = None  # storage unit in bits; default smallest of 8/16/32 ≥ bits

    def __post_init__(self) -> None:
        for name in ("scale", "zero_point", "offset"):
            object.__setattr__(self, name, _tup(getattr(self, name)))
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 32:
            raise HwsimError(f"QFormat.bits must be an integer in 2..32, got {self.bits!r}")
        if self.narrow and not self.signed:
            raise HwsimError("QFormat.narrow applies to signed formats only")
        scales = self.scale if isinstance(self.scale, tuple) else (self.scale,)
        if any(not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0) for s in scales):
            raise HwsimError(f"QFormat.scale must be finite and > 0, got {self.scale!r}")
        zps = self.zero_point if isinstance(self.zero_point, tuple) else (self.zero_point,)
        if any(int(z) != z for z in zps):
            raise HwsimError(f"QFormat.zero_point must be integer, got {self.zero_point!r}; use "
                             "offset= for a real-valued grid origin")
        if self.offset is not None and any(z != 0 for z in zps):
            raise HwsimError("QFormat: give either zero_point or offset, not both")
        lens = {len(v) for v in (self.scale, self.zero_point, self.offset) if isinstance(v, tuple)}
        if len(lens) > 1:
            raise HwsimError(f"QFormat per-channel parameters differ in length: {sorted(lens)}")
        if lens and self.axis is None:
            raise HwsimError("QFormat with per-channel parameters needs axis=")
        if self.container is not None and self.container < self.bits:
            raise HwsimError(f"QFormat.container ({self.container}) < bits ({self.bits})")

    # ---- constructors -----------------------------------------------------------------
    @classmethod
    def symmetric(cls, bits: int, scale: PerChannel, *, axis: int | None = None,
                  narrow: bool = True) -> "QFormat":
        """Signed, zero point 0 (BMPQ weights, TFLite weights/int16 activations)."""
        return cls(bits, True, scale, 0, None, axis, narrow)

    @classmethod
    def asymmetric(cls, bits: int, scale: PerChannel, zero_point: PerChannel, *,
                   signed: bool = True, axis: int | None = None) -> "QFormat":
        return cls(bits, signed, scale, zero_point, None, axis)

    @classmethod
    def grid(cls, bits: int, r_min: PerChannel, r_max: PerChannel, *,
             axis: int | None = None) -> "QFormat":
        """ZOQO uniform grid: codes 0..2^b−1, r = r_min + s·code, s = (r_max−r_min)/(2^b−1)."""
        lo, hi = _tup(r_min), _tup(r_max)
        q = (1 << bits) - 1
        if isinstance(lo, tuple) or isinstance(hi, tuple):
            n = len(lo) if isinstance(lo, tuple) else len(hi)
            los = lo if isinstance(lo, tuple) else (lo,) * n
            his = hi if isinstance(hi, tuple) else (hi,) * n
            return cls(bits, False, tuple((b - a) / q for a, b in zip(los, his)), 0,
                       tuple(float(a) for a in los), axis)
        if not hi > lo:
            raise HwsimError(f"grid range must have r_max > r_min, got [{lo}, {hi}]")
        return cls(bits, False, (hi - lo) / q, 0, float(lo), axis)

    @classmethod
    def ternary(cls, alpha: PerChannel, *, axis: int | None = None) -> "QFormat":
        """TWN ternary weights {−α, 0, α}: 2-bit signed narrow codes {−1, 0, 1}."""
        return cls(2, True, alpha, 0, None, axis, True)

    @classmethod
    def tflite_int8(cls, scale: PerChannel, zero_point: PerChannel = 0, *,
                    axis: int | None = None, weight: bool = False) -> "QFormat":
        """TFLite int8: activations asymmetric (Z ∈ [−128,127]); weights symmetric Z=0, [−127,127]."""
        if weight:
            return cls(8, True, scale, 0, None, axis, True)
        return cls(8, True, scale, zero_point, None, axis)

    @classmethod
    def tflite_int16(cls, scale: PerChannel, *, axis: int | None = None) -> "QFormat":
        """TFLite int16 activations: symmetric, Z = 0."""
        return cls(16, True, scale, 0, None, axis)

    @classmethod
    def int32_bias(cls, scale: PerChannel, *, axis: int | None = None) -> "QFormat":
        return cls(32, True, scale, 0, None, axis)

    # ---- properties -------------------------------------------------------------------
    @property
    def qmin(self) -> int:
        return int_range(self.bits, self.signed, self.narrow)[0]

    @property
    def qmax(self) -> int:
        return int_range(self.bits, self.signed, self.narrow)[1]

    @property
    def container_bits(self) -> int:
        if self.container is not None:
            return self.container
        return next(c for c in (8, 16, 32) if c >= self.bits)

    @property
    def fmt(self) -> str:
        """Format name for trace events: int8, uint4, int2 (ternary), int32..."""
        return f"{'' if self.signed else 'u'}int{self.bits}"

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def channels(self) -> int | None:
        for v in (self.scale, self.zero_point, self.offset):
            if isinstance(v, tuple):
                return len(v)
        return None

    @property
    def torch_dtype(self) -> torch.dtype:
        """Smallest torch integer dtype holding every code."""
        if self.signed:
            return torch.int8 if self.bits <= 8 else torch.int16 if self.bits <= 16 else torch.int32
        return torch.uint8 if self.bits <= 8 else torch.int32 if self.bits <= 16 else torch.int64

    @property
    def real_zero_point(self) -> PerChannel:
        """Zero point as a real number (−offset/scale in offset form; may be non-integer)."""
        if self.offset is None:
            return self.zero_point
        sc = self.scale if isinstance(self.scale, tuple) else None
        off = self.offset if isinstance(self.offset, tuple) else None
        if sc is None and off is None:
            return -self.offset / self.scale
        n = len(sc or off)
        scs = sc or (self.scale,) * n
        offs = off or (self.offset,) * n
        return tuple(-o / s for o, s in zip(offs, scs))

    def param_tensor(self, name: str, ndim: int, dtype: torch.dtype = torch.float64,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """scale / zero_point / offset as a tensor broadcastable against an ndim-D payload."""
        v = getattr(self, name)
        if v is None:
            v = 0
        if not isinstance(v, tuple):
            return torch.tensor(v, dtype=dtype, device=device)
        shape = [1] * ndim
        axis = self.axis % ndim if ndim else 0
        shape[axis] = len(v)
        return torch.tensor(v, dtype=dtype, device=device).reshape(shape)


@dataclass
class QTensor:
    """Integer payload plus its format. The payload may live on ``meta`` (shapes-only mode)."""

    payload: torch.Tensor
    fmt: QFormat

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.payload.shape)

    @property
    def is_meta(self) -> bool:
        return self.payload.device.type == "meta"

    @classmethod
    def meta(cls, shape: Sequence[int], fmt: QFormat) -> "QTensor":
        return cls(torch.empty(tuple(shape), dtype=fmt.torch_dtype, device="meta"), fmt)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return dequantize(self, dtype)

    def tensor_info(self, name: str, kind: str = "activation"):
        from hwsim.trace import TensorInfo

        return TensorInfo(name, self.shape, self.fmt.bits, kind, self.fmt.fmt)

    @property
    def nbytes_container(self) -> int:
        """Bytes when each value occupies its container (targets without sub-byte packing)."""
        return math.prod(self.shape) * self.fmt.container_bits // 8


def quantize(x: torch.Tensor, fmt: QFormat, rounding: str = "half_away", *,
             seed: Seed = None) -> QTensor:
    """Real tensor → QTensor: round(x/scale) + zp (or round((x−offset)/scale)), clamped."""
    if x.device.type == "meta":
        return QTensor(torch.empty(x.shape, dtype=fmt.torch_dtype, device="meta"), fmt)
    xf = x if x.is_floating_point() else x.to(torch.float32)
    if fmt.bits > 24 and xf.dtype != torch.float64:
        xf = xf.to(torch.float64)  # float32 cannot hold every code of a wide format
    nd, dt, dev = xf.ndim, xf.dtype, xf.device
    scale = fmt.param_tensor("scale", nd, dt, dev)
    if fmt.offset is not None:
        v = (xf - fmt.param_tensor("offset", nd, dt, dev)) / scale
        q = round_float(v, rounding, seed=seed)
    else:
        q = round_float(xf / scale, rounding, seed=seed) + fmt.param_tensor("zero_point", nd, dt, dev)
    q = torch.clamp(q, fmt.qmin, fmt.qmax)
    return QTensor(q.to(fmt.torch_dtype), fmt)


def dequantize(qt: QTensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """QTensor → real tensor (computed in float64, returned as ``dtype``)."""
    fmt, q = qt.fmt, qt.payload
    if qt.is_meta:
        return torch.empty(q.shape, dtype=dtype, device="meta")
    nd, dev = q.ndim, q.device
    qd = q.to(torch.float64)
    scale = fmt.param_tensor("scale", nd, torch.float64, dev)
    if fmt.offset is not None:
        r = fmt.param_tensor("offset", nd, torch.float64, dev) + scale * qd
    else:
        r = scale * (qd - fmt.param_tensor("zero_point", nd, torch.float64, dev))
    return r.to(dtype)


# ---- quantizers the training workloads use --------------------------------------------------
def quantize_symmetric(w: torch.Tensor, bits: int, *, axis: int | None = None,
                       rounding: str = "half_away") -> QTensor:
    """BMPQ eq. 3: S = max|W| / (2^(b−1) − 1), codes in ±(2^(b−1) − 1) (per tensor or channel)."""
    qmax = (1 << (bits - 1)) - 1
    if axis is None:
        amax = float(w.detach().abs().max()) if w.numel() else 0.0
        scale: PerChannel = (amax if amax > 0 else 1.0) / qmax
    else:
        dims = [d for d in range(w.ndim) if d != axis % w.ndim]
        amax_t = w.detach().abs().amax(dim=dims).double()
        scale = tuple(float(a) / qmax if a > 0 else 1.0 / qmax for a in amax_t.tolist())
    return quantize(w, QFormat.symmetric(bits, scale, axis=axis), rounding)


def quantize_ternary(w: torch.Tensor, *, delta_factor: float = 0.7) -> QTensor:
    """TWN (BMPQ 2-bit layers): Δ = 0.7·mean|W|, α = mean(|W| > Δ), codes sign(W)·[|W| > Δ]."""
    a = w.detach().abs()
    delta = delta_factor * float(a.mean())
    mask = a > delta
    alpha = float(a[mask].mean()) if bool(mask.any()) else 1.0
    codes = (torch.sign(w.detach()) * mask).to(torch.int8)
    return QTensor(codes, QFormat.ternary(alpha))


def quantize_grid(x: torch.Tensor, bits: int, r_min: float, r_max: float, *,
                  rounding: str = "half_away") -> QTensor:
    """ZOQO eq. 2: code = round((clip(x, r_min, r_max) − r_min)/s) ∈ {0..2^b−1}."""
    fmt = QFormat.grid(bits, r_min, r_max)
    return quantize(torch.clamp(x, r_min, r_max), fmt, rounding)
