"""Shared pieces of the TFLite integer kernels: the Kernel interface, activation ranges, padding.

Why: every kernel prepares its integer parameters once (multipliers, shifts, folded weights) the
way the runtime's Prepare does, then runs on a whole batch. Activation ranges and SAME/VALID
padding must follow TFLite's own formulas exactly, so they live here once.

Batch layout: a tensor of TFLite shape `s` is held as a numpy array of shape `(N, *s)` — the N
emulated inferences are stacked on a new leading axis, so the model's own batch dim (usually 1)
is kept untouched.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hwsim.errors import ModelError
from hwsim.fixedpoint.gemmlowp import round_half_away

if TYPE_CHECKING:
    from hwsim.models.tflite_import import OpSpec, TensorSpec, TFLiteGraph

RUNTIMES = ("tflm", "litert-ref", "cmsis-nn")
#: "numpy": torch-free exact kernels (fast start-up); "intops": hwsim.fixedpoint.intops (torch)
BACKENDS = ("numpy", "intops")

#: TFLite ActivationFunctionType values
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3

QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-2**31, 2**31 - 1)}


class Kernel:
    """A prepared TFLite op. Subclasses set `event_op` and implement `run` and `work`."""

    event_op: ClassVar[str] = ""
    #: input positions that hold weights / biases (TensorInfo kind "weight" / "bias")
    weight_inputs: ClassVar[tuple[int, ...]] = ()
    bias_inputs: ClassVar[tuple[int, ...]] = ()

    def __init__(self, op: OpSpec, graph: TFLiteGraph, runtime: str, backend: str = "numpy"
                 ) -> None:
        self.op = op
        self.graph = graph
        self.runtime = runtime
        self.backend = backend
        self.prepare()

    # ---- helpers -----------------------------------------------------------------------------
    def tensor(self, pos: int) -> TensorSpec:
        return self.graph.tensors[self.op.inputs[pos]]

    def out(self, pos: int = 0) -> TensorSpec:
        return self.graph.tensors[self.op.outputs[pos]]

    def has_input(self, pos: int) -> bool:
        return len(self.op.inputs) > pos and self.op.inputs[pos] >= 0

    def fail(self, why: str) -> ModelError:
        return ModelError(f"{self.graph.path}: op #{self.op.index} {self.op.opcode} "
                          f"(output {self.out().name!r}): {why}")

    def require_types(self, *fmts: str) -> None:
        t = self.tensor(0)
        if t.fmt not in fmts:
            raise self.fail(f"input type {t.fmt} is not supported (supported: {', '.join(fmts)})")

    @property
    def fmt(self) -> str:
        """Numeric format the work is priced in: the activation type of the op."""
        return self.tensor(0).fmt if self.op.inputs else self.out().fmt

    # ---- interface ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Compute the integer parameters once (like the runtime's Prepare)."""

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        """Run on batch arrays; return (outputs, number of values clamped to the activation range)."""
        raise NotImplementedError

    def work(self) -> dict[tuple[str, str], int]:
        """Work of one inference as {(op_class, fmt): count}."""
        return {}


def activation_range(act: int, t: TensorSpec) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: fused ReLU/ReLU6/ReLU-1..1 clipped in the output's codes.

    `quantize(f) = Z + (int)TfLiteRound(f / S)` with a float32 division, as in kernel_util.cc."""
    qmin, qmax = QRANGE[t.fmt]
    if act == ACT_NONE:
        return qmin, qmax
    scale = np.float32(t.s)
    zp = t.zp

    def quantize(f: float) -> int:
        return zp + int(round_half_away(np.float32(f) / scale))

    if act == ACT_RELU:
        return max(qmin, quantize(0.0)), qmax
    if act == ACT_RELU6:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if act == ACT_RELU_N1_TO_1:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise ModelError(f"fused activation {act} is not supported by the integer kernels")


def clamp_count(y: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """Clamp to [lo, hi] and count how many values were outside (saturations)."""
    sat = int(np.count_nonzero(y < lo)) + int(np.count_nonzero(y > hi))
    if sat:
        y = np.clip(y, lo, hi)
    return y, sat


def compute_padding(in_size: int, filt: int, stride: int, dilation: int, padding: int
                    ) -> tuple[int, int, int]:
    """TFLite output size and (before, after) padding for SAME (0) / VALID (1).

    ComputePaddingWithOffset: before = total // 2, the odd extra pixel goes after."""
    eff = (filt - 1) * dilation + 1
    if padding == 0:  # SAME
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - eff + stride) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2, total - total // 2


def trunc_div(a: np.ndarray, b: Any) -> np.ndarray:
    """C integer division (truncation toward zero)."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) ^ (np.asarray(b) < 0), -q, q)
