"""Rounding primitives vs an independent pure-Python integer reference (hypothesis properties)."""
from __future__ import annotations

import decimal
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from hwsim.errors import HwsimError
from hwsim.fixedpoint.rounding import (
    div_int, div_pow2, fixed_multiplier, requantize, round_float, round_half_away,
)

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
DET_MODES = ("half_away", "half_up", "half_even", "floor", "trunc")


def ref_div(x: int, d: int, mode: str) -> int:
    """Round(x/d) with Python ints, written from the mode definitions (d > 0)."""
    sign = -1 if x < 0 else 1
    ax = abs(x)
    if mode == "floor":
        return x // d
    if mode == "trunc":  # C integer division
        return sign * (ax // d)
    if mode == "half_away":
        return sign * ((2 * ax + d) // (2 * d))
    if mode == "half_up":
        return (2 * x + d) // (2 * d)
    if mode == "half_even":
        f = Fraction(x, d)
        lo = f.numerator // f.denominator
        diff = f - lo
        if diff > Fraction(1, 2) or (diff == Fraction(1, 2) and lo % 2 == 1):
            return lo + 1
        return lo
    raise AssertionError(mode)


int64s = st.integers(INT64_MIN, INT64_MAX)
edge_int64 = st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, INT32_MIN,
                              INT32_MIN - 1, INT32_MIN + 1, INT32_MAX, INT32_MAX + 1, 0, 1, -1])
xs_strategy = st.lists(st.one_of(int64s, edge_int64, st.integers(-1000, 1000)), min_size=1,
                       max_size=40)


@settings(max_examples=150, deadline=None)
@given(xs=xs_strategy, e=st.integers(0, 62), mode=st.sampled_from(DET_MODES))
def test_div_pow2_matches_reference_torch_and_numpy(xs, e, mode):
    want = [ref_div(x, 2 ** e, mode) for x in xs]
    assert div_pow2(torch.tensor(xs, dtype=torch.int64), e, mode).tolist() == want
    assert div_pow2(np.array(xs, dtype=np.int64), e, mode).tolist() == want


@settings(max_examples=150, deadline=None)
@given(xs=xs_strategy, d=st.one_of(st.integers(1, 20), st.integers(1, 2 ** 62),
                                   st.sampled_from([2 ** 31, 2 ** 62, INT64_MAX])),
       mode=st.sampled_from(DET_MODES))
def test_div_int_matches_reference(xs, d, mode):
    want = [ref_div(x, d, mode) for x in xs]
    assert div_int(torch.tensor(xs, dtype=torch.int64), d, mode).tolist() == want
    assert div_int(np.array(xs, dtype=np.int64), d, mode).tolist() == want


def test_ties_and_negative_values_explicit():
    x = [-7, -5, -3, -1, 1, 3, 5, 7]  # all exact ties of x/2
    t = torch.tensor(x)
    assert div_pow2(t, 1, "half_away").tolist() == [-4, -3, -2, -1, 1, 2, 3, 4]
    assert div_pow2(t, 1, "half_up").tolist() == [-3, -2, -1, 0, 1, 2, 3, 4]
    assert div_pow2(t, 1, "half_even").tolist() == [-4, -2, -2, 0, 0, 2, 2, 4]
    assert div_pow2(t, 1, "floor").tolist() == [-4, -3, -2, -1, 0, 1, 2, 3]
    assert div_pow2(t, 1, "trunc").tolist() == [-3, -2, -1, 0, 0, 1, 2, 3]
    assert div_pow2(torch.tensor([-10]), 2, "half_away").tolist() == [-3]  # algorithms.md §5.3


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.one_of(int64s, edge_int64), min_size=1, max_size=20),
       es=st.lists(st.integers(0, 62), min_size=1, max_size=20), mode=st.sampled_from(DET_MODES))
def test_div_pow2_per_element_exponents(xs, es, mode):
    n = min(len(xs), len(es))
    xs, es = xs[:n], es[:n]
    want = [ref_div(x, 2 ** e, mode) for x, e in zip(xs, es)]
    got = div_pow2(torch.tensor(xs), torch.tensor(es), mode).tolist()
    assert got == want
    assert div_pow2(np.array(xs, dtype=np.int64), np.array(es), mode).tolist() == want


def test_shift_bounds_rejected():
    with pytest.raises(HwsimError):
        div_pow2(torch.tensor([1]), 63)
    with pytest.raises(HwsimError):
        div_pow2(torch.tensor([1]), -1)
    with pytest.raises(HwsimError):
        div_int(torch.tensor([1]), 0)
    with pytest.raises(HwsimError):
        div_pow2(torch.tensor([1]), 1, "nearest")


def test_stochastic_is_reproducible_unbiased_and_bracketed():
    x = torch.full((40000,), 5, dtype=torch.int64)  # 5/4 = 1.25
    a = div_pow2(x, 2, "stochastic", seed=7)
    b = div_pow2(x, 2, "stochastic", seed=7)
    c = div_pow2(x, 2, "stochastic", seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {1, 2}
    p = float((a == 2).double().mean())
    assert abs(p - 0.25) < 5 * (0.25 * 0.75 / 40000) ** 0.5
    xn = np.full(40000, -7, dtype=np.int64)  # -7/3 = -2.333
    r = div_int(xn, 3, "stochastic", seed=1)
    assert np.array_equal(r, div_int(xn, 3, "stochastic", seed=1))
    assert set(np.unique(r).tolist()) == {-3, -2}
    p = float((r == -2).mean())
    assert abs(p - 2 / 3) < 5 * (2 / 9 / 40000) ** 0.5
    exact = div_pow2(torch.tensor([-8, 0, 8]), 2, "stochastic", seed=3)
    assert exact.tolist() == [-2, 0, 2]
    with pytest.raises(HwsimError):
        div_pow2(x, 2, "stochastic")


def _ref_round_half_away(v: float) -> float:
    return float(decimal.Decimal(v).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


floats = st.one_of(st.floats(-1e6, 1e6, allow_nan=False),
                   st.integers(-10 ** 6, 10 ** 6).map(lambda i: i + 0.5),
                   st.sampled_from([0.49999999999999994, -0.49999999999999994, 2.5, -2.5,
                                    0.5, -0.5, 1.5, -1.5, 4503599627370495.5, -0.0]))


@settings(max_examples=150, deadline=None)
@given(vals=st.lists(floats, min_size=1, max_size=30))
def test_round_half_away_float_matches_decimal(vals):
    want = [_ref_round_half_away(v) for v in vals]
    assert round_half_away(torch.tensor(vals, dtype=torch.float64)).tolist() == want
    assert round_half_away(np.array(vals, dtype=np.float64)).tolist() == want
    assert [round_half_away(v) for v in vals] == want


def test_round_float_modes():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994], dtype=torch.float64)
    assert round_float(x, "half_away").tolist() == [-3, -2, -1, 1, 2, 3, 0]
    assert round_float(x, "half_even").tolist() == [-2, -2, 0, 0, 2, 2, 0]
    assert round_float(x, "half_up").tolist() == [-2, -1, 0, 1, 2, 3, 0]
    assert round_float(x, "floor").tolist() == [-3, -2, -1, 0, 1, 2, 0]
    s = round_float(x, "stochastic", seed=0)
    assert torch.equal(s, round_float(x, "stochastic", seed=0))
    assert bool(((s == torch.floor(x)) | (s == torch.ceil(x))).all())


def ref_fixed_multiplier(real: float, bits: int) -> tuple[int, int]:
    """Smallest n with real·2^n ≥ 2^(bits-1); M = round_half_away(real·2^n) (exact rationals)."""
    f = Fraction(real)
    n = 0
    while f * 2 ** n >= 2 ** bits:
        n -= 1
    while f * 2 ** n < 2 ** (bits - 1):
        n += 1
    v = f * 2 ** n
    m = int(v) + (1 if v - int(v) >= Fraction(1, 2) else 0)
    if m == 2 ** bits:
        m, n = m // 2, n - 1
    if n < 0:
        m, n = m * 2 ** (-n), 0
    return m, n


@settings(max_examples=200, deadline=None)
@given(real=st.one_of(st.floats(1e-9, 1e4), st.sampled_from([1.0, 0.5, 0.25, 2.0 ** -20, 3.0])),
       bits=st.integers(8, 31))
def test_fixed_multiplier_matches_exact_reference(real, bits):
    assert fixed_multiplier(real, bits) == ref_fixed_multiplier(real, bits)


@settings(max_examples=150, deadline=None)
@given(accs=st.lists(st.one_of(st.integers(INT32_MIN, INT32_MAX), edge_int64.filter(
           lambda v: INT32_MIN <= v <= INT32_MAX)), min_size=1, max_size=30),
       real=st.floats(1e-6, 4.0), zp=st.integers(-128, 127),
       mode=st.sampled_from(("half_away", "half_even", "floor", "half_up")))
def test_requantize_matches_reference(accs, real, zp, mode):
    m, n = ref_fixed_multiplier(real, 31)
    want_raw = [ref_div(a * m, 2 ** n, mode) + zp for a in accs]
    want = [min(max(v, -128), 127) for v in want_raw]
    sat = sum(1 for v in want_raw if v < -128 or v > 127)
    y, s = requantize(torch.tensor(accs), real, zero_point=zp, rounding=mode)
    assert y.tolist() == want and s == sat
    yn, sn = requantize(np.array(accs, dtype=np.int64), real, zero_point=zp, rounding=mode)
    assert yn.tolist() == want and sn == sat


def test_requantize_per_channel_and_overflow_guard():
    acc = torch.tensor([[1000, -1001], [300, 301]])
    y, s = requantize(acc, [0.01, 0.5], axis=0, out_bits=8)
    assert y.tolist() == [[10, -10], [127, 127]] and s == 2
    with pytest.raises(HwsimError):
        requantize(torch.tensor([2 ** 40]), 0.3)
