"""AVERAGE_POOL_2D and MAX_POOL_2D (int8/uint8/int16; input and output share scale/zero point).

Why: TFLite averages only the in-bounds taps and rounds half away from zero with C division
(docs/algorithms.md §5.8); a float average or a count including padding is off by one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.kernels.base import (Kernel, activation_range, clamp_count, compute_padding,
                                           trunc_div)


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
        self.act = activation_range(int(o.get("fused_activation_function", 0)), y)
        import torch
        import torch.nn.functional as F

        ones = F.pad(torch.ones(1, 1, x.shape[1], x.shape[2], dtype=torch.float64), self.pads)
        self.count = F.avg_pool2d(ones, self.k, self.stride, divisor_override=1).numpy()[0, 0]
        self.count = self.count.astype(np.int64)[None, :, :, None]

    def _nchw(self, x: np.ndarray, fill: float):
        import torch
        import torch.nn.functional as F

        xt = torch.from_numpy(np.ascontiguousarray(x.reshape((-1,) + x.shape[2:])))
        xt = xt.permute(0, 3, 1, 2).to(torch.float64)
        if any(self.pads):
            xt = F.pad(xt, self.pads, value=fill)
        return xt

    def _finish(self, yq: np.ndarray, n: int) -> tuple[list[np.ndarray], int]:
        y_spec = self.out()
        yq, sat = clamp_count(yq, *self.act)
        return [yq.astype(y_spec.dtype).reshape((n,) + y_spec.shape)], sat


class AveragePool2D(_Pool):
    """AVERAGE_POOL_2D: (Σ ± n/2) / n over in-bounds taps, C truncating division."""

    event_op = "average_pool2d"

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        import torch.nn.functional as F

        x = inputs[0]
        s = F.avg_pool2d(self._nchw(x, 0.0), self.k, self.stride, divisor_override=1)
        acc = s.permute(0, 2, 3, 1).numpy().astype(np.int64)
        n = self.count
        avg = np.where(acc > 0, trunc_div(acc + n // 2, n), trunc_div(acc - n // 2, n))
        return self._finish(avg, x.shape[0])

    def work(self) -> dict[tuple[str, str], int]:
        return {("elementwise", self.fmt): int(np.prod(self.out().shape)) * self.k[0] * self.k[1]}


class MaxPool2D(_Pool):
    """MAX_POOL_2D: max over in-bounds taps, then the activation clamp."""

    event_op = "max_pool2d"

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        import torch.nn.functional as F

        x = inputs[0]
        m = F.max_pool2d(self._nchw(x, -1e9), self.k, self.stride)
        return self._finish(m.permute(0, 2, 3, 1).numpy().astype(np.int64), x.shape[0])

    def work(self) -> dict[tuple[str, str], int]:
        return {("compare", self.fmt): int(np.prod(self.out().shape)) * self.k[0] * self.k[1]}
