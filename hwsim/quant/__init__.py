"""Float-side uniform quantizer shared by ZOQO, its baselines and the attacks (docs/algorithms.md §1.3).

Why a separate package: the grid (R_min, R_max, b) is defined once, in float, before training; the
integer training loop then only ever touches codes. Rounding is half-away-from-zero (C `round`),
never Python's/torch's half-to-even.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hwsim.errors import WorkloadError

RANGE_MODES = ("minmax", "2x_minmax", "symmetric")


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C `round`: halves go away from zero (torch.round rounds half to even)."""
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def code_dtype(bits: int) -> torch.dtype:
    """Storage dtype for b-bit codes: uint8 up to 8 bits; int32 above (torch has no uint16 arithmetic)."""
    return torch.uint8 if bits <= 8 else torch.int32


@dataclass(frozen=True)
class QGroup:
    """One quantization group (a layer's tensor): uniform grid R_min + s·code, code ∈ {0..2^b−1}."""

    name: str
    r_min: float
    r_max: float
    bits: int

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 16:
            raise WorkloadError(f"quantizer {self.name}: bits {self.bits} out of range; use 1..16")
        if not self.r_max > self.r_min:
            raise WorkloadError(f"quantizer {self.name}: empty range [{self.r_min}, {self.r_max}]; "
                                "give a non-degenerate range (see zero_range in the LoRA options)")

    @property
    def qmax(self) -> int:
        return (1 << self.bits) - 1

    @property
    def scale(self) -> float:
        return (self.r_max - self.r_min) / self.qmax

    def steps(self, value: float) -> int:
        """max(⌊value / s⌋, 1): η → m and μ → k of eq. 3 / §1.4."""
        return max(int(math.floor(value / self.scale)), 1)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        c = round_half_away((x.double().clamp(self.r_min, self.r_max) - self.r_min) / self.scale)
        return c.clamp(0, self.qmax).to(code_dtype(self.bits))

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.r_min + self.scale * codes.double()).float()

    def fake_quant(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequantize(self.quantize(x))


def make_group(name: str, init: torch.Tensor, bits: int, range_mode: str = "minmax",
               range_factor: float = 2.0) -> QGroup:
    """Grid from the initial tensor: `minmax` [min, max]; `2x_minmax` [2·min, 2·max] (§1.9);
    `symmetric` ±factor·max|x|. A tensor that is all zero has no range: the caller must supply one."""
    lo, hi = float(init.min()), float(init.max())
    if range_mode == "minmax":
        r = (lo, hi)
    elif range_mode == "2x_minmax":
        r = (range_factor * lo, range_factor * hi)
    elif range_mode == "symmetric":
        a = range_factor * max(abs(lo), abs(hi))
        r = (-a, a)
    else:
        raise WorkloadError(f"quantizer {name}: range_mode {range_mode!r} unknown; use one of {RANGE_MODES}")
    if r[0] == r[1]:
        raise WorkloadError(f"quantizer {name}: initial tensor is constant ({lo}); its range is empty")
    return QGroup(name, r[0], r[1], bits)
