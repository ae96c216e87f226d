"""Per-channel requantization of int32/int64 accumulators, keyed by runtime and op.

Why: the only place where TFLM and LiteRT-ref differ for the MLPerf Tiny ops is how an
accumulator is scaled back to the output codes (docs/algorithms.md §5.4, §5.11):
- TFLM / CMSIS-NN: double rounding (`MultiplyByQuantizedMultiplier`) everywhere;
- LiteRT BUILTIN_REF: double rounding for conv/depthwise, but FULLY_CONNECTED is the float64
  path `round((double)acc · S_in·S_w/S_out)`;
- 16x8 kernels: the int64 overload with a 16-bit reduced multiplier.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.fixedpoint.gemmlowp import (effective_scale, multiply_by_quantized_multiplier,
                                       multiply_by_quantized_multiplier_inplace,
                                       multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                       requantize_float64)

#: elements per block of the fused epilogue (keeps the int64 temporaries cache-resident)
_BLOCK = 1 << 16


@dataclass
class Requantizer:
    """Scales accumulators (channel on `axis`) to output codes (before the zero point)."""

    multiplier: np.ndarray
    shift: np.ndarray
    s_in: float
    s_w: np.ndarray
    s_out: float
    mode: str  # "double" | "float64" | "int64"

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

        Processed in cache-sized row blocks: the chain of int64 passes stays in cache."""
        c = acc.shape[-1]
        flat = acc.reshape(-1, c)
        out = np.empty(flat.shape, dtype=out_dtype)
        offset = np.asarray(offset, np.int64)
        m = self.multiplier if self.multiplier.size > 1 else self.multiplier.reshape(())
        sh = self.shift if self.shift.size > 1 else self.shift.reshape(())
        rows = max(1, _BLOCK // max(c, 1))
        sat = 0
        for r0 in range(0, flat.shape[0], rows):
            blk = flat[r0:r0 + rows].astype(np.int64)
            blk += offset
            if self.mode == "double":
                multiply_by_quantized_multiplier_inplace(blk, m, sh)
            elif self.mode == "float64":
                blk = requantize_float64(blk, self.s_in, self.s_w, self.s_out)
            else:
                blk = multiply_by_quantized_multiplier_int64(blk, m, sh)
            blk += zero_point
            sat += int(np.count_nonzero(blk < lo)) + int(np.count_nonzero(blk > hi))
            np.clip(blk, lo, hi, out=blk)
            out[r0:r0 + rows] = blk
        return out.reshape(acc.shape), sat
