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
