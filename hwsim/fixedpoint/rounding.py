"""Vectorised integer rounding (torch int64 and numpy int64) and generic requantization.

Why: bit-exact emulation fails on rounding details (ties, negative values, shift bounds), and
Python's ``round`` / ``numpy.rint`` round half to even. Every rounding in hwsim goes through these
functions so the mode is explicit. Modes:

- ``half_away``: round to nearest, ties away from zero (C ``round``, TFLite ``RoundingDivideByPOT``)
- ``half_up``: round to nearest, ties toward +inf (gemmlowp SRDHM, TFLite single rounding)
- ``half_even``: round to nearest, ties to even (IEEE default)
- ``floor``: toward -inf (an arithmetic right shift)
- ``trunc``: toward zero (C integer division)
- ``stochastic``: round up with probability remainder/divisor; seeded, reproducible

TFLite's gemmlowp / QuantizeMultiplier primitives live in ``hwsim.fixedpoint.gemmlowp``; the
``requantize`` here is the generic one the training workloads use.
"""
from __future__ import annotations

import math
from typing import Sequence, TypeVar, Union

import numpy as np
import torch

from hwsim.errors import HwsimError

ROUNDING_MODES = ("half_away", "half_up", "half_even", "floor", "trunc", "stochastic")

IntArray = TypeVar("IntArray", torch.Tensor, np.ndarray)
Seed = Union[int, torch.Generator, np.random.Generator, None]


def _check_mode(mode: str) -> None:
    if mode not in ROUNDING_MODES:
        raise HwsimError(f"unknown rounding mode {mode!r}; use one of {', '.join(ROUNDING_MODES)}")


# ---- float -> integer-valued float ----------------------------------------------------------
def round_half_away(x):
    """Round to nearest, ties away from zero (C ``round``), for torch tensors, numpy arrays, floats.

    Uses trunc + exact fractional part, so 0.49999999999999994 rounds to 0 (``floor(x+0.5)`` fails).
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            return x.clone()
        t = torch.trunc(x)
        frac = x - t
        return t + torch.where(frac >= 0.5, 1.0, 0.0).to(x.dtype) - torch.where(
            frac <= -0.5, 1.0, 0.0).to(x.dtype)
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            return x.copy()
        t = np.trunc(x)
        frac = x - t
        return t + (frac >= 0.5).astype(x.dtype) - (frac <= -0.5).astype(x.dtype)
    xf = float(x)
    t = float(math.trunc(xf)) if math.isfinite(xf) else xf
    frac = xf - t
    return t + (1.0 if frac >= 0.5 else 0.0) - (1.0 if frac <= -0.5 else 0.0)


def round_float(x: torch.Tensor, mode: str = "half_away", *, seed: Seed = None) -> torch.Tensor:
    """Round a float tensor to integer values (still float) with an explicit mode."""
    _check_mode(mode)
    if mode == "half_away":
        return round_half_away(x)
    if mode == "half_even":
        return torch.round(x)  # torch.round is round-half-to-even
    if mode == "floor":
        return torch.floor(x)
    if mode == "trunc":
        return torch.trunc(x)
    fl = torch.floor(x)
    frac = x - fl  # exact, in [0, 1)
    if mode == "half_up":
        return fl + (frac >= 0.5).to(x.dtype)
    gen = _torch_generator(seed, x.device)
    u = torch.rand(x.shape, generator=gen, dtype=torch.float64, device=x.device)
    return fl + (u < frac.double()).to(x.dtype)


# ---- random sources ---------------------------------------------------------------------------
def _torch_generator(seed: Seed, device: torch.device | str = "cpu") -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        raise HwsimError("stochastic rounding needs a seed (int) or a torch.Generator for "
                         "reproducibility")
    return torch.Generator(device=device).manual_seed(int(seed))


def _np_generator(seed: Seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise HwsimError("stochastic rounding needs a seed (int) or a numpy Generator")
    return np.random.default_rng(int(seed))


def _uniform_below(x, bound, seed: Seed):
    """Uniform integers in [0, bound) (bound ≥ 1, broadcastable to x), same library as x.

    Drawn as 62 random bits reduced modulo bound (bias ≤ bound / 2^62, negligible).
    """
    if isinstance(x, torch.Tensor):
        gen = _torch_generator(seed, x.device)
        r = torch.randint(0, 2 ** 62, x.shape, generator=gen, dtype=torch.int64, device=x.device)
        return torch.remainder(r, bound)
    rng = _np_generator(seed)
    r = rng.integers(0, 2 ** 62, size=np.shape(x), dtype=np.int64)
    return np.remainder(r, bound)


# ---- integer division with rounding ---------------------------------------------------------
def _as_int64(x):
    if isinstance(x, torch.Tensor):
        return x if x.dtype == torch.int64 else x.to(torch.int64)
    arr = np.asarray(x)
    if arr.dtype != np.int64:
        if not np.issubdtype(arr.dtype, np.integer):
            raise HwsimError(f"integer rounding expects an integer array, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    return arr


def _where(x, cond, a, b):
    return torch.where(cond, a, b) if isinstance(x, torch.Tensor) else np.where(cond, a, b)


def _apply_mode(x, q, r, d, mode: str, seed: Seed):
    """Given floor quotient q and remainder 0 ≤ r < d of x/d, round per mode (int64 throughout)."""
    rest = d - r  # distance to the next multiple; compare r with rest to avoid 2r overflowing
    if mode == "floor":
        return q
    if mode == "trunc":
        return q + ((x < 0) & (r != 0))
    if mode == "half_up":
        return q + (r >= rest)
    if mode == "half_away":
        return q + _where(x, x >= 0, r >= rest, r > rest)
    if mode == "half_even":
        return q + ((r > rest) | ((r == rest) & ((q & 1) == 1)))
    return q + (_uniform_below(x, d, seed) < r)


def div_pow2(x: IntArray, e: int | IntArray, mode: str = "half_away", *,
             seed: Seed = None) -> IntArray:
    """Round(x / 2^e) for int64 x (torch or numpy), 0 ≤ e ≤ 62 (scalar or broadcastable array).

    Exact for every int64 x, including INT64_MIN. ``seed`` is required for ``stochastic``.
    """
    _check_mode(mode)
    x = _as_int64(x)
    torch_in = isinstance(x, torch.Tensor)
    if isinstance(e, (int, np.integer)):
        e = int(e)
        if not 0 <= e <= 62:
            raise HwsimError(f"shift exponent {e} out of range; use 0 ≤ e ≤ 62")
        if e == 0:
            return x.clone() if torch_in else x.copy()
        d = 1 << e
        q = x >> e
        r = x & (d - 1)
    else:
        e = e.to(torch.int64) if torch_in else np.asarray(e, dtype=np.int64)
        n_e = e.numel() if torch_in else e.size
        emin, emax = (int(e.min()), int(e.max())) if n_e else (0, 0)
        if emin < 0 or emax > 62:
            raise HwsimError(f"shift exponents must lie in 0..62, got {emin}..{emax}")
        one = torch.ones((), dtype=torch.int64, device=x.device) if torch_in else np.int64(1)
        d = one << e
        q = x >> e
        r = x & (d - 1)
    return _apply_mode(x, q, r, d, mode, seed)


def div_int(x: IntArray, d: int | IntArray, mode: str = "half_away", *,
            seed: Seed = None) -> IntArray:
    """Round(x / d) for int64 x and positive integer divisor d (scalar or broadcastable array)."""
    _check_mode(mode)
    x = _as_int64(x)
    torch_in = isinstance(x, torch.Tensor)
    if isinstance(d, (int, np.integer)):
        d = int(d)
        if d <= 0:
            raise HwsimError(f"divisor must be a positive integer, got {d}")
    else:
        d = d.to(torch.int64) if torch_in else np.asarray(d, dtype=np.int64)
        if (d <= 0).any():
            raise HwsimError("divisors must be positive integers")
    if torch_in:
        q = torch.div(x, d, rounding_mode="floor")
    else:
        q = np.floor_divide(x, d)
    r = x - q * d
    return _apply_mode(x, q, r, d, mode, seed)


# ---- generic requantization (training workloads) -------------------------------------------
def fixed_multiplier(real: float, bits: int = 31) -> tuple[int, int]:
    """(M, n) with real ≈ M / 2^n, 2^(bits-1) ≤ M < 2^bits (M = 0 for real = 0).

    M = round_half_away(mantissa · 2^bits). Multipliers large enough that n would be negative are
    folded into M with n = 0; tiny ones are clamped to n = 62 (with fewer significant bits).
    """
    if not (real >= 0 and math.isfinite(real)):
        raise HwsimError(f"requantization multiplier must be finite and ≥ 0, got {real}")
    if real == 0:
        return 0, 0
    mant, exp = math.frexp(real)  # real = mant·2^exp, mant ∈ [0.5, 1)
    m = int(round_half_away(mant * (1 << bits)))
    n = bits - exp
    if m == 1 << bits:
        m >>= 1
        n -= 1
    if n < 0:
        m <<= -n
        n = 0
    if n > 62:
        m = int(round_half_away(m / 2.0 ** (n - 62)))
        n = 62
    return m, n


def requantize(acc, multiplier_real: float | Sequence[float] | np.ndarray | torch.Tensor, *,
               axis: int | None = None, out_bits: int = 8, signed: bool = True,
               zero_point: int = 0, rounding: str = "half_away", multiplier_bits: int = 31,
               narrow: bool = False, seed: Seed = None):
    """y = clamp(round(acc·multiplier) + zero_point) with an integer multiplier → (y, n_saturated).

    ``multiplier_real`` is a scalar or one value per channel along ``axis`` of ``acc``. It is
    converted once to (M, n) with ``multiplier_bits`` of precision (see ``fixed_multiplier``) and
    applied as ``div_pow2(acc·M, n, rounding)`` in int64, so the product acc·M must fit in int64.
    Returns the int64 result and the number of elements that saturated at the output range.
    """
    acc = _as_int64(acc)
    torch_in = isinstance(acc, torch.Tensor)
    reals = multiplier_real
    if isinstance(reals, torch.Tensor):
        reals = reals.detach().cpu().double().reshape(-1).tolist()
    elif isinstance(reals, (np.ndarray, list, tuple)):
        reals = [float(v) for v in np.asarray(reals, dtype=np.float64).reshape(-1)]
    if isinstance(reals, list):
        if axis is None:
            if len(reals) != 1:
                raise HwsimError("per-channel requantize multipliers need axis=")
            reals = reals[0]
    if isinstance(reals, list):
        pairs = [fixed_multiplier(r, multiplier_bits) for r in reals]
        shape = [1] * acc.ndim
        shape[axis] = len(pairs)
        if torch_in:
            dev = acc.device
            m = torch.tensor([p[0] for p in pairs], dtype=torch.int64, device=dev).reshape(shape)
            n = torch.tensor([p[1] for p in pairs], dtype=torch.int64, device=dev).reshape(shape)
        else:
            m = np.array([p[0] for p in pairs], dtype=np.int64).reshape(shape)
            n = np.array([p[1] for p in pairs], dtype=np.int64).reshape(shape)
        mmax = max(p[0] for p in pairs)
    else:
        m, n = fixed_multiplier(float(reals), multiplier_bits)
        mmax = m
    amax = (int(acc.abs().max()) if acc.numel() else 0) if torch_in else (
        int(np.abs(acc).max()) if acc.size else 0)
    if amax * mmax >= 2 ** 63:
        raise HwsimError(f"requantize: accumulator magnitude {amax} times multiplier {mmax} "
                         f"overflows int64; lower multiplier_bits (now {multiplier_bits})")
    y = div_pow2(acc * m, n, rounding, seed=seed) + zero_point
    lo, hi = int_range(out_bits, signed, narrow)
    if torch_in:
        sat = int(((y < lo) | (y > hi)).sum())
        return torch.clamp(y, lo, hi), sat
    sat = int(((y < lo) | (y > hi)).sum())
    return np.clip(y, lo, hi), sat


def int_range(bits: int, signed: bool = True, narrow: bool = False) -> tuple[int, int]:
    """[qmin, qmax] of a bits-wide integer (narrow drops the most negative signed code)."""
    if signed:
        return (-(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1)
    return (0, (1 << bits) - 1)
