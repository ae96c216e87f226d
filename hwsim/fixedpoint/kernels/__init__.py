"""TFLite integer kernels (int8 / uint8 / 16x8), NHWC like TFLite, run on stacked batches.

Why: one prepared `Kernel` per op reproduces the reference runtime's integer arithmetic exactly
(docs/algorithms.md §5); `KERNELS` maps a TFLite builtin op name to its kernel class.
`runtime` ∈ RUNTIMES selects the rounding of FULLY_CONNECTED (the only op where the two
reference runtimes differ for these models).

A kernel module is imported when one of its ops is first looked up (`KERNELS[name]`, or the class
name as an attribute of this package): `hwsim emulate` is timed as a whole process, and a model
using three op types should not pay for compiling all nine kernel modules.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from hwsim.fixedpoint.kernels.base import BACKENDS, RUNTIMES, Kernel

#: TFLite builtin op name → (module in this package, kernel class name)
_KERNEL_SOURCES: dict[str, tuple[str, str]] = {
    "CONV_2D": ("conv", "Conv2D"),
    "DEPTHWISE_CONV_2D": ("conv", "DepthwiseConv2D"),
    "FULLY_CONNECTED": ("conv", "FullyConnected"),
    "ADD": ("elementwise", "Add"),
    "SUB": ("elementwise", "Sub"),
    "AVERAGE_POOL_2D": ("pool", "AveragePool2D"),
    "MAX_POOL_2D": ("pool", "MaxPool2D"),
    "RESHAPE": ("shape_ops", "Reshape"),
    "SQUEEZE": ("shape_ops", "Reshape"),
    "EXPAND_DIMS": ("shape_ops", "Reshape"),
    "SOFTMAX": ("softmax", "Softmax"),
    "QUANTIZE": ("quantize", "Quantize"),
    "DEQUANTIZE": ("quantize", "Dequantize"),
    "MUL": ("misc", "Mul"),
    "RELU": ("misc", "Relu"),
    "RELU6": ("misc", "Relu6"),
    "PAD": ("misc", "Pad"),
    "PADV2": ("misc", "Pad"),
    "CONCATENATION": ("misc", "Concatenation"),
    "MEAN": ("misc", "Mean"),
    "LOGISTIC": ("misc", "Logistic"),
    "TANH": ("misc", "Tanh"),
    "STRIDED_SLICE": ("shape_ops", "StridedSlice"),
}

#: kernel class name → module, for `from hwsim.fixedpoint.kernels import Conv2D`
_CLASS_MODULES = {cls: mod for mod, cls in _KERNEL_SOURCES.values()}


def _load(module: str, cls: str) -> type[Kernel]:
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


class _KernelTable(Mapping):
    """Read-only op name → kernel class mapping that imports a kernel module on first lookup."""

    def __getitem__(self, name: str) -> type[Kernel]:
        return _load(*_KERNEL_SOURCES[name])

    def __contains__(self, name: object) -> bool:
        return name in _KERNEL_SOURCES

    def __iter__(self) -> Iterator[str]:
        return iter(_KERNEL_SOURCES)

    def __len__(self) -> int:
        return len(_KERNEL_SOURCES)

    def __repr__(self) -> str:
        return f"KERNELS({', '.join(_KERNEL_SOURCES)})"


KERNELS: Mapping[str, type[Kernel]] = _KernelTable()


def __getattr__(name: str) -> Any:
    if name in _CLASS_MODULES:
        return _load(_CLASS_MODULES[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKENDS", "KERNELS", "RUNTIMES", "Kernel"]
