"""ADD and SUB, int8/uint8 (three multipliers, left shift 20) and int16 (left shift 15).

Why: TFLite rescales both inputs to a common scale before adding, with three double-rounding
requantizations (docs/algorithms.md §5.6); a single-multiplier shortcut is off by one LSB often.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.gemmlowp import (multiply_by_quantized_multiplier,
                                       multiply_by_quantized_multiplier_inplace, quantize_multiplier)
from hwsim.fixedpoint.kernels.base import Kernel, activation_range, clamp_count

_BLOCK = 1 << 16


def _align(a: np.ndarray, rank: int) -> np.ndarray:
    """Insert size-1 dims after the batch axis so both operands broadcast like TFLite shapes."""
    missing = rank - (a.ndim - 1)
    return a.reshape((a.shape[0],) + (1,) * missing + a.shape[1:]) if missing > 0 else a


class Add(Kernel):
    """ADD: y = MBQM(MBQM((x1−Z1)·2^ls, M1) ± MBQM((x2−Z2)·2^ls, M2), Mo) + Zo."""

    event_op = "add"
    sign = 1

    def prepare(self) -> None:
        self.require_types("int8", "uint8", "int16")
        a, b, y = self.tensor(0), self.tensor(1), self.out()
        if y.fmt == "int16" and self.op.options.get("pot_scale_int16", True):
            raise self.fail("int16 with pot_scale_int16=true uses the power-of-two-scale kernel, "
                            "which the emulator lacks; re-export with pot_scale_int16=false")
        self.left_shift = 15 if y.fmt == "int16" else 20
        # add.cc / add_common.cc: float max doubled, then double divisions (all exact in double)
        twice_max = 2.0 * float(max(np.float32(a.s), np.float32(b.s)))
        self.m1 = quantize_multiplier(float(np.float32(a.s)) / twice_max)
        self.m2 = quantize_multiplier(float(np.float32(b.s)) / twice_max)
        self.mo = quantize_multiplier(
            twice_max / float(np.float32(float(1 << self.left_shift) * np.float32(y.s))))
        self.act = activation_range(int(self.op.options.get("fused_activation_function", 0)), y)

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        if inputs[0].shape == inputs[1].shape:
            return self._run_blocked(inputs[0], inputs[1])
        return self._run_broadcast(inputs)

    def _run_blocked(self, a: np.ndarray, b: np.ndarray) -> tuple[list[np.ndarray], int]:
        """Same-shape operands: cache-sized blocks, in-place int64 arithmetic (hot path)."""
        a_spec, b_spec, y_spec = self.tensor(0), self.tensor(1), self.out()
        fa, fb = a.reshape(-1), b.reshape(-1)
        out = np.empty(fa.shape, y_spec.dtype)
        lo, hi = self.act
        sat = 0
        for i in range(0, fa.size, _BLOCK):
            x1 = fa[i:i + _BLOCK].astype(np.int64)
            x1 -= a_spec.zp
            x1 <<= self.left_shift
            multiply_by_quantized_multiplier_inplace(x1, *self.m1)
            x2 = fb[i:i + _BLOCK].astype(np.int64)
            x2 -= b_spec.zp
            x2 <<= self.left_shift
            multiply_by_quantized_multiplier_inplace(x2, *self.m2)
            if self.sign > 0:
                x1 += x2
            else:
                x1 -= x2
            multiply_by_quantized_multiplier_inplace(x1, *self.mo)
            x1 += y_spec.zp
            sat += int(np.count_nonzero(x1 < lo)) + int(np.count_nonzero(x1 > hi))
            np.clip(x1, lo, hi, out=x1)
            out[i:i + _BLOCK] = x1
        return [out.reshape(a.shape)], sat

    def _run_broadcast(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        a_spec, b_spec, y_spec = self.tensor(0), self.tensor(1), self.out()
        rank = len(y_spec.shape)
        a = _align(inputs[0], rank).astype(np.int64)
        b = _align(inputs[1], rank).astype(np.int64)
        sa = multiply_by_quantized_multiplier((a - a_spec.zp) << self.left_shift, *self.m1)
        sb = multiply_by_quantized_multiplier((b - b_spec.zp) << self.left_shift, *self.m2)
        raw = sa + sb if self.sign > 0 else sa - sb
        yq = multiply_by_quantized_multiplier(raw, *self.mo) + y_spec.zp
        yq, sat = clamp_count(yq, *self.act)
        n = max(inputs[0].shape[0], inputs[1].shape[0])
        yq = np.broadcast_to(yq, (n,) + y_spec.shape)
        return [np.ascontiguousarray(yq.astype(y_spec.dtype))], sat

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", "int32"): 3 * int(np.prod(self.out().shape))}


class Sub(Add):
    """SUB: as ADD with the second scaled input subtracted."""

    event_op = "sub"
    sign = -1
