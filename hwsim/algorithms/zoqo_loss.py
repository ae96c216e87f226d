"""Losses on integer logits: float cross-entropy (the paper's only float work) and an integer
LUT surrogate that removes even that (docs/algorithms.md §1.7: only the order of ℓ+ and ℓ− matters).

LUT cross-entropy, per example, with logits z (int, scale s_z) and d_j = z_max − z_j ≥ 0:
    CE = s_z·(z_max − z_y) + ln Σ_j exp(−s_z·d_j)
    E[i]   = round(2^16·exp(−s_z·2^sh·i))            (exp table, index i = d >> sh, last entry 0)
    S      = Σ_j E[d_j >> sh]                          (≥ 2^16: the max term is E[0] = 2^16)
    p      = ⌊log2 S⌋, f = top 8 bits of S below the msb
    log2 S ≈ p + L[f]/2^F,   L[f] = round(2^F·log2(1 + f/256))
    CE_fx  = (z_max − z_y)·round(s_z·2^F) + ((p−16)·2^F + L[f])·round(ln2·2^F) >> F   (units 2^−F nats)
Tables are built once in float at setup; the per-step work is integer adds, shifts, compares, lookups.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hwsim.fixedpoint.transformer_ops import bit_length
from hwsim.trace import TensorInfo, Trace

LOSSES = ("float", "lut")


def cross_entropy_work(n: int, c: int, loss: str = "float") -> dict[tuple[str, str], int]:
    """Work of the cross-entropy of n examples over c logits, by (op class, format).

    Why one function: every trace that charges a loss (ZOQO, LoRA, OPT shapes-only, attacks, the
    memory comparison) must price it the same way. "float": dequantize, max-subtract, exp, sum,
    log, gather+subtract, mean ≈ 5 per logit + 3 per example, plus the max search (1 compare per
    logit). "lut": the integer surrogate of `LutLoss` — max search and the 17-step normalisation
    compares, 3 integer ops per logit + 8 per example, one exp lookup per logit and one log lookup
    per example.
    """
    if loss == "lut":
        return {("compare", "int32"): n * c + 17 * n, ("elementwise", "int32"): 3 * n * c + 8 * n,
                ("lookup", "int16"): n * c + n}
    return {("elementwise", "fp32"): 5 * n * c + 3 * n, ("compare", "fp32"): n * c}


def float_ce(logits: torch.Tensor, y: torch.Tensor, logit_scale: float, trace: Trace | None = None,
             tag: str = "") -> float:
    """Mean fp32 cross-entropy of dequantized integer logits (float work charged to the trace)."""
    z = logits.to(torch.float32) * logit_scale
    loss = float(torch.nn.functional.cross_entropy(z, y))
    if trace is not None:
        n, c = logits.shape
        zi = TensorInfo(f"logits{tag}", (n, c), 16, "output", "int16")
        li = TensorInfo(f"loss{tag}", (1,), 32, "scratch", "fp32")
        trace.alloc(li)
        trace.op("cross_entropy", f"loss{tag}", [zi], [li], cross_entropy_work(n, c))
    return loss


def pair_ce(logits: torch.Tensor, y: torch.Tensor, logit_scale: float) -> list[float]:
    """Each query's mean CE from stacked logits [Q, N, C]: bit-identical to `float_ce` per query.

    Why per query rather than one batched call over [N, C, Q]: the batched kernel sums in another
    order and differed from `float_ce` (the traced step's loss) in the last ulp for most batches, so
    a near-tie could flip σ between a traced and an untraced step. Two contiguous calls are also faster.
    """
    z = logits.to(torch.float32) * logit_scale
    return [float(torch.nn.functional.cross_entropy(z[q], y)) for q in range(z.shape[0])]


@dataclass
class LutLoss:
    """Integer cross-entropy surrogate built for one logit scale."""

    exp_table: torch.Tensor     # int64 values < 2^17
    log_table: torch.Tensor     # int64, 256 entries
    shift: int
    frac: int
    c_logit: int
    c_ln2: int

    @classmethod
    def build(cls, logit_scale: float, *, entries: int = 256, frac: int = 16) -> "LutLoss":
        # index step 2^sh·s_z chosen so `entries` cover exp down to 2^-17 (≈ 11.8 nats)
        span = 17 * math.log(2) / logit_scale
        sh = max(0, int(math.ceil(math.log2(span / (entries - 1)))))
        e = [int(math.floor((1 << 16) * math.exp(-logit_scale * (i << sh)) + 0.5)) for i in range(entries)]
        e[-1] = 0
        lg = [int(math.floor((1 << frac) * math.log2(1 + f / 256) + 0.5)) for f in range(256)]
        return cls(torch.tensor(e, dtype=torch.int64), torch.tensor(lg, dtype=torch.int64), sh, frac,
                   int(round(logit_scale * (1 << frac))), int(round(math.log(2) * (1 << frac))))

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, trace: Trace | None = None, tag: str = "") -> int:
        """Σ over the batch of the fixed-point CE (an int; order-equivalent to the mean CE)."""
        z = logits.to(torch.int64)
        zmax = z.max(dim=1, keepdim=True).values
        d = zmax - z
        idx = (d >> self.shift).clamp(max=self.exp_table.numel() - 1)
        s = self.exp_table[idx].sum(dim=1)                        # ≥ 2^16
        p = _floor_log2(s)
        f = ((s << 8) >> p) & 0xFF                                  # 8 bits below the msb
        log2_fx = ((p - 16) << self.frac) + self.log_table[f]
        lse = (log2_fx * self.c_ln2) >> self.frac
        ce = (zmax.squeeze(1) - z.gather(1, y.view(-1, 1)).squeeze(1)) * self.c_logit + lse
        if trace is not None:
            n, c = z.shape
            zi = TensorInfo(f"logits{tag}", (n, c), 16, "output", "int16")
            li = TensorInfo(f"loss{tag}", (1,), 64, "scratch", "int64")
            trace.alloc(li)
            trace.op("cross_entropy_lut", f"loss{tag}", [zi], [li], cross_entropy_work(n, c, "lut"))
        return int(ce.sum())


    def pair(self, logits: torch.Tensor, y: torch.Tensor) -> list[int]:
        """`self(logits[q], y)` for every query q of stacked logits [Q, N, C] in one pass (same integers)."""
        z = logits.to(torch.int64)
        zmax = z.max(dim=-1, keepdim=True).values
        idx = ((zmax - z) >> self.shift).clamp_(max=self.exp_table.numel() - 1)
        s = self.exp_table[idx].sum(dim=-1)                       # [Q, N], ≥ 2^16
        p = _floor_log2(s)
        f = ((s << 8) >> p) & 0xFF
        lse = ((((p - 16) << self.frac) + self.log_table[f]) * self.c_ln2) >> self.frac
        zy = z.gather(-1, y.view(1, -1, 1).expand(z.shape[0], -1, 1)).squeeze(-1)
        ce = (zmax.squeeze(-1) - zy) * self.c_logit + lse
        return ce.sum(dim=-1).tolist()


def _floor_log2(s: torch.Tensor) -> torch.Tensor:
    """⌊log2 s⌋ for positive int64 (a count-leading-zeros: integer compares and shifts only)."""
    return bit_length(s) - 1
