"""gemmlowp / TFLite integer requantization primitives, vectorised on int64 numpy arrays.

Why: a bit-exact emulator of TFLite-Micro and LiteRT's reference kernels must reproduce their
integer arithmetic *exactly* (docs/algorithms.md §5). Every function here takes array-likes
(numpy or torch, scalars broadcast), computes in int64 and returns a numpy int64 array, so one
call requantizes a whole batch of activations.

Exported names
--------------
- ``INT32_MIN``, ``INT32_MAX``
- ``wrap_int32(x)``: C ``int32_t`` wrap-around of an int64 value.
- ``round_half_away(x)``: C ``round`` (``TfLiteRound``) on float64.
- ``srdhm(a, b)``: ``SaturatingRoundingDoublingHighMul`` (ties toward +inf).
- ``rounding_divide_by_pot(x, exponent)``: ``RoundingDivideByPOT`` (ties away from zero).
- ``saturating_rounding_multiply_by_pot(x, exponent)``: gemmlowp ``SaturatingRoundingMultiplyByPOT``.
- ``quantize_multiplier(real, single_rounding=False)`` → ``(multiplier, shift)`` int64 arrays.
- ``quantize_multiplier_smaller_than_one_exp(real)``, ``quantize_multiplier_greater_than_one(real)``.
- ``multiply_by_quantized_multiplier(x, m, shift)``: double rounding (TFLM default).
- ``multiply_by_quantized_multiplier_inplace(x, m, shift)``: the same, overwriting int64 ``x``.
- ``multiply_by_quantized_multiplier_single(x, m, shift)``: ``TFLITE_SINGLE_ROUNDING`` build.
- ``multiply_by_quantized_multiplier_int64(x, m, shift)``: the 16x8 int64 overload.
- ``multiply_by_quantized_multiplier_greater_than_one(x, m, left_shift)``.
- ``effective_scale(s_in, s_w, s_out)``: ``(double)s_in * (double)s_w / (double)s_out``.
- ``requantize_float64(acc, s_in, s_w, s_out)``: LiteRT-ref FULLY_CONNECTED float path.
- ``exp_on_interval_between_negative_one_quarter_and_0_excl(a)``, ``exp_on_negative_values(a,
  integer_bits)``, ``one_over_one_plus_x_for_x_in_0_1(a)``, ``get_reciprocal(x, integer_digits)``
  → ``(recip, num_bits_over_unit)``, ``rounding_half_sum(a, b)``,
  ``one_minus_x_over_one_plus_x_for_x_in_0_1(a)``, ``logistic(a, integer_bits)``,
  ``tanh(a, integer_bits)`` (gemmlowp fixed-point logistic / tanh).
- ``preprocess_softmax_scaling(beta, s_in, input_integer_bits, single_rounding=False)``,
  ``calculate_input_radius(input_integer_bits, left_shift, total_signed_bits=31)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

INT32_MIN = -(2 ** 31)
INT32_MAX = 2 ** 31 - 1

__all__ = [
    "INT32_MIN", "INT32_MAX", "wrap_int32", "round_half_away", "srdhm", "rounding_divide_by_pot",
    "saturating_rounding_multiply_by_pot", "quantize_multiplier",
    "quantize_multiplier_smaller_than_one_exp", "quantize_multiplier_greater_than_one",
    "multiply_by_quantized_multiplier", "multiply_by_quantized_multiplier_inplace",
    "multiply_by_quantized_multiplier_single",
    "multiply_by_quantized_multiplier_int64", "multiply_by_quantized_multiplier_greater_than_one",
    "effective_scale", "requantize_float64",
    "exp_on_interval_between_negative_one_quarter_and_0_excl", "exp_on_negative_values",
    "one_over_one_plus_x_for_x_in_0_1", "one_minus_x_over_one_plus_x_for_x_in_0_1", "logistic",
    "tanh", "get_reciprocal", "rounding_half_sum",
    "preprocess_softmax_scaling", "calculate_input_radius",
]


def _i64(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x: Any) -> np.ndarray:
    """Two's-complement wrap to int32 (what C int32 arithmetic does on every real target)."""
    x = _i64(x)
    return ((x + 2 ** 31) & 0xFFFFFFFF) - 2 ** 31


def round_half_away(x: Any) -> np.ndarray:
    """C `round`: half away from zero (never numpy's half-to-even `rint`), exact for every double
    (trunc + exact fractional part, so 0.49999999999999994 rounds to 0).

    Same algorithm as `hwsim.fixedpoint.rounding.round_half_away` (tests check they agree), kept
    in numpy here because that module imports torch, which costs seconds of CLI start-up."""
    x = np.asarray(x, dtype=np.float64)
    t = np.trunc(x)
    frac = x - t
    return (t + (frac >= 0.5) - (frac <= -0.5)).astype(np.int64)


# ---- gemmlowp primitives ------------------------------------------------------------------------
def srdhm(a: Any, b: Any) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int32 values: floor((a·b + 2^30) / 2^31), saturating
    the single overflow case a == b == INT32_MIN to INT32_MAX."""
    a = _i64(a)
    b = _i64(b)
    r = (a * b + (1 << 30)) >> 31
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    if np.any(overflow):
        r = np.where(overflow, INT32_MAX, r)
    return r


def rounding_divide_by_pot(x: Any, exponent: Any) -> np.ndarray:
    """RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero (0 ≤ e ≤ 31).

    gemmlowp: `(x >> e) + (x & mask > (mask >> 1) + (x < 0))`. We use the equivalent one-shift
    form `(x + 2^(e−1) − [x < 0]) >> e` (e > 0), which takes fewer passes over big arrays."""
    x = _i64(x)
    e = _i64(exponent)
    if e.ndim == 0:
        ei = int(e)
        if ei == 0:
            return x
        return (x + ((1 << (ei - 1)) - (x < 0))) >> ei
    half = (np.int64(1) << e) >> 1
    return (x + (half - ((x < 0) & (e > 0)))) >> e


def saturating_rounding_multiply_by_pot(x: Any, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32 raws."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    r = x << exponent
    r = np.where(x > threshold, INT32_MAX, r)
    return np.where(x < -threshold, INT32_MIN, r)


# ---- multipliers ------------------------------------------------------------------------------
def quantize_multiplier(real: Any, single_rounding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """QuantizeMultiplier: float64 → (Q31 multiplier, shift), shift > 0 meaning a left shift."""
    real = np.asarray(real, dtype=np.float64)
    q, e = np.frexp(real)
    m = round_half_away(q * float(1 << 31))
    e = e.astype(np.int64)
    carry = m == (1 << 31)
    m = np.where(carry, m // 2, m)
    e = np.where(carry, e + 1, e)
    tiny = e < -31
    m = np.where(tiny, 0, m)
    e = np.where(tiny, 0, e)
    if single_rounding:
        big = e > 30
        m = np.where(big, INT32_MAX, m)
        e = np.where(big, 30, e)
    zero = real == 0
    m = np.where(zero, 0, m)
    e = np.where(zero, 0, e)
    return m.astype(np.int64), e.astype(np.int64)


def quantize_multiplier_smaller_than_one_exp(real: Any) -> tuple[np.ndarray, np.ndarray]:
    """QuantizeMultiplierSmallerThanOneExp: same as QuantizeMultiplier for 0 < real < 1 (shift ≤ 0)."""
    return quantize_multiplier(real)


def quantize_multiplier_greater_than_one(real: Any) -> tuple[np.ndarray, np.ndarray]:
    """QuantizeMultiplierGreaterThanOne: real > 1, returns a non-negative left shift."""
    return quantize_multiplier(real)


def multiply_by_quantized_multiplier(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """Double rounding (TFLM and LiteRT-ref conv): RDBPOT(SRDHM(x·2^left, M), right).

    `x·2^left` is an int32 multiply in C; it is wrapped here exactly like the hardware does."""
    x = _i64(x)
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    if np.any(left):
        x = wrap_int32(x << left)
    return rounding_divide_by_pot(srdhm(x, multiplier), right)


def multiply_by_quantized_multiplier_inplace(x: np.ndarray, multiplier: np.ndarray,
                                            shift: np.ndarray) -> np.ndarray:
    """`multiply_by_quantized_multiplier` overwriting the int64 array `x` (hot path, no temps
    beyond one). `multiplier`/`shift` broadcast against `x` (e.g. per-channel on the last axis)
    and multipliers must be ≥ 0 (as QuantizeMultiplier makes them), so SRDHM cannot saturate.

    RDBPOT(s, r) for r > 0 is computed as `(s + 2^(r−1) + (s >> 63)) >> r`: `s >> 63` is −1
    exactly when s < 0, which turns round-half-up into round-half-away-from-zero."""
    multiplier = np.asarray(multiplier, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    if np.any(left):
        x <<= left
        x += 1 << 31
        x &= 0xFFFFFFFF
        x -= 1 << 31
    x *= multiplier
    x += 1 << 30
    x >>= 31
    if not np.any(right):
        return x
    neg = x >> 63
    if not np.all(right > 0):
        neg &= np.where(right > 0, -1, 0)
    x += (np.int64(1) << right) >> 1
    x += neg
    x >>= right
    return x


def multiply_by_quantized_multiplier_single(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """Single rounding (TFLITE_SINGLE_ROUNDING): (x·M + 2^(t−1)) >> t, t = 31 − shift."""
    x = _i64(x)
    total = 31 - _i64(shift)
    return (x * _i64(multiplier) + (np.int64(1) << (total - 1))) >> total


def multiply_by_quantized_multiplier_int64(x: Any, multiplier: Any, shift: Any) -> np.ndarray:
    """The int64-input overload used by 16x8 kernels: 16-bit reduced multiplier, one rounding."""
    x = _i64(x)
    m = _i64(multiplier)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - _i64(shift)
    r = (x * reduced + (np.int64(1) << (total - 1))) >> total
    return wrap_int32(r)


def multiply_by_quantized_multiplier_greater_than_one(x: Any, multiplier: Any,
                                                      left_shift: Any) -> np.ndarray:
    """MultiplyByQuantizedMultiplierGreaterThanOne: SRDHM(x·2^left_shift, M)."""
    return srdhm(wrap_int32(_i64(x) << _i64(left_shift)), multiplier)


def effective_scale(s_in: Any, s_w: Any, s_out: Any) -> np.ndarray:
    """(double)S_in · (double)S_w / (double)S_out on float32 scales, in the C++ operation order."""
    s_in = np.asarray(s_in, dtype=np.float32).astype(np.float64)
    s_w = np.asarray(s_w, dtype=np.float32).astype(np.float64)
    s_out = np.asarray(s_out, dtype=np.float32).astype(np.float64)
    return s_in * s_w / s_out


def requantize_float64(acc: Any, s_in: Any, s_w: Any, s_out: Any) -> np.ndarray:
    """LiteRT BUILTIN_REF FULLY_CONNECTED: (int32) round((double)acc · effective_scale)."""
    eff = effective_scale(s_in, s_w, s_out)
    return round_half_away(_i64(acc).astype(np.float64) * eff)


# ---- softmax helpers (gemmlowp fixedpoint.h) ----------------------------------------------------
def _fx_mul(a: np.ndarray, b: Any) -> np.ndarray:
    """FixedPoint multiply = SRDHM on raws (integer bits add up)."""
    return srdhm(a, b)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: Any) -> np.ndarray:
    """exp(a) for a Q0.31 in [−1/4, 0): 4th-order Taylor series around −1/8 (gemmlowp)."""
    a = _i64(a)
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap_int32(a + (1 << 28))
    x2 = _fx_mul(x, x)
    x3 = _fx_mul(x2, x)
    x4 = _fx_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap_int32(_fx_mul(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + _fx_mul(constant_term, wrap_int32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: Any, integer_bits: int = 5) -> np.ndarray:
    """exp(a) for a ≤ 0 given as a Q(integer_bits).(31−integer_bits) raw; result Q0.31."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_q_minus_q = (a & mask) - one_quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_q_minus_q, integer_bits))
    remainder = a_mod_q_minus_q - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, _fx_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def rounding_half_sum(a: Any, b: Any) -> np.ndarray:
    """gemmlowp RoundingHalfSum for int32: (a + b + sign) / 2 with C truncating division."""
    s = _i64(a) + _i64(b)
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s // 2, -((-s) // 2))


def one_over_one_plus_x_for_x_in_0_1(a: Any) -> np.ndarray:
    """1/(1+x) for x a Q0.31 in [0, 1): Newton–Raphson in Q2.29, result Q0.31 (gemmlowp)."""
    a = _i64(a)
    half_denominator = rounding_half_sum(a, INT32_MAX)
    c48_17 = 1515870810
    cneg32_17 = -1010580540
    one_q2 = 1 << 29
    x = wrap_int32(c48_17 + _fx_mul(half_denominator, cneg32_17))
    for _ in range(3):
        hdx = _fx_mul(half_denominator, x)
        one_minus = wrap_int32(one_q2 - hdx)
        x = wrap_int32(x + saturating_rounding_multiply_by_pot(_fx_mul(x, one_minus), 2))
    return saturating_rounding_multiply_by_pot(x, 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: Any) -> np.ndarray:
    """(1−x)/(1+x) for x a Q0.31 in [0, 1): the tanh helper of gemmlowp (Q2.29 Newton–Raphson)."""
    a = _i64(a)
    half_denominator = rounding_half_sum(a, INT32_MAX)
    one_q2 = 1 << 29
    x = wrap_int32(1515870810 + _fx_mul(half_denominator, -1010580540))
    for _ in range(3):
        hdx = _fx_mul(half_denominator, x)
        x = wrap_int32(x + saturating_rounding_multiply_by_pot(_fx_mul(x, wrap_int32(one_q2 - hdx)), 2))
    return saturating_rounding_multiply_by_pot(wrap_int32(x - one_q2), 2)


def logistic(a: Any, integer_bits: int) -> np.ndarray:
    """gemmlowp logistic of a Q(integer_bits) raw → Q0.31: 1/(1+exp(−|a|)), mirrored for a < 0."""
    a = _i64(a)
    pos = a > 0
    abs_a = np.where(pos, a, -a)
    r_pos = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs_a, integer_bits))
    r_neg = wrap_int32(INT32_MAX - r_pos)
    return np.where(a == 0, 1 << 30, np.where(pos, r_pos, r_neg))


def tanh(a: Any, integer_bits: int) -> np.ndarray:
    """gemmlowp tanh of a Q(integer_bits) raw → Q0.31: (1−e)/(1+e), e = exp(−2|a|).

    The doubling is ExactMulByPot<1>: the raw −|a| is reinterpreted with one more integer bit."""
    a = _i64(a)
    pos = a > 0
    abs_a = np.where(pos, a, -a)
    r_pos = one_minus_x_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(-abs_a, integer_bits + 1))
    return np.where(a == 0, 0, np.where(pos, r_pos, -r_pos))


def get_reciprocal(x: Any, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetReciprocal: (1/x as Q0.31 of the normalised x, num_bits_over_unit)."""
    x = _i64(x)
    ux = x & 0xFFFFFFFF
    # count leading zeros of a uint32: frexp is exact on 32-bit integers (bit length = exponent)
    _, bitlen = np.frexp(ux.astype(np.float64))
    clz = 32 - bitlen.astype(np.int64)
    num_bits_over_unit = x_integer_digits - clz
    shifted_minus_one = wrap_int32(((ux << clz) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), num_bits_over_unit


def preprocess_softmax_scaling(beta: float, input_scale: float, input_integer_bits: int,
                               single_rounding: bool = False) -> tuple[int, int]:
    """PreprocessSoftmaxScaling → (multiplier, left_shift) for the scaled input diff."""
    cap = float((1 << 30) - 1) if single_rounding else float((1 << 31) - 1)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - input_integer_bits)), cap)
    m, s = quantize_multiplier(real)
    return int(m), int(s)


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """CalculateInputRadius: largest |diff| whose exp still matters."""
    import math

    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1)
                          * float(1 << (total_signed_bits - input_integer_bits))
                          / float(1 << input_left_shift))
    return int(math.floor(max_input_rescaled))
