"""TFLite / gemmlowp primitives (hwsim.fixedpoint.gemmlowp) vs pure-Python integer references.

The references are written from docs/algorithms.md §5.2–5.4 with Python ints and explicit C
semantics (truncating division, arithmetic shifts, int32 ranges), not from the implementation.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import assume, given, settings, strategies as st

from hwsim.fixedpoint import gemmlowp as g

I32_MIN, I32_MAX = -(2 ** 31), 2 ** 31 - 1
int32s = st.one_of(st.integers(I32_MIN, I32_MAX),
                   st.sampled_from([I32_MIN, I32_MIN + 1, I32_MAX, I32_MAX - 1, 0, 1, -1,
                                    2 ** 30, -(2 ** 30), 3, -3]))
multipliers = st.one_of(st.integers(2 ** 30, I32_MAX), st.sampled_from([2 ** 30, I32_MAX, 0]))
SETTINGS = settings(max_examples=150, deadline=None)


def c_div(n: int, d: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(n) // abs(d)
    return q if (n >= 0) == (d > 0) else -q


def ref_srdhm(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = 2 ** 30 if ab >= 0 else 1 - 2 ** 30
    return c_div(ab + nudge, 2 ** 31)


def ref_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask                      # Python ints: two's-complement semantics
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def c_round(v: float) -> int:
    f = Fraction(v)
    a = abs(f)
    r = int(a) + (1 if a - int(a) >= Fraction(1, 2) else 0)
    return r if f >= 0 else -r


def ref_quantize_multiplier(real: float, single_rounding: bool = False) -> tuple[int, int]:
    if real == 0:
        return 0, 0
    q, e = math.frexp(real)
    m = c_round(q * 2 ** 31)
    if m == 2 ** 31:
        m, e = 2 ** 30, e + 1
    if e < -31:
        return 0, 0
    if single_rounding and e > 30:
        return 2 ** 31 - 1, 30
    return m, e


def ref_mbqm_double(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return ref_rdbpot(ref_srdhm(x * 2 ** left, m), right)


def ref_mbqm_single(x: int, m: int, shift: int) -> int:
    t = 31 - shift
    return (x * m + 2 ** (t - 1)) >> t


def ref_mbqm_int64(x: int, m: int, shift: int) -> int:
    rm = (m + 2 ** 15) >> 16 if m < 0x7FFF0000 else 0x7FFF
    t = 15 - shift
    return (x * rm + 2 ** (t - 1)) >> t


def _one(v) -> int:
    return int(np.asarray(v).reshape(-1)[0])


# ---- SRDHM -------------------------------------------------------------------------------------
@SETTINGS
@given(a=st.lists(int32s, min_size=1, max_size=30), data=st.data())
def test_srdhm(a, data):
    b = data.draw(st.lists(int32s, min_size=len(a), max_size=len(a)))
    got = g.srdhm(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    assert [int(v) for v in np.asarray(got).reshape(-1)] == [ref_srdhm(x, y) for x, y in zip(a, b)]


def test_srdhm_ties_and_saturation():
    # a·b = ±2^30 exactly: ties toward +inf for both signs (algorithms.md §5.3)
    assert _one(g.srdhm(2 ** 15, 2 ** 15)) == 1 == ref_srdhm(2 ** 15, 2 ** 15)
    assert _one(g.srdhm(-(2 ** 15), 2 ** 15)) == 0 == ref_srdhm(-(2 ** 15), 2 ** 15)
    assert _one(g.srdhm(-3 * 2 ** 15, 2 ** 15)) == -1 == ref_srdhm(-3 * 2 ** 15, 2 ** 15)
    assert _one(g.srdhm(I32_MIN, I32_MIN)) == I32_MAX
    assert _one(g.srdhm(I32_MIN, I32_MAX)) == ref_srdhm(I32_MIN, I32_MAX)


# ---- RoundingDivideByPOT -------------------------------------------------------------------------
@SETTINGS
@given(xs=st.lists(int32s, min_size=1, max_size=30), e=st.integers(0, 31))
def test_rounding_divide_by_pot(xs, e):
    got = g.rounding_divide_by_pot(np.array(xs, dtype=np.int64), e)
    assert [int(v) for v in np.asarray(got).reshape(-1)] == [ref_rdbpot(x, e) for x in xs]


def test_rounding_divide_by_pot_examples_from_spec():
    xs = np.array([-3, 3, -1, -10, 1, 5, -5, I32_MIN, I32_MAX], dtype=np.int64)
    got = [int(v) for v in g.rounding_divide_by_pot(xs, 1)]
    assert got[:3] == [-2, 2, -1]
    assert int(np.asarray(g.rounding_divide_by_pot(np.array([-10]), 2)).reshape(-1)[0]) == -3
    assert got == [ref_rdbpot(int(x), 1) for x in xs]
    assert [int(v) for v in g.rounding_divide_by_pot(xs, 31)] == [ref_rdbpot(int(x), 31) for x in xs]
    assert [int(v) for v in g.rounding_divide_by_pot(xs, 0)] == xs.tolist()


# ---- QuantizeMultiplier ---------------------------------------------------------------------------
reals = st.one_of(st.floats(1e-12, 1e3, allow_subnormal=False),
                  st.sampled_from([0.0, 1.0, 0.5, 2.0 ** -31, 2.0 ** -32, 2.0 ** -33,
                                   1 - 2.0 ** -40, 0.9999999998, 2.0 ** 30, 2.0 ** 31, 3.0e9]))


@SETTINGS
@given(real=reals, single=st.booleans())
def test_quantize_multiplier(real, single):
    m, s = g.quantize_multiplier(real, single_rounding=single)
    assert (_one(m), _one(s)) == ref_quantize_multiplier(real, single)


@SETTINGS
@given(real=st.floats(1e-9, 1.0 - 2.0 ** -31))  # larger reals round up to M = 2^31 → shift 1
def test_quantize_multiplier_smaller_than_one(real):
    m, s = g.quantize_multiplier_smaller_than_one_exp(real)
    want = ref_quantize_multiplier(real)
    assert (_one(m), _one(s)) == want and want[1] <= 0


@SETTINGS
@given(real=st.floats(1.0, 1e6, exclude_min=True))
def test_quantize_multiplier_greater_than_one(real):
    m, s = g.quantize_multiplier_greater_than_one(real)
    want = ref_quantize_multiplier(real)
    assert (_one(m), _one(s)) == want and want[1] >= 0


def test_quantize_multiplier_vectorised():
    rs = [0.0, 0.25, 0.3, 1.7, 2.0 ** -35]
    m, s = g.quantize_multiplier(np.array(rs))
    assert list(zip(map(int, m), map(int, s))) == [ref_quantize_multiplier(r) for r in rs]


# ---- MultiplyByQuantizedMultiplier ------------------------------------------------------------------
@SETTINGS
@given(x=int32s, m=multipliers, shift=st.integers(-31, 30))
def test_mbqm_double_rounding(x, m, shift):
    assume(I32_MIN <= x * 2 ** max(shift, 0) <= I32_MAX)  # C int32 multiply must not overflow
    assert _one(g.multiply_by_quantized_multiplier(x, m, shift)) == ref_mbqm_double(x, m, shift)


@SETTINGS
@given(xs=st.lists(int32s, min_size=1, max_size=20), m=multipliers, shift=st.integers(-31, 0))
def test_mbqm_double_rounding_vector_right_shifts(xs, m, shift):
    got = g.multiply_by_quantized_multiplier(np.array(xs, dtype=np.int64), m, shift)
    assert [int(v) for v in got] == [ref_mbqm_double(x, m, shift) for x in xs]


@SETTINGS
@given(x=int32s, m=multipliers, shift=st.integers(-31, 30))
def test_mbqm_single_rounding(x, m, shift):
    want = ref_mbqm_single(x, m, shift)
    assume(I32_MIN <= want <= I32_MAX)  # TFLite DCHECKs the result fits int32
    assert _one(g.multiply_by_quantized_multiplier_single(x, m, shift)) == want


@SETTINGS
@given(x=st.one_of(st.integers(-(2 ** 47), 2 ** 47 - 1),
                   st.sampled_from([-(2 ** 47), 2 ** 47 - 1, 0, -1, 1])),
       m=multipliers.filter(lambda v: v > 0) | st.sampled_from([0x7FFF0000, 0x7FFEFFFF]),
       shift=st.integers(-31, 7))
def test_mbqm_int64(x, m, shift):
    want = ref_mbqm_int64(x, m, shift)
    assume(I32_MIN <= want <= I32_MAX)
    assert _one(g.multiply_by_quantized_multiplier_int64(x, m, shift)) == want


def test_double_and_single_rounding_differ_on_negative_ties():
    # x·M/2^31 = -2.5 exactly: double rounding (RDBPOT) goes away from zero, single goes up.
    m, shift = 2 ** 30, -1          # real multiplier 0.25
    x = -10
    assert ref_mbqm_double(x, m, shift) == -3 == _one(g.multiply_by_quantized_multiplier(x, m, shift))
    assert ref_mbqm_single(x, m, shift) == -2 == _one(
        g.multiply_by_quantized_multiplier_single(x, m, shift))


# ---- float helpers (§5.1, §5.4) ----------------------------------------------------------------------
f32_scales = st.floats(1e-6, 10.0).map(lambda v: float(np.float32(v)))


@SETTINGS
@given(s_in=f32_scales, s_w=f32_scales, s_out=f32_scales)
def test_effective_scale_operation_order(s_in, s_w, s_out):
    assert float(np.asarray(g.effective_scale(s_in, s_w, s_out)).reshape(-1)[0]) == s_in * s_w / s_out


def ref_round_half_away_float(v: float) -> int:
    return c_round(v)


@SETTINGS
@given(vals=st.lists(st.one_of(st.floats(-1e9, 1e9, allow_nan=False),
                               st.integers(-10 ** 6, 10 ** 6).map(lambda i: i + 0.5)),
                     min_size=1, max_size=20))
def test_round_half_away(vals):
    got = g.round_half_away(np.array(vals, dtype=np.float64))
    assert [int(v) for v in np.asarray(got).reshape(-1)] == [c_round(v) for v in vals]


def test_round_half_away_largest_double_below_half():
    # C round(0.49999999999999994) == 0; floor(x + 0.5) gives 1.
    assert int(np.asarray(g.round_half_away(np.array([0.49999999999999994]))).reshape(-1)[0]) == 0


@SETTINGS
@given(acc=int32s, s_in=f32_scales, s_w=f32_scales, s_out=f32_scales)
def test_requantize_float64_matches_doc_formula(acc, s_in, s_w, s_out):
    eff = s_in * s_w / s_out
    assume(abs(acc * eff) < 2 ** 31)
    # algorithms.md §5.4: round((double)acc · M_real) with M_real from §5.1
    assert _one(g.requantize_float64(acc, s_in, s_w, s_out)) == c_round(float(acc) * eff)


@SETTINGS
@given(xs=st.lists(st.integers(-(2 ** 40), 2 ** 40), min_size=1, max_size=20))
def test_wrap_int32(xs):
    want = [(x + 2 ** 31) % 2 ** 32 - 2 ** 31 for x in xs]
    assert [int(v) for v in g.wrap_int32(np.array(xs, dtype=np.int64))] == want
