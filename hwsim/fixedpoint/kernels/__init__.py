"""TFLite integer kernels (int8 / uint8 / 16x8), NHWC like TFLite, run on stacked batches.

Why: one prepared `Kernel` per op reproduces the reference runtime's integer arithmetic exactly
(docs/algorithms.md §5); `KERNELS` maps a TFLite builtin op name to its kernel class.
`runtime` ∈ RUNTIMES selects the rounding of FULLY_CONNECTED (the only op where the two
reference runtimes differ for these models).
"""
from __future__ import annotations

from hwsim.fixedpoint.kernels.base import BACKENDS, RUNTIMES, Kernel
from hwsim.fixedpoint.kernels.conv import Conv2D, DepthwiseConv2D, FullyConnected
from hwsim.fixedpoint.kernels.elementwise import Add, Sub
from hwsim.fixedpoint.kernels.misc import (Concatenation, Logistic, Mean, Mul, Pad, Relu, Relu6,
                                           Tanh)
from hwsim.fixedpoint.kernels.pool import AveragePool2D, MaxPool2D
from hwsim.fixedpoint.kernels.quantize import Dequantize, Quantize
from hwsim.fixedpoint.kernels.shape_ops import Reshape, StridedSlice
from hwsim.fixedpoint.kernels.softmax import Softmax

KERNELS: dict[str, type[Kernel]] = {
    "CONV_2D": Conv2D,
    "DEPTHWISE_CONV_2D": DepthwiseConv2D,
    "FULLY_CONNECTED": FullyConnected,
    "ADD": Add,
    "SUB": Sub,
    "AVERAGE_POOL_2D": AveragePool2D,
    "MAX_POOL_2D": MaxPool2D,
    "RESHAPE": Reshape,
    "SQUEEZE": Reshape,
    "EXPAND_DIMS": Reshape,
    "SOFTMAX": Softmax,
    "QUANTIZE": Quantize,
    "DEQUANTIZE": Dequantize,
    "MUL": Mul,
    "RELU": Relu,
    "RELU6": Relu6,
    "PAD": Pad,
    "PADV2": Pad,
    "CONCATENATION": Concatenation,
    "MEAN": Mean,
    "LOGISTIC": Logistic,
    "TANH": Tanh,
    "STRIDED_SLICE": StridedSlice,
}

__all__ = ["BACKENDS", "KERNELS", "RUNTIMES", "Kernel"]
