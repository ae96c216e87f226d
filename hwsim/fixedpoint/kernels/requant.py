"""Per-channel requantization of int32/int64 accumulators, keyed by runtime and op.

Why: the only place where TFLM and LiteRT-ref differ for the MLPerf Tiny ops is how an
accumulator is scaled back to the output codes (docs/algorithms.md §5.4, §5.11):
- TFLM / CMSIS-NN: double rounding (`MultiplyByQuantizedMultiplier`) everywhere;
- LiteRT BUILTIN_REF: double rounding for conv/depthwise, but FULLY_CONNECTED is the float64
  path `round((double)acc · S_in·S_w/S_out)`;
- 16x8 kernels: the int64 overload with a 16-bit reduced multiplier.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwsim.fixedpoint.gemmlowp import (effective_scale, multiply_by_quantized_multiplier,
                                       multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                       requantize_float64)

#: elements per block of the fused epilogue; its work buffers (512 KiB each) are per-thread
#: scratch reused by every layer (`_scratch`), so a block makes no temporaries
_BLOCK = 1 << 16
_SCRATCH = threading.local()
#: the largest double below 0.5: trunc(v + copysign(_HALF_DOWN, v)) is C `round(v)` (half away
#: from zero) for every finite double v, in three passes instead of five (see `_round_float64`)
_HALF_DOWN = 0.49999999999999994


@dataclass
class Requantizer:
    """Scales accumulators (channel on `axis`) to output codes (before the zero point)."""

    multiplier: np.ndarray
    shift: np.ndarray
    s_in: float
    s_w: np.ndarray
    s_out: float
    mode: str  # "double" | "float64" | "int64"
    #: the per-channel constants of the last epilogue call, reused while offset and Z match
    _step: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, s_in: float, s_w: np.ndarray, s_out: float, mode: str) -> "Requantizer":
        m, sh = quantize_multiplier(effective_scale(s_in, s_w, s_out))
        return cls(m, sh, s_in, np.asarray(s_w, np.float32), s_out, mode)

    def __call__(self, acc: np.ndarray, axis: int) -> np.ndarray:
        """Apply to `acc` whose channel dimension is `axis` (per-tensor params broadcast)."""
        shape = [1] * acc.ndim
        if self.multiplier.size > 1:
            shape[axis] = self.multiplier.size
        m = self.multiplier.reshape(shape)
        sh = self.shift.reshape(shape)
        if self.mode == "float64":
            return requantize_float64(acc, self.s_in, self.s_w.reshape(shape), self.s_out)
        if self.mode == "int64":
            return multiply_by_quantized_multiplier_int64(acc, m, sh)
        return multiply_by_quantized_multiplier(acc, m, sh)

    def epilogue(self, acc: np.ndarray, offset: np.ndarray | int, zero_point: int, lo: int, hi: int,
                 out_dtype) -> tuple[np.ndarray, int]:
        """Fused `clamp(requant(acc + offset) + Z_out)` for channel-last `acc` (any int-valued
        dtype; float accumulators must hold exact integers). Returns (codes, saturations).

        Processed in row blocks through per-thread scratch buffers (no temporaries per block):
        "double" in float64 where every intermediate is an exact integer, else in int64;
        "float64" in float64; "int64" (16x8) via the gemmlowp function. Bit-identical to the gemmlowp reference
        `clamp(self(acc + offset) + Z_out)` (tests/test_emulate_cli.py checks every path)."""
        c = acc.shape[-1]
        flat = acc.reshape(-1, c)
        out = np.empty(flat.shape, dtype=out_dtype)
        offset = np.asarray(offset, np.int64)
        rows = min(max(1, _BLOCK // max(c, 1)), max(flat.shape[0], 1))
        step = self._step
        if step is None or not step.matches(offset, zero_point):
            if self.mode == "double":
                step = _DoubleRounding(self.multiplier, self.shift, offset, zero_point)
            elif self.mode == "float64":
                step = _Float64Rounding(effective_scale(self.s_in, self.s_w, self.s_out), offset,
                                        zero_point)
            else:
                step = _Int64Rounding(self.multiplier, self.shift, offset, zero_point)
            self._step = step
        flags = _scratch("flags", np.bool_, rows, c)
        sat = 0
        for r0 in range(0, flat.shape[0], rows):
            blk = step(flat[r0:r0 + rows])
            fl = flags[:blk.shape[0]]
            np.less(blk, lo, out=fl)
            sat += int(np.count_nonzero(fl))
            np.greater(blk, hi, out=fl)
            sat += int(np.count_nonzero(fl))
            np.clip(blk, lo, hi, out=out[r0:r0 + rows], casting="unsafe")
        return out.reshape(acc.shape), sat


def _scratch(name: str, dtype: Any, rows: int, c: int) -> np.ndarray:
    """A (rows, c) view of this thread's scratch buffer `name` (rows·c ≤ max(_BLOCK, c))."""
    buf = getattr(_SCRATCH, name, None)
    need = max(_BLOCK, c)
    if buf is None or buf.size < need or buf.dtype != dtype:
        buf = np.empty(need, dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:rows * c].reshape(rows, c)


class _Step:
    """Per-channel constants of one (offset, Z) pair; `matches` tells whether they still apply."""

    offset: np.ndarray
    zp: int

    def matches(self, offset: np.ndarray, zero_point: int) -> bool:
        return (zero_point == self.zp and offset.shape == self.offset.shape
                and bool(np.array_equal(offset, self.offset)))


def _per_channel(v: np.ndarray) -> np.ndarray:
    """A per-channel parameter as a scalar array (per-tensor) or a row broadcasting on the last axis."""
    return v.reshape(()) if v.size == 1 else v.reshape(-1)


class _DoubleRounding(_Step):
    """`multiply_by_quantized_multiplier(acc + offset, M, shift) + Z` on one block.

    Both roundings in one shift: with T = x·M + 2^30, SRDHM is ⌊T / 2^31⌋ and RDBPOT(s, r) is
    ⌊(s + 2^(r−1) − [s < 0]) / 2^r⌋, so for r > 0 the result is
    ⌊(T + 2^(r−1)·2^31 − [T < 0]·2^31) / 2^(31+r)⌋, because ⌊(⌊T/2^31⌋ + k)/2^r⌋ =
    ⌊(T + k·2^31)/2^(31+r)⌋ for integer k (and [T < 0] is the sign of ⌊T/2^31⌋). Multipliers
    are ≥ 0, so SRDHM never saturates.

    The zero point rides along as Z·2^(31+r) (a multiple of the divisor), and the offset as
    offset·M, so the float64 path is ⌊(acc·M + C − [· < thr]·2^31) · 2^−(31+r)⌋ with one
    per-channel constant C = offset·M + 2^30 + half·2^31 + Z·2^(31+r) (thr = C − offset·M − 2^30).

    Evaluated in float64 when every intermediate is an integer below 2^53 (checked per block
    from the block's own accumulator range: then each float operation is exact, and float64
    products are vectorised where int64 ones are not); otherwise in int64. Left shifts (effective
    scale > 1, a wrapping int32 multiply in C) always take the int64 path."""

    def __init__(self, multiplier: np.ndarray, shift: np.ndarray, offset: np.ndarray,
                 zero_point: int) -> None:
        m = _per_channel(np.asarray(multiplier, np.int64))
        sh = _per_channel(np.asarray(shift, np.int64))
        left = np.maximum(sh, 0)
        right = np.maximum(-sh, 0)
        self.left = left if np.any(left) else None
        self.m = m
        half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0).astype(np.int64)
        self.threshold = half << 31                 # T < 0  ⟺  T + half·2^31 < threshold
        self.add = (np.int64(1) << 30) + self.threshold
        self.neg = np.where(right > 0, np.int64(1) << 31, 0).astype(np.int64)
        self.total = (31 + right).astype(np.int64)
        self.offset = offset
        self.zp = zero_point
        # float64 path constants, computed exactly with Python integers
        ms, offs, halves, totals = (np.broadcast_to(a, np.broadcast(m, offset).shape).tolist()
                                    for a in (m, offset, half, self.total))
        ms, offs, halves, totals = ([a] if not isinstance(a, list) else a
                                    for a in (ms, offs, halves, totals))
        zed = [zero_point << t for t in totals]
        thr = [(h << 31) + z for h, z in zip(halves, zed)]
        const = [o * mm + (1 << 30) + t for o, mm, t in zip(offs, ms, thr)]
        # |acc| ≤ acc_limit keeps every partial sum of acc·M + const (± 2^31) below 2^53
        spare = 2 ** 53 - 2 ** 31 - max(abs(k) for k in const) - max(abs(t) for t in thr)
        self.acc_limit = (-1.0 if self.left is not None or spare <= 0
                          else float(spare // max(max(ms), 1)))
        shape = np.broadcast(m, offset).shape
        self.m_f = m.astype(np.float64)
        self.const_f = np.array(const, np.float64).reshape(shape) if spare > 0 else None
        self.thr_f = np.array(thr, np.float64).reshape(shape) if spare > 0 else None
        self.neg_f = self.neg.astype(np.float64)
        self.scale_f = np.ldexp(1.0, -self.total)

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        n, c = acc.shape
        v, t = _scratch("v", np.float64, n, c), _scratch("t", np.float64, n, c)
        f = _scratch("f", np.bool_, n, c)
        if acc.size and max(-float(acc.min()), float(acc.max())) <= self.acc_limit:
            np.multiply(acc, self.m_f, out=v, casting="unsafe")   # exact: < 2^53
            v += self.const_f
            np.less(v, self.thr_f, out=f)                        # T < 0
            np.multiply(f, self.neg_f, out=t)
            v -= t
            v *= self.scale_f
            np.floor(v, out=v)
            return v
        x, xt = _scratch("x", np.int64, n, c), t.view(np.int64)
        np.add(acc, self.offset, out=x, casting="unsafe")
        if self.left is not None:                          # x·2^left as a wrapping C int32
            x <<= self.left
            x += 1 << 31
            x &= 0xFFFFFFFF
            x -= 1 << 31
        x *= self.m
        x += self.add
        np.less(x, self.threshold, out=f)
        np.multiply(f, self.neg, out=xt)
        x -= xt
        x >>= self.total
        x += self.zp
        return x


class _Float64Rounding(_Step):
    """LiteRT-ref FULLY_CONNECTED: `round((double)(acc + offset) · eff) + Z` on a float64 block,
    the same double operations as `requantize_float64` (the sum is exact below 2^53)."""

    def __init__(self, eff: np.ndarray, offset: np.ndarray, zero_point: int) -> None:
        self.eff = _per_channel(np.asarray(eff, np.float64))
        self.offset = offset
        self.offset_f = offset.astype(np.float64)
        self.zp = zero_point

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        n, c = acc.shape
        v, t = _scratch("v", np.float64, n, c), _scratch("t", np.float64, n, c)
        np.add(acc, self.offset_f, out=v, casting="unsafe")
        v *= self.eff
        _round_float64(v, t)
        v += self.zp
        return v


def _round_float64(v: np.ndarray, t: np.ndarray) -> None:
    """C `round` (half away from zero) of `v` in place; `t` is scratch of the same shape.

    trunc(v + copysign(h, v)) with h = 0.5 − 2^−54: for |v| with fractional part ≥ 0.5 the sum
    reaches the next integer (the one midpoint case 1 − 2^−54 rounds to even, i.e. up); below
    0.5 the fractional part is at most 0.5 − ulp(v) and the sum stays under the next integer, so
    0.49999999999999994 rounds to 0 as C does. Integers (|v| ≥ 2^52) are unchanged."""
    np.copysign(_HALF_DOWN, v, out=t)
    v += t
    np.trunc(v, out=v)


class _Int64Rounding(_Step):
    """The 16x8 int64 overload (rare: no in-place fast path)."""

    def __init__(self, multiplier: np.ndarray, shift: np.ndarray, offset: np.ndarray,
                 zero_point: int) -> None:
        self.m = _per_channel(np.asarray(multiplier, np.int64))
        self.sh = _per_channel(np.asarray(shift, np.int64))
        self.offset = offset
        self.zp = zero_point

    def __call__(self, acc: np.ndarray) -> np.ndarray:
        x = acc.astype(np.int64)
        x += self.offset
        x = multiply_by_quantized_multiplier_int64(x, self.m, self.sh)
        x += self.zp
        return x
