"""Discretized-Gaussian probe noise sampled with integer arithmetic only (docs/algorithms.md §1.4).

Why: ZOQO's perturbation must be an integer number of grid steps drawn without float work. The
probability table is computed once, in float, before training and stored as uint64 thresholds
T[i] = round(2^32·Σ_{j≤i} p_j); a uint32 draw r maps to the smallest i with r < T[i].

The integer PRNG is counter-based (so a step's noise can be regenerated from (seed, step, group)
instead of stored, MeZO-style): r = H(H(counter ⊕ k1) + k2) with H = "lowbias32"
(x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16, all mod 2^32).
It runs in int64 torch ops: values stay in [0, 2^32), products wrap mod 2^64, whose low 32 bits are
exactly the mod-2^32 product.
"""
from __future__ import annotations

import math

import torch

from hwsim.errors import WorkloadError

MASK32 = 0xFFFFFFFF
_M1, _M2 = 0x7FEB352D, 0x846CA68B
NOISE_DISTS = ("gaussian", "uniform")


def noise_steps(mu: float, scale: float, rounding: str = "floor") -> int:
    """k = max(⌊μ/s⌋, 1) (default) or max(⌈μ/s⌉, 1) — an [A] choice of §1.12."""
    if rounding == "floor":
        return max(int(math.floor(mu / scale)), 1)
    if rounding == "ceil":
        return max(int(math.ceil(mu / scale)), 1)
    raise WorkloadError(f"zoqo: k_rounding {rounding!r} unknown; use floor or ceil")


def probabilities(k: int, sigma_steps: float, dist: str = "gaussian") -> list[float]:
    """p_j for j = −k..k: normal PDF at the grid levels, normalized (or uniform on B)."""
    if dist == "uniform":
        return [1.0 / (2 * k + 1)] * (2 * k + 1)
    if dist != "gaussian":
        raise WorkloadError(f"zoqo: noise {dist!r} unknown; use one of {NOISE_DISTS}")
    if not sigma_steps > 0:
        raise WorkloadError(f"zoqo: sigma_steps must be > 0 (got {sigma_steps})")
    w = [math.exp(-(j * j) / (2.0 * sigma_steps * sigma_steps)) for j in range(-k, k + 1)]
    total = math.fsum(w)
    return [v / total for v in w]


def cdf_table(k: int, sigma_steps: float, dist: str = "gaussian") -> torch.Tensor:
    """uint64 thresholds (int64 tensor) of the 2k+1 outcomes; the last entry is exactly 2^32."""
    p = probabilities(k, sigma_steps, dist)
    acc, out = 0.0, []
    for v in p:
        acc += v
        out.append(int(math.floor(acc * 2.0 ** 32 + 0.5)))
    out[-1] = 1 << 32
    for i in range(1, len(out)):   # keep the table monotone after rounding
        out[i] = max(out[i], out[i - 1])
    return torch.tensor(out, dtype=torch.int64)


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * _M1) & MASK32
    x = x ^ (x >> 15)
    x = (x * _M2) & MASK32
    return x ^ (x >> 16)


def hash32_int(x: int) -> int:
    x &= MASK32
    x ^= x >> 16
    x = (x * _M1) & MASK32
    x ^= x >> 15
    x = (x * _M2) & MASK32
    return x ^ (x >> 16)


def stream_keys(seed: int, step: int, group: int) -> tuple[int, int]:
    """Two 32-bit keys for one (seed, step, group) stream (integer mixing only)."""
    k1 = hash32_int(hash32_int(seed ^ 0x9E3779B9) ^ (step & MASK32))
    k1 = hash32_int(k1 ^ (group * 0x85EBCA6B & MASK32))
    k2 = hash32_int(k1 ^ 0xC2B2AE35)
    return k1, k2


def counter_base(n: int, offset: int = 0) -> torch.Tensor:
    """H(i) for counters i = offset..offset+n−1 — step-independent, so it is computed once."""
    return hash32(torch.arange(offset, offset + n, dtype=torch.int64) & MASK32)


def uniform32(seed: int, step: int, group: int, n: int, base: torch.Tensor | None = None) -> torch.Tensor:
    """n uint32 draws (int64 tensor) of stream (seed, step, group): r_i = H(H(i) ⊕ k1(seed, step, group)).

    H is a bijection on 32-bit words, so draws of one stream are pairwise distinct words mapped
    through a second mixing round; `base` = counter_base(n) may be passed in to skip the first round.
    """
    k1, _ = stream_keys(seed, step, group)
    if base is None:
        base = counter_base(n)
    return hash32(base ^ k1)


def sample_steps(table: torch.Tensor, r: torch.Tensor, k: int) -> torch.Tensor:
    """j = (smallest i with r < T[i]) − k, as int8 (k ≤ 127)."""
    return (torch.searchsorted(table, r, right=True) - k).to(torch.int8)


class GroupedSampler:
    """Inverse-CDF sampling for many groups (each with its own table) in one search.

    Why: one `searchsorted` per group costs a kernel launch each. Tables are shifted into disjoint
    integer bands (group g's thresholds + g·2^33) and each draw is shifted into its group's band, so a
    single search over the concatenated table returns global indices; subtracting the group's
    (table start + k_g) gives j. Pure integer arithmetic; identical results to per-group search.
    """

    def __init__(self, tables: list[torch.Tensor], ks: list[int], sizes: list[int]) -> None:
        starts, acc = [], 0
        for t in tables:
            starts.append(acc)
            acc += t.numel()
        self.table = torch.cat([t + (g << 33) for g, t in enumerate(tables)])
        self.offset = torch.cat([torch.full((n,), g << 33, dtype=torch.int64) for g, n in enumerate(sizes)])
        self.sub = torch.cat([torch.full((n,), s + k, dtype=torch.int64) for s, k, n in zip(starts, ks, sizes)])

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        idx = torch.searchsorted(self.table, r + self.offset, right=True)
        return idx - self.sub
