"""Accumulator width / overflow policy at its bounds, vs a pure-Python reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from hwsim.errors import HwsimError
from hwsim.fixedpoint.accumulate import (
    AccumulatorOverflow, AccumulatorSpec, accumulate_sequential, matmul_accumulate, narrow,
)

WIDTHS = (8, 16, 24, 32, 48)


def ref_wrap(v: int, bits: int) -> int:
    m = 1 << bits
    v %= m
    return v - m if v >= m // 2 else v


def ref_sat(v: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def bound_values(bits: int) -> list[int]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    vals = [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, 1, -1, 2 * hi + 5, 2 * lo - 7]
    return [v for v in vals if -(2 ** 63) <= v < 2 ** 63]


@pytest.mark.parametrize("bits", WIDTHS)
@pytest.mark.parametrize("lib", ["torch", "numpy"])
def test_wrap_and_saturate_at_bounds(bits, lib):
    vals = bound_values(bits)
    arr = torch.tensor(vals) if lib == "torch" else np.array(vals, dtype=np.int64)
    outside = sum(1 for v in vals if ref_sat(v, bits) != v)
    w, cw = narrow(arr, AccumulatorSpec(bits, "wrap"))
    s, cs = narrow(arr, AccumulatorSpec(bits, "saturate"))
    assert list(map(int, w)) == [ref_wrap(v, bits) for v in vals] and cw == outside
    assert list(map(int, s)) == [ref_sat(v, bits) for v in vals] and cs == outside


def test_int32_bounds_explicit():
    vals = [2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 31 - 2, -(2 ** 31) + 1]
    w, c = narrow(torch.tensor(vals), 32, "wrap")
    assert w.tolist() == [2 ** 31 - 1, -(2 ** 31), -(2 ** 31), 2 ** 31 - 1, 2 ** 31 - 2,
                          -(2 ** 31) + 1] and c == 2
    s, c = narrow(torch.tensor(vals), 32, "saturate")
    assert s.tolist() == [2 ** 31 - 1, 2 ** 31 - 1, -(2 ** 31), -(2 ** 31), 2 ** 31 - 2,
                          -(2 ** 31) + 1] and c == 2
    ok, c = narrow(torch.tensor([2 ** 31 - 1, -(2 ** 31)]), 32, "raise", op="fc1")
    assert ok.tolist() == [2 ** 31 - 1, -(2 ** 31)] and c == 0


@pytest.mark.parametrize("bits", WIDTHS)
def test_raise_names_op_width_value(bits):
    hi = (1 << (bits - 1)) - 1
    with pytest.raises(AccumulatorOverflow) as ei:
        narrow(torch.tensor([0, hi + 1, 3]), AccumulatorSpec(bits, "raise"), op="conv_3")
    err = ei.value
    assert isinstance(err, HwsimError)
    assert (err.op, err.bits, err.value) == ("conv_3", bits, hi + 1)
    assert "conv_3" in str(err) and str(bits) in str(err) and str(hi + 1) in str(err)
    with pytest.raises(AccumulatorOverflow):
        narrow(np.array([-(1 << (bits - 1)) - 1]), AccumulatorSpec(bits, "raise"))


def test_bad_spec_rejected():
    with pytest.raises(HwsimError):
        AccumulatorSpec(65, "wrap")
    with pytest.raises(HwsimError):
        AccumulatorSpec(32, "clip")


def ref_sequential(terms: list[int], bits: int, policy: str) -> tuple[int, int]:
    acc, events = 0, 0
    for t in terms:
        v = acc + t
        if ref_sat(v, bits) != v:
            events += 1
            if policy == "raise":
                raise OverflowError
        acc = ref_wrap(v, bits) if policy == "wrap" else ref_sat(v, bits)
    return acc, events


@settings(max_examples=100, deadline=None)
@given(bits=st.sampled_from((8, 16, 24)), policy=st.sampled_from(("wrap", "saturate")),
       rows=st.lists(st.lists(st.integers(-(2 ** 7), 2 ** 7 - 1), min_size=5, max_size=5),
                     min_size=1, max_size=4),
       scale=st.sampled_from((1, 100, 30000)))
def test_sequential_accumulator_matches_reference(bits, policy, rows, scale):
    spec = AccumulatorSpec(bits, policy)
    terms = [[ref_sat(v * scale, bits) for v in r] for r in rows]  # each term fits the register
    want = [ref_sequential(r, bits, policy) for r in terms]
    got, count = accumulate_sequential(torch.tensor(terms), spec, axis=1)
    assert got.tolist() == [w[0] for w in want]
    assert count == sum(w[1] for w in want)


def test_wrap_final_equals_per_step_wrap():
    terms = torch.tensor([[2 ** 30, 2 ** 30, 2 ** 30, -5, 2 ** 30]])
    seq, _ = accumulate_sequential(terms, AccumulatorSpec(32, "wrap"), axis=1)
    fin, _ = narrow(terms.sum(dim=1), AccumulatorSpec(32, "wrap"))
    assert seq.tolist() == fin.tolist() == [ref_wrap(4 * 2 ** 30 - 5, 32)]


def test_matmul_accumulate_counts_int16_saturations():
    a = torch.full((2, 8), -128, dtype=torch.int8)
    b = torch.full((8, 3), -128, dtype=torch.int8)
    a[1] = 1
    y, c = matmul_accumulate(a, b, AccumulatorSpec(16, "saturate"), op="fc")
    assert y.tolist() == [[32767] * 3, [-1024] * 3] and c == 3
    with pytest.raises(AccumulatorOverflow):
        matmul_accumulate(a, b, AccumulatorSpec(16, "raise"), op="fc")
