"""MUL, standalone RELU / RELU6, PAD and CONCATENATION for int8/uint8.

Why: common glue ops of quantized CNNs. Each follows the reference kernel's integer formula;
the multipliers are computed in double from the float32 scales (docs/algorithms.md §5.1).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.gemmlowp import (multiply_by_quantized_multiplier, quantize_multiplier,
                                       round_half_away)
from hwsim.fixedpoint.kernels.base import QRANGE, Kernel, activation_range, clamp_count
from hwsim.fixedpoint.kernels.elementwise import _align


def _f64(x: float) -> float:
    return float(np.float32(x))


class Mul(Kernel):
    """MUL: MBQM((x1−Z1)·(x2−Z2), S1·S2/S_out) + Z_out, clamped."""

    event_op = "mul"

    def prepare(self) -> None:
        self.require_types("int8", "uint8")
        a, b, y = self.tensor(0), self.tensor(1), self.out()
        self.m = quantize_multiplier(_f64(a.s) * _f64(b.s) / _f64(y.s))
        self.act = activation_range(int(self.op.options.get("fused_activation_function", 0)), y)

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        a_spec, b_spec, y_spec = self.tensor(0), self.tensor(1), self.out()
        rank = len(y_spec.shape)
        a = _align(inputs[0], rank).astype(np.int64) - a_spec.zp
        b = _align(inputs[1], rank).astype(np.int64) - b_spec.zp
        yq = multiply_by_quantized_multiplier(a * b, *self.m) + y_spec.zp
        yq, sat = clamp_count(yq, *self.act)
        n = max(inputs[0].shape[0], inputs[1].shape[0])
        return [np.ascontiguousarray(np.broadcast_to(yq, (n,) + y_spec.shape)).astype(y_spec.dtype)], sat

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", "int32"): 2 * int(np.prod(self.out().shape))}


class Relu(Kernel):
    """RELU / RELU6 (ReluQuantized): Z_out + MBQM(x − Z_in, S_in/S_out), clamped to the range."""

    event_op = "relu"
    upper: float | None = None

    def prepare(self) -> None:
        self.require_types("int8", "uint8")
        x, y = self.tensor(0), self.out()
        self.m = quantize_multiplier(_f64(x.s) / _f64(y.s))
        qmin, qmax = QRANGE[y.fmt]
        lo = max(qmin, y.zp)
        hi = qmax if self.upper is None else min(
            qmax, y.zp + int(round_half_away(np.float32(self.upper) / np.float32(y.s))))
        self.act = (lo, hi)

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x, y = self.tensor(0), self.out()
        yq = multiply_by_quantized_multiplier(inputs[0].astype(np.int64) - x.zp, *self.m) + y.zp
        yq, sat = clamp_count(yq, *self.act)
        return [yq.astype(y.dtype)], sat

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", "int32"): int(np.prod(self.out().shape))}


class Relu6(Relu):
    """RELU6. LiteRT-ref requantizes like RELU; TFLM's Relu6 only clamps the input codes to
    [Z_in, Z_in + round(6/S_in)] (it assumes the output shares the input's quantization)."""

    event_op = "relu6"
    upper = 6.0

    def prepare(self) -> None:
        super().prepare()
        x = self.tensor(0)
        if self.runtime != "litert-ref":
            qmin, qmax = QRANGE[x.fmt]
            six = int(round_half_away(np.float32(6.0) / np.float32(x.s))) + x.zp
            self.act = (max(qmin, min(qmax, x.zp)), max(qmin, min(qmax, six)))
            self.m = None

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        if self.m is not None:
            return super().run(inputs)
        yq, sat = clamp_count(inputs[0].astype(np.int64), *self.act)
        return [yq.astype(self.out().dtype)], sat


class Pad(Kernel):
    """PAD / PADV2: constant padding with the output zero point (or PADV2's constant)."""

    event_op = "pad"

    def prepare(self) -> None:
        x, y = self.tensor(0), self.out()
        pads = self.tensor(1).data
        if pads is None:
            raise self.fail("non-constant paddings are not supported")
        self.pads = [(0, 0)] + [(int(a), int(b)) for a, b in np.asarray(pads).reshape(-1, 2)]
        if self.has_input(2) and self.tensor(2).data is not None:
            self.value = int(np.asarray(self.tensor(2).data).ravel()[0])
        else:
            self.value = y.zp
        if x.scale is not None and (x.s != y.s or x.zp != y.zp):
            raise self.fail("input and output quantization differ; not supported")

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        return [np.pad(inputs[0], self.pads, constant_values=self.value)], 0

    def work(self) -> dict[tuple[str, str], int]:
        return {}


class Concatenation(Kernel):
    """CONCATENATION of tensors sharing the output's scale and zero point (as TFLM requires)."""

    event_op = "concatenation"

    def prepare(self) -> None:
        y = self.out()
        for pos in range(len(self.op.inputs)):
            t = self.tensor(pos)
            if t.scale is not None and (t.s != y.s or t.zp != y.zp):
                raise self.fail(f"input {t.name!r} has different quantization than the output; "
                                "requantizing concatenation is not supported")
        axis = int(self.op.options.get("axis", 0))
        self.axis = (axis % len(y.shape)) + 1
        self.act = activation_range(int(self.op.options.get("fused_activation_function", 0)), y)

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        n = max(a.shape[0] for a in inputs)
        arrs = [np.broadcast_to(a, (n,) + a.shape[1:]) for a in inputs]
        return [np.concatenate(arrs, axis=self.axis)], 0

    def work(self) -> dict[tuple[str, str], int]:
        return {}


class Mean(Kernel):
    """MEAN of int8 over any constant axes (reference_ops::QuantizedMeanOrSum, shared by
    TFLM and LiteRT-ref): the 1/n factor is folded into the multiplier,
    `M' = (M << k) / n`, `shift' = shift − k` with k = min(floor(log2 n), 32, 31 + shift); then
    y = MBQM(Σx − Z_in·n, M', shift') + Z_out, clamped."""

    event_op = "mean"

    def prepare(self) -> None:
        from hwsim.fixedpoint.gemmlowp import effective_scale

        self.require_types("int8")
        x, y = self.tensor(0), self.out()
        axes = self.tensor(1).data
        if axes is None:
            raise self.fail("non-constant axes are not supported")
        rank = len(x.shape)
        self.axes = tuple(sorted({int(a) % rank for a in np.asarray(axes).ravel()}))
        n = int(np.prod([x.shape[a] for a in self.axes])) if self.axes else 1
        self.n = n
        m, sh = quantize_multiplier(effective_scale(x.s, 1.0, y.s))
        m, sh = int(m), int(sh)
        k = min(n.bit_length() - 1, 32, 31 + sh)
        self.m = (np.int64((m << k) // n), np.int64(sh - k))

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x, y = self.tensor(0), self.out()
        a = inputs[0]
        total = a.astype(np.int64).sum(axis=tuple(ax + 1 for ax in self.axes))
        total -= x.zp * self.n
        yq = multiply_by_quantized_multiplier(total, *self.m) + y.zp
        yq, sat = clamp_count(yq, *QRANGE[y.fmt])
        return [yq.astype(y.dtype).reshape((a.shape[0],) + y.shape)], sat

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", self.fmt): int(np.prod(self.tensor(0).shape))}


class _GemmlowpActivation(Kernel):
    """LOGISTIC / TANH int8 (reference_integer_ops): inputs beyond ±radius saturate, the rest go
    through gemmlowp's fixed-point function with 4 integer bits."""

    _INPUT_INTEGER_BITS = 4
    _out_shift = 0
    _out_zero = 0

    def prepare(self) -> None:
        import math

        from hwsim.fixedpoint.gemmlowp import calculate_input_radius

        self.require_types("int8")
        x = self.tensor(0)
        real = float(np.float32(x.s)) * float(1 << (31 - self._INPUT_INTEGER_BITS))
        q, shift = math.frexp(real)
        self.mult = int(round_half_away(q * float(1 << 31)))
        self.shift = shift
        self.radius = calculate_input_radius(self._INPUT_INTEGER_BITS, shift, 31)

    def _fn(self, raw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        from hwsim.fixedpoint.gemmlowp import rounding_divide_by_pot

        x, y = self.tensor(0), self.out()
        d = inputs[0].astype(np.int64) - x.zp
        q4 = multiply_by_quantized_multiplier(d, self.mult, self.shift)
        r = rounding_divide_by_pot(self._fn(q4), 31 - self._out_shift) + self._out_zero
        r = np.clip(r, -128, 127)
        r = np.where(d <= -self.radius, -128, np.where(d >= self.radius, 127, r))
        return [r.astype(y.dtype)], 0

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", "int32"): int(np.prod(self.out().shape))}


class Logistic(_GemmlowpActivation):
    """LOGISTIC int8 → int8 with output S = 1/256, Z = −128."""

    event_op = "logistic"
    _out_shift = 8
    _out_zero = -128

    def _fn(self, raw: np.ndarray) -> np.ndarray:
        from hwsim.fixedpoint.gemmlowp import logistic

        return logistic(raw, self._INPUT_INTEGER_BITS)


class Tanh(_GemmlowpActivation):
    """TANH int8 → int8 with output S = 1/128, Z = 0."""

    event_op = "tanh"
    _out_shift = 7

    def _fn(self, raw: np.ndarray) -> np.ndarray:
        from hwsim.fixedpoint.gemmlowp import tanh

        return tanh(raw, self._INPUT_INTEGER_BITS)
