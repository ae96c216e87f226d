"""QFormat / QTensor: ranges, conventions, quantize/dequantize vs a pure-Python reference."""
from __future__ import annotations

import decimal

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from hwsim.errors import HwsimError
from hwsim.fixedpoint.qformat import (
    QFormat, QTensor, dequantize, quantize, quantize_grid, quantize_symmetric, quantize_ternary,
)


def c_round(v: float) -> int:
    return int(decimal.Decimal(v).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


@pytest.mark.parametrize("bits", [2, 3, 4, 7, 8, 12, 16, 24, 32])
def test_ranges_and_containers(bits):
    s = QFormat(bits, signed=True)
    u = QFormat(bits, signed=False)
    n = QFormat(bits, signed=True, narrow=True)
    assert (s.qmin, s.qmax) == (-2 ** (bits - 1), 2 ** (bits - 1) - 1)
    assert (u.qmin, u.qmax) == (0, 2 ** bits - 1)
    assert (n.qmin, n.qmax) == (-2 ** (bits - 1) + 1, 2 ** (bits - 1) - 1)
    assert s.container_bits == (8 if bits <= 8 else 16 if bits <= 16 else 32)
    info = torch.iinfo(u.torch_dtype)
    assert info.min <= u.qmin and info.max >= u.qmax
    info = torch.iinfo(s.torch_dtype)
    assert info.min <= s.qmin and info.max >= s.qmax
    assert s.fmt == f"int{bits}" and u.fmt == f"uint{bits}"


def test_conventions():
    t = QFormat.ternary(0.3)
    assert (t.qmin, t.qmax, t.bits) == (-1, 1, 2)
    assert (QFormat.tflite_int8(0.1, -3).qmin, QFormat.tflite_int8(0.1, weight=True).qmin) == (-128, -127)
    assert QFormat.tflite_int16(0.01).zero_point == 0 and QFormat.tflite_int16(0.01).bits == 16
    g = QFormat.grid(4, -0.3, 0.45)
    assert (g.qmin, g.qmax, g.signed) == (0, 15, False)
    assert g.scale == pytest.approx(0.05) and g.offset == -0.3
    assert g.real_zero_point == pytest.approx(6.0)
    g2 = QFormat.grid(8, -0.1, 0.25)  # z = 255·0.1/0.35 = 72.86
    assert g2.real_zero_point != int(g2.real_zero_point)  # non-integer zero point is expressible
    pc = QFormat.symmetric(8, [0.1, 0.2, 0.3], axis=0)
    assert pc.per_channel and pc.channels == 3


@pytest.mark.parametrize("kwargs", [
    dict(bits=1), dict(bits=33), dict(bits=8, scale=0.0), dict(bits=8, scale=float("nan")),
    dict(bits=8, zero_point=0.5), dict(bits=8, scale=(0.1, 0.2)),
    dict(bits=8, scale=(0.1, 0.2), zero_point=(1, 2, 3), axis=0),
    dict(bits=8, zero_point=1, offset=0.5), dict(bits=8, signed=False, narrow=True),
])
def test_invalid_formats_raise(kwargs):
    with pytest.raises(HwsimError):
        QFormat(**kwargs)


@settings(max_examples=100, deadline=None)
@given(vals=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=20),
       bits=st.sampled_from([4, 8, 16]), scale=st.sampled_from([0.5, 0.25, 0.1, 0.037]),
       zp=st.integers(-5, 5))
def test_quantize_matches_reference(vals, bits, scale, zp):
    fmt = QFormat.asymmetric(bits, scale, zp)
    x = torch.tensor(vals, dtype=torch.float64)
    want = [min(max(c_round(v / scale) + zp, fmt.qmin), fmt.qmax) for v in vals]
    q = quantize(x, fmt)
    assert q.payload.tolist() == want and q.payload.dtype == fmt.torch_dtype
    deq = dequantize(q, torch.float64).tolist()
    assert deq == [scale * (c - zp) for c in want]


def test_quantize_ties_half_away_not_even():
    fmt = QFormat.asymmetric(8, 1.0, 0)
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    assert quantize(x, fmt).payload.tolist() == [1, 2, 3, -1, -2, -3]
    assert quantize(x, fmt, "half_even").payload.tolist() == [0, 2, 2, 0, -2, -2]


def test_per_channel_quantize_along_axis():
    w = torch.tensor([[1.0, -2.0, 0.5], [10.0, -20.0, 5.0]])
    q = quantize_symmetric(w, 8, axis=0)
    assert q.fmt.scale == pytest.approx((2.0 / 127, 20.0 / 127))
    assert q.payload.tolist() == [[64, -127, 32], [64, -127, 32]]  # 63.5 rounds away to 64
    back = q.dequantize(torch.float64)
    assert back[1].tolist() == pytest.approx([64 * 20 / 127, -20.0, 32 * 20 / 127])


def test_bmpq_symmetric_per_tensor():
    w = torch.tensor([0.7, -0.35, 0.1, 0.0])
    q = quantize_symmetric(w, 4)
    s = 0.7 / 7
    assert q.fmt.scale == pytest.approx(s)
    assert q.payload.tolist() == [c_round(v / s) for v in [0.7, -0.35, 0.1, 0.0]]
    assert (q.fmt.qmin, q.fmt.qmax) == (-7, 7)


def test_ternary_twn():
    w = torch.tensor([1.0, -0.9, 0.05, -0.02, 0.6, 0.0])
    q = quantize_ternary(w)
    delta = 0.7 * float(np.mean(np.abs([1.0, -0.9, 0.05, -0.02, 0.6, 0.0])))
    kept = [abs(v) for v in [1.0, -0.9, 0.05, -0.02, 0.6, 0.0] if abs(v) > delta]
    assert q.payload.tolist() == [1, -1, 0, 0, 1, 0]
    assert q.fmt.scale == pytest.approx(sum(kept) / len(kept))


def test_zoqo_grid_codes_and_offset_dequant():
    x = torch.tensor([-1.0, -0.3, -0.275, 0.0, 0.45, 3.0], dtype=torch.float64)
    q = quantize_grid(x, 4, -0.3, 0.45)
    want = [c_round((min(max(v, -0.3), 0.45) + 0.3) / 0.05) for v in x.tolist()]
    assert q.payload.tolist() == want
    assert dequantize(q, torch.float64).tolist() == pytest.approx([-0.3 + 0.05 * c for c in want])


def test_meta_payload_shapes_only():
    fmt = QFormat.symmetric(8, 0.1)
    q = quantize(torch.empty(16, 128, 2048, device="meta"), fmt)
    assert q.is_meta and q.shape == (16, 128, 2048)
    info = QTensor.meta((3, 5), QFormat(4, signed=False)).tensor_info("w", "weight")
    assert (info.shape, info.bits, info.kind, info.fmt) == ((3, 5), 4, "weight", "uint4")
    assert QTensor.meta((3, 5), QFormat(4)).nbytes_container == 15
