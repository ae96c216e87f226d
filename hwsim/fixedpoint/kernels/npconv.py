"""Exact integer NHWC conv / depthwise / matmul in numpy (the emulator's torch-free backend).

Why: `hwsim emulate` is benchmarked as a whole process against LiteRT; importing torch alone
takes longer than LiteRT's entire run on the small MLPerf Tiny models. These functions give the
same exact integer results as `intops.int_conv2d / int_matmul` (tests check both backends
against the oracles) using the same exactness argument: a float32 dot product of integers is
exact while every partial sum stays within 2^24, so the reduction is split into chunks that keep
K·max|a|·max|b| ≤ 2^24 and chunk results are added in int64. The torch backend
(`backend="intops"`) uses intops directly.
"""
from __future__ import annotations

import numpy as np

_F32_EXACT = 2 ** 24
#: keep an im2col buffer around this size (bytes) by processing the batch in slices
_COL_BYTES = 32 * 2 ** 20
#: samples per slice when the caller streams the batch through conv + epilogue (cache-sized)
_SLICE_BYTES = 2 * 2 ** 20


def slice_step(per_sample_elems: int) -> int:
    """How many samples per slice keep a float32 working set of ~_SLICE_BYTES."""
    return max(1, _SLICE_BYTES // max(1, 4 * per_sample_elems))


def _absmax(a: np.ndarray) -> int:
    if a.dtype == np.int8:
        return 128
    if a.dtype == np.uint8:
        return 255
    if a.size == 0:
        return 0
    return int(max(-int(a.min()), int(a.max())))


def exact_matmul(a: np.ndarray, b: np.ndarray, ma: int | None = None, mb: int | None = None
                 ) -> np.ndarray:
    """Exact `a @ b` for integer-valued 2-D operands via chunked float GEMMs; integer values
    returned as float32 (one exact GEMM) or int64 (chunked). `b` may already be float32 holding
    the integers (a prepared weight matrix: not converted again on every call)."""
    ma = _absmax(a) if ma is None else ma
    mb = _absmax(b) if mb is None else mb
    k = a.shape[-1]
    per = max(ma * mb, 1)
    if per > _F32_EXACT:  # single products not float32-exact: use float64 (exact to 2^53)
        chunk = max(1, 2 ** 53 // per)
        dtype = np.float64
    else:
        chunk = max(1, _F32_EXACT // per)
        dtype = np.float32
    if chunk >= k:  # one exact float GEMM; the caller's epilogue converts block by block
        return a.astype(dtype, copy=False) @ b.astype(dtype, copy=False)
    acc = None
    for k0 in range(0, k, chunk):
        part = (a[:, k0:k0 + chunk].astype(dtype, copy=False)
                @ b[k0:k0 + chunk].astype(dtype, copy=False)).astype(np.int64)
        acc = part if acc is None else acc + part
    return acc


def pad_nhwc(x: np.ndarray, pads: tuple[int, int, int, int], value: int) -> np.ndarray:
    """Pad H (top, bottom) and W (left, right) of an NHWC array; pads = (left, right, top, bottom)."""
    pl, pr, pt, pb = pads
    if not any(pads):
        return x
    m, h, w, c = x.shape
    out = np.full((m, h + pt + pb, w + pl + pr, c), value, dtype=x.dtype)
    out[:, pt:pt + h, pl:pl + w] = x
    return out


def _tap(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, stride, dilation) -> np.ndarray:
    sh, sw = stride
    dh, dw = dilation
    h0, w0 = kh * dh, kw * dw
    return xp[:, h0:h0 + sh * (oh - 1) + 1:sh, w0:w0 + sw * (ow - 1) + 1:sw, :]


def conv2d_nhwc(xp: np.ndarray, w_ohwi: np.ndarray, out_hw: tuple[int, int], stride, dilation,
                mw: int) -> np.ndarray:
    """Exact Σ x·w of a padded NHWC input with an OHWI filter → (M, OH, OW, O) integer values
    (float32/float64 when exact, else int64)."""
    m, _, _, c = xp.shape
    o, kh, kw, _ = w_ohwi.shape
    oh, ow = out_hw
    wmat = w_ohwi.reshape(o, -1).T  # (KH·KW·C, O), rows ordered (kh, kw, c) like the columns
    mx = _absmax(xp)
    if kh == kw == 1:
        cols = _tap(xp, 0, 0, oh, ow, stride, dilation).reshape(-1, c)
        return exact_matmul(cols, wmat, mx, mw).reshape(m, oh, ow, o)
    k = kh * kw * c
    step = max(1, _COL_BYTES // max(1, oh * ow * k * 4))
    out = None
    for m0 in range(0, m, step):
        part = xp[m0:m0 + step]
        cols = np.empty((part.shape[0], oh, ow, kh, kw, c), np.float32)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, :, i, j, :] = _tap(part, i, j, oh, ow, stride, dilation)
        res = exact_matmul(cols.reshape(-1, k), wmat, mx, mw).reshape(-1, oh, ow, o)
        if out is None:
            out = np.empty((m, oh, ow, o), res.dtype)
        out[m0:m0 + step] = res
    assert out is not None
    return out


def depthwise_nhwc(xp: np.ndarray, w_hwc: np.ndarray, out_hw: tuple[int, int], stride, dilation,
                   multiplier: int, mw: int) -> np.ndarray:
    """Exact depthwise Σ x·w (filter [KH, KW, C·mult]) of a padded NHWC input → int64."""
    kh, kw, _ = w_hwc.shape
    oh, ow = out_hw
    if multiplier > 1:
        xp = np.repeat(xp, multiplier, axis=3)
    mx = _absmax(xp)
    taps = kh * kw
    exact_f32 = taps * mx * mw <= _F32_EXACT
    dtype = np.float32 if exact_f32 else np.float64
    wf = w_hwc.astype(dtype)
    acc = None
    for i in range(kh):
        for j in range(kw):
            t = _tap(xp, i, j, oh, ow, stride, dilation).astype(dtype)
            t *= wf[i, j]
            if acc is None:
                acc = t
            else:
                acc += t
    assert acc is not None
    return acc  # exact integer values in float32/float64
