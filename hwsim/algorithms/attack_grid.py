"""The b-bit grid of the data range [lb, ub] that ZOQO attacks live on (docs/algorithms.md §1.3, §1.11).

Why: in the ZOQO environment the adversarial input is held as integer codes c ∈ {0..2^b−1} with
x = lb + s·c, s = (ub−lb)/(2^b−1); ε and δ become integer numbers of grid steps, so every attack
update is an integer code addition and the ℓ∞ projection is an integer clamp. This module holds
the (tiny) integer arithmetic for that: snapping, quantizing, re-coding between bit widths.
"""
from __future__ import annotations

import math

import torch

from hwsim.errors import WorkloadError

#: what to do when the requested radius is below one grid step (ε < s) [A, §1.11]
SMALL_EPS_RULES = ("one_step", "floor")


def grid_step(lb: float, ub: float, bits: int) -> float:
    """s = (ub − lb) / (2^b − 1)."""
    if not ub > lb:
        raise WorkloadError(f"data range must have ub > lb, got lb={lb}, ub={ub}")
    if bits < 1:
        raise WorkloadError(f"bit width must be >= 1, got {bits}")
    return (ub - lb) / (2 ** bits - 1)


def snap_steps(value: float, step: float, small_rule: str = "one_step") -> int:
    """Number of grid steps m for a radius/step `value`: ε_q = m·s.

    "one_step" (default, the §1.11 reading): m = max(⌊ε/s⌋, 1) — a sub-step ε becomes one step,
    i.e. a budget ε_q = s > ε. "floor": m = ⌊ε/s⌋, possibly 0 (the attack then cannot move).
    A tiny tolerance absorbs float error so that ε = k·s exactly gives m = k.
    """
    if small_rule not in SMALL_EPS_RULES:
        raise WorkloadError(f"small-eps rule {small_rule!r} unknown; use one of {SMALL_EPS_RULES}")
    if value < 0:
        raise WorkloadError(f"epsilon/delta must be >= 0, got {value}")
    m = math.floor(value / step + 1e-9)
    return max(m, 1) if small_rule == "one_step" else m


def round_half_away(t: torch.Tensor) -> torch.Tensor:
    """C `round` (half away from zero) — torch.round is half-to-even (§1.3)."""
    return torch.sign(t) * torch.floor(t.abs() + 0.5)


def quantize_codes(x: torch.Tensor, lb: float, ub: float, bits: int) -> torch.Tensor:
    """code(x) = round((clip(x, lb, ub) − lb)/s) as int64, half away from zero."""
    s = grid_step(lb, ub, bits)
    q = round_half_away((x.to(torch.float64).clamp(lb, ub) - lb) / s)
    return q.clamp(0, 2 ** bits - 1).to(torch.int64)


def dequantize_codes(codes: torch.Tensor, lb: float, ub: float, bits: int) -> torch.Tensor:
    """x = lb + s·c (float32; used only to *report* a grid point or feed an FP model)."""
    s = grid_step(lb, ub, bits)
    return (lb + s * codes.to(torch.float64)).to(torch.float32)


def recode(codes: torch.Tensor, from_bits: int, to_bits: int) -> torch.Tensor:
    """Integer re-coding of grid codes between widths on the same [lb, ub]:
    c' = round(c·(2^to−1)/(2^from−1)), half up (codes are ≥ 0). Exact when (2^from−1) divides
    (2^to−1) (e.g. 4 → 8 bits: c' = 17c)."""
    a, b = 2 ** to_bits - 1, 2 ** from_bits - 1
    c = codes.to(torch.int64)
    return torch.div(2 * c * a + b, 2 * b, rounding_mode="floor")
