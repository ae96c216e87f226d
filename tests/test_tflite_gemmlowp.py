"""gemmlowp / TFLite integer primitives against scalar pure-Python references written from the
C source semantics (docs/algorithms.md §5.2–5.4), with exact ties and extreme values included."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from hwsim.fixedpoint import gemmlowp as g

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def c_div(a: int, b: int) -> int:
    """C integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm_ref(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def rdbpot_ref(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def wrap32(v: int) -> int:
    return ((v + 2 ** 31) % 2 ** 32) - 2 ** 31


def mbqm_ref(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot_ref(srdhm_ref(wrap32(x * (1 << left)), m), right)


def quantize_multiplier_ref(real: float) -> tuple[int, int]:
    if real == 0:
        return 0, 0
    q, e = math.frexp(real)
    v = Fraction(q) * (1 << 31)
    m = int(math.floor(v + Fraction(1, 2)))  # q > 0: half away from zero == half up
    if m == 1 << 31:
        m //= 2
        e += 1
    if e < -31:
        return 0, 0
    return m, e


RNG = np.random.default_rng(1234)


def _int32_samples(n: int) -> np.ndarray:
    edge = np.array([0, 1, -1, 2, -2, INT32_MIN, INT32_MAX, INT32_MIN + 1, 1 << 30, -(1 << 30)])
    return np.concatenate([edge, RNG.integers(INT32_MIN, INT32_MAX, n, endpoint=True)])


def test_srdhm_matches_c_reference_including_saturation() -> None:
    a = _int32_samples(3000)
    b = np.concatenate([a[:10], RNG.integers(INT32_MIN, INT32_MAX, 3000, endpoint=True)])
    got = g.srdhm(a[:, None], b[None, :200]).ravel()
    want = [srdhm_ref(int(x), int(y)) for x in a for y in b[:200]]
    assert got.tolist() == want


def test_srdhm_exact_ties_round_up() -> None:
    # a·b = k·2^31 + 2^30 exactly: a tie, rounds toward +inf for both signs
    a = np.array([1 << 15, -(1 << 15), 3 << 15, -(3 << 15)])
    b = np.array([1 << 15, 1 << 15, 1 << 15, 1 << 15])
    assert g.srdhm(a, b).tolist() == [srdhm_ref(int(x), int(y)) for x, y in zip(a, b)] == [1, 0, 2, -1]


def test_rounding_divide_by_pot_ties_away_from_zero() -> None:
    assert g.rounding_divide_by_pot([-3, 3, -1, -10, 5, -5, 1, -2], [1, 1, 1, 2, 1, 1, 1, 1]).tolist() \
        == [-2, 2, -1, -3, 3, -3, 1, -1]
    x = _int32_samples(4000)
    for e in range(0, 32):
        assert g.rounding_divide_by_pot(x, e).tolist() == [rdbpot_ref(int(v), e) for v in x]
    es = RNG.integers(0, 32, x.size)
    assert g.rounding_divide_by_pot(x, es).tolist() == [rdbpot_ref(int(v), int(e)) for v, e in zip(x, es)]


@pytest.mark.parametrize("real", [0.0, 1e-12, 2.0 ** -31, 2.0 ** -32, 0.5, 0.75, 1.0, 1.5, 3.9999999999,
                                  0.0003051850947599719, 0.99999999999, 7.1e-6, 123.456])
def test_quantize_multiplier_matches_frexp_reference(real: float) -> None:
    m, s = g.quantize_multiplier(real)
    assert (int(m), int(s)) == quantize_multiplier_ref(real)


def test_quantize_multiplier_random_and_vectorised() -> None:
    reals = np.exp(RNG.uniform(-30, 5, 2000))
    m, s = g.quantize_multiplier(reals)
    assert list(zip(m.tolist(), s.tolist())) == [quantize_multiplier_ref(float(r)) for r in reals]


def test_quantize_multiplier_single_rounding_clamps_large_shifts() -> None:
    m, s = g.quantize_multiplier(2.0 ** 40, single_rounding=True)
    assert (int(m), int(s)) == (2 ** 31 - 1, 30)
    m, s = g.quantize_multiplier(2.0 ** 40)
    assert (int(m), int(s)) == (2 ** 30, 41)


def test_multiply_by_quantized_multiplier_double_rounding_and_inplace() -> None:
    reals = np.exp(RNG.uniform(-20, 3, 64))
    m, s = g.quantize_multiplier(reals)
    x = RNG.integers(-(1 << 24), 1 << 24, (300, 64))
    x[0] = 0
    want = [[mbqm_ref(int(v), int(mm), int(ss)) for v, mm, ss in zip(row, m, s)] for row in x]
    assert g.multiply_by_quantized_multiplier(x, m, s).tolist() == want
    assert g.multiply_by_quantized_multiplier_inplace(x.copy(), m, s).tolist() == want


def test_single_rounding_and_int64_overload() -> None:
    m, s = g.quantize_multiplier(np.array([0.3, 0.0007, 1.7]))
    x = RNG.integers(-(1 << 20), 1 << 20, (500, 3))
    for row in x:
        for v, mm, ss in zip(row, m, s):
            t = 31 - int(ss)
            assert int(g.multiply_by_quantized_multiplier_single(int(v), mm, ss)) == \
                (int(v) * int(mm) + (1 << (t - 1))) >> t
            rm = (int(mm) + (1 << 15)) >> 16 if mm < 0x7FFF0000 else 0x7FFF
            t16 = 15 - int(ss)
            assert int(g.multiply_by_quantized_multiplier_int64(int(v) << 4, mm, ss)) == \
                (int(v << 4) * rm + (1 << (t16 - 1))) >> t16


def test_float64_requantize_is_round_half_away_of_double_product() -> None:
    acc = np.array([5, -5, 7, -7, 123456, -123456, 0])
    s_in, s_w, s_out = np.float32(0.5), np.float32(1.0), np.float32(1.0)
    assert g.requantize_float64(acc, s_in, s_w, s_out).tolist() == [3, -3, 4, -4, 61728, -61728, 0]


def test_softmax_helpers_approximate_their_real_functions() -> None:
    """Not an exactness oracle (the model softmax layers are, in test_tflite_oracles): a sanity
    check that the fixed-point exp and reciprocal compute what their names say."""
    z = np.linspace(-31.9, 0, 500)
    raw = np.round(z * 2 ** 26).astype(np.int64)
    e = g.exp_on_negative_values(raw, 5) / 2 ** 31
    assert np.max(np.abs(e - np.exp(raw / 2 ** 26))) < 2e-7 + 1e-6
    assert int(g.exp_on_negative_values(0, 5)) == INT32_MAX
    x = np.linspace(0, 1 - 2 ** -20, 300)
    r = g.one_over_one_plus_x_for_x_in_0_1(np.round(x * 2 ** 31).astype(np.int64)) / 2 ** 31
    assert np.max(np.abs(r - 1 / (1 + x))) < 1e-8
    recip, bits = g.get_reciprocal(np.array([1 << 19, 3 << 19]), 12)
    assert bits.tolist() == [0, 1]
    assert abs(recip[1] / 2 ** 31 / 2 ** int(bits[1]) - 1 / 3) < 1e-8


def test_round_half_away_exact_and_equal_to_numerics_room() -> None:
    from hwsim.fixedpoint.rounding import round_half_away as numerics_round

    tricky = np.array([0.49999999999999994, -0.49999999999999994, 0.5, -0.5, 1.5, -1.5, 2.5,
                       -2.5, 4503599627370495.5, -4503599627370495.5, 1e15 + 0.5, 0.0, -0.0,
                       2.0 ** 52, -(2.0 ** 52) - 1])
    rand = RNG.normal(0, 1e6, 5000)
    for arr in (tricky, rand, np.round(rand) + 0.5):
        assert g.round_half_away(arr).tolist() == numerics_round(arr).astype(np.int64).tolist()
    assert g.round_half_away(tricky[:8]).tolist() == [0, 0, 1, -1, 2, -2, 3, -3]
