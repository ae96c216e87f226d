"""SOFTMAX int8/uint8 → int8/uint8 via the gemmlowp fixed-point path (TFLM and LiteRT kReference).

Why: the optimized LiteRT kernel uses a float LUT and is not bit-identical; both reference
runtimes use this integer algorithm (docs/algorithms.md §5.7), which we port exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.gemmlowp import (calculate_input_radius, exp_on_negative_values,
                                       get_reciprocal,
                                       multiply_by_quantized_multiplier_greater_than_one,
                                       preprocess_softmax_scaling, rounding_divide_by_pot, srdhm)
from hwsim.fixedpoint.kernels.base import QRANGE, Kernel

_SCALED_DIFF_INTEGER_BITS = 5
_ACCUMULATION_INTEGER_BITS = 12


def softmax_rows(rows: np.ndarray, mult: int, left: int, diff_min: int, out_bits: int, qmin: int,
                 qmax: int) -> tuple[np.ndarray, int]:
    """The gemmlowp integer softmax of int64 rows (last axis): (output codes, saturation count).

    Why a function: the TFLite SOFTMAX kernel and the integer transformer's attention
    (`hwsim.fixedpoint.transformer_ops`) must run the one algorithm, not two copies of it.
    """
    diff = rows - rows.max(axis=1, keepdims=True)
    valid = diff >= diff_min
    scaled = multiply_by_quantized_multiplier_greater_than_one(diff, mult, left)
    e = exp_on_negative_values(scaled, _SCALED_DIFF_INTEGER_BITS)
    # Rescale<12> of the Q0.31 exp into the Q12.19 accumulator
    acc = np.where(valid, rounding_divide_by_pot(e, _ACCUMULATION_INTEGER_BITS), 0)
    total = acc.sum(axis=1, keepdims=True)
    recip, bits_over_unit = get_reciprocal(total, _ACCUMULATION_INTEGER_BITS)
    unsat = rounding_divide_by_pot(srdhm(recip, e), bits_over_unit + 31 - out_bits)
    yq = unsat + qmin
    sat = int(np.count_nonzero(valid & (yq > qmax)))
    return np.where(valid, np.clip(yq, qmin, qmax), qmin), sat


class Softmax(Kernel):
    """SOFTMAX over the last axis."""

    event_op = "softmax"

    def prepare(self) -> None:
        self.require_types("int8", "uint8")
        x, y = self.tensor(0), self.out()
        beta = float(np.float32(self.op.options.get("beta", 1.0)))
        self.mult, self.left = preprocess_softmax_scaling(beta, float(np.float32(x.s)),
                                                          _SCALED_DIFF_INTEGER_BITS)
        self.diff_min = -calculate_input_radius(_SCALED_DIFF_INTEGER_BITS, self.left)
        self.qmin, self.qmax = QRANGE[y.fmt]
        self.out_bits = 8
        self.depth = x.shape[-1]

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x = inputs[0]
        y_spec = self.out()
        rows = x.reshape(-1, self.depth).astype(np.int64)
        yq, sat = softmax_rows(rows, self.mult, self.left, self.diff_min, self.out_bits, self.qmin, self.qmax)
        return [yq.astype(y_spec.dtype).reshape(x.shape[:1] + y_spec.shape)], sat

    def work(self) -> dict[tuple[str, str], int]:
        n = int(np.prod(self.out().shape))
        return {("compare", self.fmt): n, ("elementwise", "int32"): 2 * n}
