"""Data-movement ops with no arithmetic: RESHAPE, SQUEEZE, EXPAND_DIMS.

Why: they change only the TFLite shape; the batch array keeps its leading N axis.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.kernels.base import Kernel


class Reshape(Kernel):
    """RESHAPE / SQUEEZE / EXPAND_DIMS: the output tensor's shape is authoritative."""

    event_op = "reshape"

    def prepare(self) -> None:
        x, y = self.tensor(0), self.out()
        if int(np.prod(x.shape)) != int(np.prod(y.shape)):
            raise self.fail(f"cannot reshape {x.shape} into {y.shape}")

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x = inputs[0]
        return [x.reshape((x.shape[0],) + self.out().shape)], 0

    def work(self) -> dict[tuple[str, str], int]:
        return {}


class StridedSlice(Kernel):
    """STRIDED_SLICE with constant begin/end/strides and begin/end/shrink-axis masks (Python
    slice semantics, which TFLite's StartForAxis/StopForAxis clamping matches). Ellipsis /
    new-axis masks and `offset` are rejected."""

    event_op = "strided_slice"

    def prepare(self) -> None:
        x, y = self.tensor(0), self.out()
        consts = [self.tensor(k).data for k in (1, 2, 3)]
        if any(c is None for c in consts):
            raise self.fail("non-constant begin/end/strides are not supported")
        o = self.op.options
        if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0) or o.get("offset", False):
            raise self.fail("ellipsis/new-axis masks and offset=true are not supported")
        begin, end, strides = (np.asarray(c).ravel().tolist() for c in consts)
        bm, em, sm = (int(o.get(k, 0)) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))
        index: list = []
        for i in range(len(x.shape)):
            if i >= len(begin):
                index.append(slice(None))
            elif sm >> i & 1:
                index.append(int(begin[i]))
            else:
                index.append(slice(None if bm >> i & 1 else int(begin[i]),
                                   None if em >> i & 1 else int(end[i]), int(strides[i])))
        self.index = (slice(None),) + tuple(index)
        probe = np.empty(x.shape, dtype=np.int8)[tuple(index)]
        if int(np.prod(probe.shape)) != int(np.prod(y.shape)):
            raise self.fail(f"slice gives shape {probe.shape} but the model says {y.shape}")

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x = inputs[0]
        return [np.ascontiguousarray(x[self.index]).reshape((x.shape[0],) + self.out().shape)], 0

    def work(self) -> dict[tuple[str, str], int]:
        return {}
