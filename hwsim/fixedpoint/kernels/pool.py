"""AVERAGE_POOL_2D and MAX_POOL_2D (int8/uint8/int16; input and output share scale/zero point).

Why: TFLite averages only the in-bounds taps and rounds half away from zero with C division
(docs/algorithms.md §5.8); a float average or a count including padding is off by one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.kernels.base import (Kernel, activation_range, clamp_count, compute_padding,
                                           trunc_div)
from hwsim.fixedpoint.kernels.npconv import pad_nhwc


class _Pool(Kernel):
    def prepare(self) -> None:
        self.require_types("int8", "uint8", "int16")
        x, y = self.tensor(0), self.out()
        if len(x.shape) != 4:
            raise self.fail(f"expects a 4-D NHWC input, got shape {x.shape}")
        o = self.op.options
        self.k = (int(o["filter_height"]), int(o["filter_width"]))
        self.stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
        oh, pt, pb = compute_padding(x.shape[1], self.k[0], self.stride[0], 1, int(o.get("padding", 0)))
        ow, pl, pr = compute_padding(x.shape[2], self.k[1], self.stride[1], 1, int(o.get("padding", 0)))
        if (oh, ow) != tuple(y.shape[1:3]):
            raise self.fail(f"computed output {oh}x{ow} does not match the model's {y.shape}")
        self.pads = (pl, pr, pt, pb)
        self.out_hw = (oh, ow)
        self.act = activation_range(int(o.get("fused_activation_function", 0)), y)
        ones = pad_nhwc(np.ones((1, x.shape[1], x.shape[2], 1), np.int64), self.pads, 0)
        self.count = self._reduce(ones, np.add)  # in-bounds taps per output position

    def _reduce(self, xp: np.ndarray, fn) -> np.ndarray:
        """Fold `fn` over the window taps of a padded NHWC array."""
        oh, ow = self.out_hw
        sh, sw = self.stride
        acc = None
        for i in range(self.k[0]):
            for j in range(self.k[1]):
                t = xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
                acc = t.copy() if acc is None else fn(acc, t, out=acc)
        return acc

    def _finish(self, yq: np.ndarray, n: int) -> tuple[list[np.ndarray], int]:
        y_spec = self.out()
        yq, sat = clamp_count(yq, *self.act)
        return [yq.astype(y_spec.dtype).reshape((n,) + y_spec.shape)], sat


class AveragePool2D(_Pool):
    """AVERAGE_POOL_2D: (Σ ± n/2) / n over in-bounds taps, C truncating division."""

    event_op = "average_pool2d"

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x = inputs[0]
        xs = x.reshape((-1,) + x.shape[2:]).astype(np.int32)
        acc = self._reduce(pad_nhwc(xs, self.pads, 0), np.add).astype(np.int64)
        n = self.count
        avg = np.where(acc > 0, trunc_div(acc + n // 2, n), trunc_div(acc - n // 2, n))
        return self._finish(avg, x.shape[0])

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", self.fmt): int(np.prod(self.out().shape)) * self.k[0] * self.k[1]}


class MaxPool2D(_Pool):
    """MAX_POOL_2D: max over in-bounds taps, then the activation clamp."""

    event_op = "max_pool2d"

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x = inputs[0]
        xs = x.reshape((-1,) + x.shape[2:]).astype(np.int32)
        m = self._reduce(pad_nhwc(xs, self.pads, -(2 ** 31)), np.maximum)
        return self._finish(m.astype(np.int64), x.shape[0])

    def work(self) -> dict[tuple[str, str], int]:
        return {("compare", self.fmt): int(np.prod(self.out().shape)) * self.k[0] * self.k[1]}
