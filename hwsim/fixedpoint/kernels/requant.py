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
                                       multiply_by_quantized_multiplier_int64, quantize_multiplier,
                                       requantize_float64)


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
