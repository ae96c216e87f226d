"""Exact integer kernels vs independent int64 / pure-Python references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from hwsim.errors import HwsimError
from hwsim.fixedpoint.intops import int_conv2d, int_linear, int_matmul


def py_matmul(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]


def np_conv2d(x, w, stride, padding, dilation, groups):
    """Direct int64 convolution: zero-pad, then sum shifted slices per kernel tap."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=np.int64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), dtype=np.int64)
    og = o // groups
    for oc in range(o):
        g = oc // og
        for ci in range(cg):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, g * cg + ci, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                               j * dw:j * dw + sw * (ow - 1) + 1:sw]
                    out[:, oc] += w[oc, ci, i, j] * patch
    return out


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 4), k=st.integers(1, 12), n=st.integers(1, 4),
       bits=st.sampled_from([2, 8, 9, 16, 24, 31, 40]), data=st.data())
def test_int_matmul_matches_python(m, k, n, bits, data):
    lim = 2 ** (bits - 1)
    ints = st.integers(-lim, lim - 1)
    a = data.draw(st.lists(st.lists(ints, min_size=k, max_size=k), min_size=m, max_size=m))
    b = data.draw(st.lists(st.lists(ints, min_size=n, max_size=n), min_size=k, max_size=k))
    want = py_matmul(a, b)
    if any(abs(v) >= 2 ** 63 for r in want for v in r):
        return
    got = int_matmul(torch.tensor(a), torch.tensor(b))
    assert got.dtype == torch.int64 and got.tolist() == want
    # integer-valued float inputs give the same (exact) result
    if bits <= 24:
        assert int_matmul(torch.tensor(a, dtype=torch.float64),
                          torch.tensor(b, dtype=torch.float32)).tolist() == want


@pytest.mark.parametrize("k", [1, 1023, 1024, 1025, 4096, 5000])
def test_int8_worst_case_magnitudes(k):
    a = torch.full((3, k), -128, dtype=torch.int8)
    b = torch.full((k, 2), -128, dtype=torch.int8)
    got = int_matmul(a, b)
    assert got.tolist() == [[k * 16384] * 2] * 3
    b[:, 1] = 127
    assert int_matmul(a, b)[:, 1].tolist() == [-k * 128 * 127] * 3


@pytest.mark.parametrize("shape_a,shape_b,lo,hi", [
    ((2, 3, 37, 1500), (1500, 5), -128, 128),        # batched, 2 float32 chunks
    ((4, 700), (700, 9), 0, 256),                     # uint8-with-offset magnitudes
    ((6, 300), (300, 4), -2 ** 15, 2 ** 15),          # int16 x int16 -> float64 path
    ((5, 64), (64, 3), -2 ** 31, 2 ** 31),            # int32 x int32 -> limb split
    ((2, 4, 33), (2, 33, 6), -128, 128),              # batched b
    ((33,), (33, 4), -128, 128),                      # 1-D a
])
def test_int_matmul_vs_int64_torch(shape_a, shape_b, lo, hi):
    g = torch.Generator().manual_seed(1)
    a = torch.randint(lo, hi, shape_a, generator=g)
    b = torch.randint(lo, hi, shape_b, generator=g)
    assert torch.equal(int_matmul(a, b), torch.matmul(a, b))


def test_int_linear_and_bias():
    g = torch.Generator().manual_seed(2)
    x = torch.randint(-128, 128, (4, 10), generator=g, dtype=torch.int8)
    w = torch.randint(-127, 128, (6, 10), generator=g, dtype=torch.int8)
    bias = torch.randint(-2 ** 20, 2 ** 20, (6,), generator=g, dtype=torch.int32)
    want = [[sum(int(x[i, k]) * int(w[o, k]) for k in range(10)) + int(bias[o]) for o in range(6)]
            for i in range(4)]
    assert int_linear(x, w, bias).tolist() == want


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), groups=st.sampled_from([1, 2]), cg=st.integers(1, 3),
       og=st.integers(1, 2), h=st.integers(3, 6), k=st.sampled_from([1, 2, 3]),
       stride=st.sampled_from([1, 2]), pad=st.integers(0, 2), dil=st.sampled_from([1, 2]),
       bits=st.sampled_from([8, 16, 28]), seed=st.integers(0, 2 ** 16))
def test_int_conv2d_matches_direct(n, groups, cg, og, h, k, stride, pad, dil, bits, seed):
    if h + 2 * pad < dil * (k - 1) + 1:
        return
    g = torch.Generator().manual_seed(seed)
    lim = 2 ** (bits - 1)
    x = torch.randint(-lim, lim, (n, groups * cg, h, h), generator=g)
    w = torch.randint(-lim, lim, (groups * og, cg, k, k), generator=g)
    want = np_conv2d(x.numpy(), w.numpy(), (stride, stride), (pad, pad), (dil, dil), groups)
    got = int_conv2d(x, w, stride=stride, padding=pad, dilation=dil, groups=groups)
    assert got.dtype == torch.int64 and np.array_equal(got.numpy(), want)


def test_int_conv2d_channel_chunks_worst_case():
    # K = 300·9 taps · 2^14 > 2^24: float32 chunks over channels, per group.
    x = torch.full((1, 600, 4, 4), -128, dtype=torch.int8)
    w = torch.full((4, 300, 3, 3), -128, dtype=torch.int8)
    w[1] = 127
    got = int_conv2d(x, w, padding=1, groups=2)
    want = np_conv2d(x.numpy(), w.numpy(), (1, 1), (1, 1), (1, 1), 2)
    assert np.array_equal(got.numpy(), want)
    assert int(got[0, 0, 1, 1]) == 300 * 9 * 16384


def test_meta_in_meta_out():
    a = torch.empty(16, 128, 2048, dtype=torch.int8, device="meta")
    w = torch.empty(8192, 2048, dtype=torch.int8, device="meta")
    y = int_linear(a, w, torch.empty(8192, dtype=torch.int32, device="meta"))
    assert y.device.type == "meta" and y.shape == (16, 128, 8192) and y.dtype == torch.int64
    c = int_conv2d(torch.empty(1, 8, 10, 10, device="meta"), torch.empty(4, 8, 3, 3, device="meta"),
                   stride=2, padding=1)
    assert c.device.type == "meta" and c.shape == (1, 4, 5, 5)


def test_non_integer_float_rejected():
    with pytest.raises(HwsimError):
        int_matmul(torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0], [2.0]]))
    with pytest.raises(HwsimError):
        int_matmul(torch.tensor([[float("nan")]]), torch.tensor([[1.0]]))


def test_zero_and_empty_operands():
    assert int_matmul(torch.zeros(2, 3, dtype=torch.int64), torch.ones(3, 4, dtype=torch.int64)
                      ).tolist() == [[0] * 4] * 2
    assert int_matmul(torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0, 4, dtype=torch.int64)
                      ).tolist() == [[0] * 4] * 2


def test_exact_even_if_user_lowered_matmul_precision():
    g = torch.Generator().manual_seed(4)
    a = torch.randint(-128, 128, (64, 1024), generator=g, dtype=torch.int8)
    b = torch.randint(-128, 128, (1024, 32), generator=g, dtype=torch.int8)
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        assert torch.equal(int_matmul(a, b), torch.matmul(a.long(), b.long()))
        assert torch.get_float32_matmul_precision() == "medium"  # restored
    finally:
        torch.set_float32_matmul_precision(old)


@pytest.mark.parametrize("groups,k,stride,pad,dil", [(1, 3, 1, 1, 1), (2, 3, 2, 2, 2),
                                                     (2, 2, 1, 0, 1), (1, 3, 1, "same", 1),
                                                     (1, 2, 1, "same", 1)])
def test_off_cpu_gemm_conv_path_on_cpu(groups, k, stride, pad, dil):
    # The im2col path used on GPUs (cuDNN may choose inexact FFT/Winograd); checked here on CPU.
    from hwsim.fixedpoint.intops import _conv_via_gemm

    g = torch.Generator().manual_seed(k + groups)
    x = torch.full((2, 4, 7, 7), -128, dtype=torch.int64)
    x[1] = torch.randint(-128, 128, (4, 7, 7), generator=g)
    w = torch.randint(-128, 128, (6, 4 // groups, k, k), generator=g)
    padding = pad if isinstance(pad, str) else (pad, pad)
    got = _conv_via_gemm(x, w, groups, dict(stride=(stride, stride), padding=padding,
                                             dilation=(dil, dil)))
    if pad == "same":  # reference: explicit asymmetric zero padding, then a valid conv
        t = dil * (k - 1)
        xp = np.pad(x.numpy(), ((0, 0), (0, 0), (t // 2, t - t // 2), (t // 2, t - t // 2)))
        want = np_conv2d(xp, w.numpy(), (1, 1), (0, 0), (dil, dil), groups)
    else:
        want = np_conv2d(x.numpy(), w.numpy(), (stride, stride), (pad, pad), (dil, dil), groups)
    assert np.array_equal(got.numpy(), want)


def test_large_strided_and_transposed_operands():
    # > 32768 elements: exercises the piecewise conversion (contiguous, transposed, strided).
    g = torch.Generator().manual_seed(9)
    x = torch.randint(-128, 128, (64, 2 * 700), generator=g, dtype=torch.int8)
    w = torch.randint(-128, 128, (300, 700), generator=g, dtype=torch.int8)
    xs = x[:, ::2]  # non-contiguous, not a transpose
    want = torch.matmul(xs.long(), w.long().t())
    assert torch.equal(int_linear(xs, w), want)
    assert torch.equal(int_matmul(xs.contiguous(), w.t()), want)
