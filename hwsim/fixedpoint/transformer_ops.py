"""Integer kernels for a small transformer: fused fixed-point requantization, I-BERT-style
LayerNorm (integer mean/variance, Newton integer square root, fixed-point reciprocal) and the
TFLM reference int8 softmax on attention logits.

Why a module of its own: the ZOQO LoRA workload runs its two loss queries through an integer
transformer (docs/algorithms.md §1.7, §1.9); these are the integer building blocks it needs beyond
the GEMM (`hwsim.fixedpoint.intops.int_matmul`). Every function is exact integer arithmetic on int64
torch tensors (the host emulation of int32 data with int64 multiply-accumulate, as SMLAL/SMULL do on
a Cortex-M); nothing here touches float at run time. Float appears only in the setup helpers
(`fixed_point_terms`), which turn real multipliers into integers once, before training.

Rounding (stated once, used everywhere):
- `fused_requant`: y = ⌊(Σ mᵢ·tᵢ + c + 2^(S−1)) / 2^S⌋ — round half up (ties toward +∞), one rounding;
- LayerNorm mean: ⌊(Σh + ⌊d/2⌋) / d⌋ (half up); variance: ⌊Σc² / d⌋ (floor);
  square root: ⌊√v⌋ exactly (integer Newton); reciprocal: ⌊2^R / std⌋ (floor);
- softmax: gemmlowp/TFLM reference (its own roundings, ported bit-exactly in `hwsim.fixedpoint.gemmlowp`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hwsim.errors import HwsimError
from hwsim.fixedpoint.rounding import round_half_away
from hwsim.fixedpoint.gemmlowp import calculate_input_radius, preprocess_softmax_scaling
from hwsim.fixedpoint.kernels.softmax import _SCALED_DIFF_INTEGER_BITS, softmax_rows

INT8 = (-128, 127)
UINT8 = (0, 255)
INT16 = (-(1 << 15), (1 << 15) - 1)
#: largest multiplier magnitude (a signed 32-bit register operand)
MULT_MAX = (1 << 31) - 1


# ---- fused fixed-point requantization ----------------------------------------------------------
def fixed_point_terms(reals: list[float], bounds: list[int], *, const_real: float = 0.0,
                      max_shift: int = 40) -> tuple[list[int], int, int]:
    """Integers (m₁..m_k, c, S) with mᵢ/2^S ≈ realᵢ and c/2^S ≈ const_real (setup, float).

    S is the largest shift (≤ max_shift) with every |mᵢ| ≤ 2^31−1 (a 32-bit operand) and
    Σ |mᵢ|·boundᵢ + |c| + 2^S < 2^62 (the int64 accumulator cannot overflow); `bounds` are upper
    bounds on |tᵢ|. Multipliers are rounded half away from zero.
    """
    if len(reals) != len(bounds):
        raise HwsimError("fixed_point_terms: one bound per multiplier")
    top = max([abs(r) for r in reals] + [1e-300])
    # 32-bit multipliers: |real|·2^S ≤ 2^31 − 1
    s_mult = int(math.floor(math.log2(MULT_MAX / top)))
    s = min(max_shift, s_mult)
    while s > 1:
        ms = [_round_away(r * 2.0 ** s) for r in reals]
        c = _round_away(const_real * 2.0 ** s)
        total = sum(abs(m) * b for m, b in zip(ms, bounds)) + abs(c) + (1 << s)
        if total < (1 << 62) and all(abs(m) <= MULT_MAX for m in ms):
            return ms, c, s
        s -= 1
    raise HwsimError(f"fixed_point_terms: multipliers {reals} with bounds {bounds} cannot be made to fit int64")


def _round_away(v: float) -> int:
    """C round (half away from zero) of a float, as a Python int."""
    return int(round_half_away(float(v)))


def fused_requant(terms: list[tuple[torch.Tensor, torch.Tensor | int]], const: torch.Tensor | int,
                  shift: int, lo: int, hi: int) -> tuple[torch.Tensor, int]:
    """clamp(⌊(Σ mᵢ·tᵢ + const + 2^(S−1)) / 2^S⌋, lo, hi) → (int64 result, number saturated).

    One rounding (half up) for any number of integer terms: a GEMM accumulator, a row sum for an
    asymmetric grid's R_min, a residual on another scale, a bias. Multipliers broadcast (per channel).
    """
    if shift < 1:
        raise HwsimError(f"fused_requant: shift {shift} must be ≥ 1")
    acc = None
    for t, m in terms:
        v = t.to(torch.int64) * m
        acc = v if acc is None else acc.add_(v)
    if acc is None:
        raise HwsimError("fused_requant: no terms")
    acc = acc + (torch.as_tensor(const, dtype=torch.int64) + (1 << (shift - 1)))
    y = acc >> shift
    sat = int(((y < lo) | (y > hi)).sum())
    return y.clamp_(lo, hi), sat


# ---- integer square root and LayerNorm ----------------------------------------------------------
def bit_length(v: torch.Tensor) -> torch.Tensor:
    """Number of bits of non-negative int64 values (0 for 0), by a binary search on shifts (a CLZ)."""
    n = torch.zeros_like(v)
    x = v.clone()
    for b in (32, 16, 8, 4, 2, 1):
        big = x >= (1 << b)
        x = torch.where(big, x >> b, x)
        n += big.to(torch.int64) * b
    return n + (x > 0).to(torch.int64)


def isqrt_newton(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """⌊√v⌋ for non-negative int64 v by integer Newton iterations (I-BERT's i_sqrt).

    x₀ = 2^⌈bits(v)/2⌉ ≥ √v; xₖ₊₁ = ⌊(xₖ + ⌊v/xₖ⌋)/2⌋ while it decreases. Returns (root, number of
    iterations run per element) — the latter is what the trace charges.
    """
    v = v.to(torch.int64)
    if bool((v < 0).any()):
        raise HwsimError("isqrt_newton: negative input")
    x = torch.ones_like(v) << ((bit_length(v) + 1) >> 1)
    iters = torch.zeros_like(v)
    active = v > 0
    while bool(active.any()):
        y = (x + torch.div(v, x, rounding_mode="floor")) >> 1
        iters += active.to(torch.int64)
        done = y >= x
        x = torch.where(active & ~done, y, x)
        active = active & ~done
    return torch.where(v > 0, x, torch.zeros_like(v)), iters


@dataclass(frozen=True)
class LayerNormParams:
    """Integer LayerNorm constants (int32 each): G = round(γ·2^F/s_out), Bq = round(β·2^F/s_out).

    y = ⌊(n·G + Bq·2^R + 2^(S−1)) / 2^S⌋ with n = c·⌊2^R/std⌋ and S = R + F.
    """

    gamma_q: torch.Tensor   # int64 [d]
    beta_q: torch.Tensor    # int64 [d]
    recip_bits: int         # R
    frac_bits: int          # F

    @classmethod
    def build(cls, gamma: torch.Tensor, beta: torch.Tensor, s_out: float, *, recip_bits: int = 24,
              frac_bits: int = 16) -> "LayerNormParams":
        g = [_round_away(float(v) * 2.0 ** frac_bits / s_out) for v in gamma.double().tolist()]
        b = [_round_away(float(v) * 2.0 ** frac_bits / s_out) for v in beta.double().tolist()]
        for name, vals in (("gamma", g), ("beta", b)):
            if max(abs(v) for v in vals) > MULT_MAX:
                raise HwsimError(f"layernorm: {name}/s_out = {max(abs(v) for v in vals) / 2 ** frac_bits:.4g} "
                                 f"does not fit int32 at {frac_bits} fraction bits; lower frac_bits")
        return cls(torch.tensor(g, dtype=torch.int64), torch.tensor(b, dtype=torch.int64), recip_bits, frac_bits)


def layernorm_int(h: torch.Tensor, p: LayerNormParams, lo: int = INT8[0], hi: int = INT8[1]
                  ) -> tuple[torch.Tensor, int, int]:
    """Integer LayerNorm over the last axis (ε dropped; the input scale cancels).

    mean = ⌊(Σh + ⌊d/2⌋)/d⌋, c = h − mean, var = ⌊Σc²/d⌋, std = max(⌊√var⌋, 1) (Newton),
    inv = ⌊2^R/std⌋ (one division per row), n = c·inv (≈ 2^R·c/std),
    y = clamp(⌊(n·G + Bq·2^R + 2^(S−1)) / 2^S⌋), S = R + F.
    Returns (y int64, saturations, total Newton iterations).
    """
    d = h.shape[-1]
    h = h.to(torch.int64)
    mean = torch.div(h.sum(-1, keepdim=True) + d // 2, d, rounding_mode="floor")
    c = h - mean
    var = torch.div((c * c).sum(-1, keepdim=True), d, rounding_mode="floor")
    root, iters = isqrt_newton(var)
    std = root.clamp(min=1)
    inv = torch.div(torch.full_like(std, 1 << p.recip_bits), std, rounding_mode="floor")
    n = c * inv
    y, sat = fused_requant([(n, p.gamma_q)], p.beta_q << p.recip_bits, p.recip_bits + p.frac_bits, lo, hi)
    return y, sat, int(iters.sum())


# ---- softmax (TFLM reference int8, gemmlowp fixed point) ------------------------------------------
@dataclass(frozen=True)
class SoftmaxParams:
    """Prepare-time constants of the TFLM int8 softmax for one input scale (β = 1)."""

    mult: int
    left_shift: int
    diff_min: int

    @classmethod
    def build(cls, s_in: float, beta: float = 1.0) -> "SoftmaxParams":
        m, ls = preprocess_softmax_scaling(float(np.float32(beta)), float(np.float32(s_in)),
                                           _SCALED_DIFF_INTEGER_BITS)
        return cls(m, ls, -calculate_input_radius(_SCALED_DIFF_INTEGER_BITS, ls))


def softmax_int8(x: torch.Tensor, p: SoftmaxParams) -> torch.Tensor:
    """TFLM/LiteRT-reference int8 softmax over the last axis: int8 in → int8 out (Z = −128, S = 1/256).

    The integer algorithm of `hwsim.fixedpoint.kernels.softmax.softmax_rows` (exp_on_negative_values
    in Q5.26 → Q0.31, Q12.19 sum, Newton reciprocal), on a torch tensor of any leading shape.
    """
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).cpu().numpy().astype(np.int64)
    y, _ = softmax_rows(rows, p.mult, p.left_shift, p.diff_min, 8, -128, 127)
    return torch.from_numpy(y.reshape(shape)).to(torch.int64)
