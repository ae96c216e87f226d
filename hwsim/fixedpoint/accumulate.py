"""Accumulators of explicit width with an overflow policy (wrap | saturate | raise).

Why: real MAC arrays accumulate in 16/24/32/48-bit registers; what happens at overflow is a
property of the target (`numerics.accumulator_bits`, `numerics.overflow`). Exact int64 sums come
from `intops`; this module narrows them to the accumulator and *counts* the elements that
overflowed, so ops can put the count in `OpEvent.saturations`.

Two semantics are offered:
- `narrow(...)` applies the policy to a finished (exact) sum. For ``wrap`` this equals wrapping
  after every addition (modular arithmetic); for ``saturate`` it equals a saturating accumulator
  only while no partial sum leaves the range (a per-step saturating adder is order-dependent).
- `accumulate_sequential(...)` models the per-step adder exactly, in a given order, for when the
  order-dependent saturating behaviour matters (small tensors: it loops over the reduced axis).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hwsim.errors import HwsimError

OVERFLOW_POLICIES = ("wrap", "saturate", "raise")


class AccumulatorOverflow(HwsimError):
    """An accumulator with policy ``raise`` overflowed."""

    def __init__(self, op: str, bits: int, value: int, count: int = 1):
        super().__init__(f"accumulator overflow in op {op or '<unnamed>'!r}: value {value} does not "
                         f"fit a signed {bits}-bit accumulator [{-(1 << (bits - 1))}, "
                         f"{(1 << (bits - 1)) - 1}] ({count} element(s)); widen the accumulator, "
                         f"or choose overflow: wrap | saturate")
        self.op = op
        self.bits = bits
        self.value = value
        self.count = count


@dataclass(frozen=True)
class AccumulatorSpec:
    """Width (2..64 bits, signed two's complement) and overflow policy of an accumulator."""

    bits: int = 32
    policy: str = "wrap"

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 64:
            raise HwsimError(f"accumulator bits must lie in 2..64, got {self.bits}")
        if self.policy not in OVERFLOW_POLICIES:
            raise HwsimError(f"unknown overflow policy {self.policy!r}; use wrap | saturate | raise")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def fmt(self) -> str:
        """Numeric-format name for trace events (``int32``, ``int48``...)."""
        return f"int{self.bits}"


def _wrap(x, bits: int):
    if bits == 64:
        return x
    mask = (1 << bits) - 1
    half = 1 << (bits - 1)
    low = x & mask  # two's complement bits, in [0, 2^bits)
    if isinstance(x, torch.Tensor):
        return torch.where(low >= half, low - (1 << bits), low)
    return np.where(low >= half, low - (1 << bits), low)


def narrow(acc, spec: AccumulatorSpec | int, policy: str | None = None, *, op: str = ""):
    """Fit exact int64 sums into the accumulator; returns (values int64, overflow count).

    The count is the number of elements outside the accumulator range (saturated, wrapped, or —
    for ``raise`` — 0 because it raises `AccumulatorOverflow` naming op, width and first value).
    Works on torch and numpy int64 arrays.
    """
    if isinstance(spec, int):
        spec = AccumulatorSpec(spec, policy or "wrap")
    elif policy is not None:
        spec = AccumulatorSpec(spec.bits, policy)
    is_torch = isinstance(acc, torch.Tensor)
    if not is_torch:
        acc = np.asarray(acc, dtype=np.int64)
    if spec.bits == 64:
        return acc, 0
    if is_torch and acc.device.type == "meta":
        return acc, 0
    out_of_range = (acc < spec.min) | (acc > spec.max)
    count = int(out_of_range.sum())
    if count == 0:
        return acc, 0
    if spec.policy == "raise":
        first = acc[out_of_range].reshape(-1)[0]
        raise AccumulatorOverflow(op, spec.bits, int(first), count)
    if spec.policy == "saturate":
        if is_torch:
            return torch.clamp(acc, spec.min, spec.max), count
        return np.clip(acc, spec.min, spec.max), count
    return _wrap(acc, spec.bits), count


def add(acc, x, spec: AccumulatorSpec, *, op: str = ""):
    """One accumulator step acc + x (both already in range), per policy; returns (values, count)."""
    return narrow(acc + x, spec, op=op)


def accumulate_sequential(terms, spec: AccumulatorSpec, *, axis: int = -1, init=0, op: str = ""):
    """Sum ``terms`` along ``axis`` one element at a time through the accumulator.

    Models a per-step wrapping/saturating adder in index order. Returns (sums, overflow events),
    where each step that leaves the range counts once.
    """
    is_torch = isinstance(terms, torch.Tensor)
    t = terms.to(torch.int64) if is_torch else np.asarray(terms, dtype=np.int64)
    t = t.movedim(axis, 0) if is_torch else np.moveaxis(t, axis, 0)
    shape = tuple(t.shape[1:])
    if is_torch:
        acc = torch.full(shape, int(init), dtype=torch.int64, device=t.device)
    else:
        acc = np.full(shape, int(init), dtype=np.int64)
    total = 0
    for i in range(t.shape[0]):
        acc, c = add(acc, t[i], spec, op=op)
        total += c
    return acc, total


def matmul_accumulate(a: torch.Tensor, b: torch.Tensor, spec: AccumulatorSpec, *, op: str = ""):
    """Exact int_matmul narrowed to the accumulator; returns (int64 values, overflow count)."""
    from hwsim.fixedpoint.intops import int_matmul

    return narrow(int_matmul(a, b), spec, op=op)
