"""QUANTIZE (float→int, int→int requantize) and DEQUANTIZE (int→float32).

Why: models with float I/O wrap the int8 graph in these; TFLite's formulas are
`Z + (int)round(x / S)` in float32 and `(float)(S_double · (q − Z))`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.gemmlowp import (effective_scale, multiply_by_quantized_multiplier,
                                       quantize_multiplier, round_half_away)
from hwsim.fixedpoint.kernels.base import QRANGE, Kernel, clamp_count


class Quantize(Kernel):
    """QUANTIZE: float32 → int (AffineQuantize) or int → int (Requantize, double rounding)."""

    event_op = "quantize"

    def prepare(self) -> None:
        x, y = self.tensor(0), self.out()
        if y.fmt not in ("int8", "uint8", "int16"):
            raise self.fail(f"output type {y.fmt} is not supported")
        if x.fmt not in ("fp32", "int8", "uint8", "int16"):
            raise self.fail(f"input type {x.fmt} is not supported")
        if x.fmt != "fp32":
            self.mq = quantize_multiplier(effective_scale(x.s, 1.0, y.s))

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x, y = self.tensor(0), self.out()
        a = inputs[0]
        if x.fmt == "fp32":
            q = round_half_away(a.astype(np.float32) / np.float32(y.s)) + y.zp
        else:
            q = multiply_by_quantized_multiplier(a.astype(np.int64) - x.zp, *self.mq) + y.zp
        q, sat = clamp_count(q, *QRANGE[y.fmt])
        return [q.astype(y.dtype)], sat

    def work(self) -> dict[tuple[str, str], int]:
        fmt = "fp32" if self.tensor(0).fmt == "fp32" else "int32"
        return {("elementwise", fmt): int(np.prod(self.out().shape))}


class Dequantize(Kernel):
    """DEQUANTIZE: int → float32 as (float)((double)S · (q − Z))."""

    event_op = "dequantize"

    def prepare(self) -> None:
        if self.tensor(0).fmt not in ("int8", "uint8", "int16"):
            raise self.fail(f"input type {self.tensor(0).fmt} is not supported")

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x = self.tensor(0)
        scale = float(np.float32(x.s))
        return [(scale * (inputs[0].astype(np.float64) - x.zp)).astype(np.float32)], 0

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", "fp32"): int(np.prod(self.out().shape))}
