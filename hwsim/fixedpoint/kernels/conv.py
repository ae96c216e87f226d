"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, int8 (per-channel or per-tensor) and 16x8.

Why: these carry nearly all MACs. The integer products go through `intops.int_conv2d /
int_matmul` (exact). Padding taps are *skipped* by TFLite, i.e. they contribute 0 to
Σ w·(x − Z_in); we pad the raw codes with Z_in and subtract Z_in·Σw afterwards, which is the
same sum but keeps the operands small enough for the fast exact float32 path.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsim.fixedpoint.kernels.base import Kernel, activation_range, compute_padding
from hwsim.fixedpoint.kernels.requant import Requantizer


def _requant_mode(kernel: Kernel, is_fc: bool) -> str:
    if kernel.tensor(0).fmt == "int16":
        return "int64"
    if is_fc and kernel.runtime == "litert-ref":
        return "float64"
    return "double"


def _torch():
    import torch

    return torch


class _ConvBase(Kernel):
    weight_inputs = (1,)
    bias_inputs = (2,)
    depthwise = False

    def prepare(self) -> None:
        self.require_types("int8", "uint8", "int16")
        x, w, y = self.tensor(0), self.tensor(1), self.out()
        if w.data is None:
            raise self.fail("non-constant filters are not supported")
        if len(x.shape) != 4:
            raise self.fail(f"expects a 4-D NHWC input, got shape {x.shape}")
        o = self.op.options
        self.stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
        self.dilation = (int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1)))
        wq = w.data.astype(np.int32) - (w.zp if not w.per_channel else 0)
        if self.depthwise:  # [1, KH, KW, C·mult] → [C·mult, 1, KH, KW], groups = C
            kh, kw = w.shape[1], w.shape[2]
            w_oihw = wq[0].transpose(2, 0, 1)[:, None]
            self.groups = x.shape[3]
        else:  # OHWI → OIHW
            kh, kw = w.shape[1], w.shape[2]
            w_oihw = wq.transpose(0, 3, 1, 2)
            self.groups = x.shape[3] // w.shape[3]
        self.kernel_hw = (kh, kw)
        oh, pt, pb = compute_padding(x.shape[1], kh, self.stride[0], self.dilation[0],
                                     int(o.get("padding", 0)))
        ow, pl, pr = compute_padding(x.shape[2], kw, self.stride[1], self.dilation[1],
                                     int(o.get("padding", 0)))
        if (oh, ow) != tuple(y.shape[1:3]):
            raise self.fail(f"computed output {oh}x{ow} does not match the model's {y.shape}")
        self.pads = (pl, pr, pt, pb)
        self.out_hw = (oh, ow)
        self.multiplier = w.shape[3] // x.shape[3] if self.depthwise else 1
        self.mw = int(np.abs(wq).max(initial=0))
        self.w_np = wq.astype(np.int8) if self.mw <= 127 else wq
        # the GEMM operand, converted once: float32 holds every |w| ≤ 2^24 exactly
        self.w_mm = self.w_np.astype(np.float32) if self.mw <= 2 ** 24 else self.w_np
        if self.backend == "intops":
            torch = _torch()
            self.w_t = torch.from_numpy(np.ascontiguousarray(w_oihw.astype(self.w_np.dtype)))
        self.zin = x.zp
        self.w_sum = w_oihw.reshape(w_oihw.shape[0], -1).sum(axis=1).astype(np.int64)
        bias = self.tensor(2).data if self.has_input(2) else None
        self.bias = (bias.astype(np.int64) if bias is not None
                     else np.zeros(w_oihw.shape[0], np.int64))
        # zero-point correction folded into the bias once: Σ w·(x−Z) = Σ w·x − Z·Σw
        self.offset = self.bias - self.zin * self.w_sum  # channel-last (NHWC)
        self.requant = Requantizer.build(x.s, w.scale, y.s, _requant_mode(self, False))
        self.act = activation_range(int(o.get("fused_activation_function", 0)), y)
        self.macs = int(np.prod(y.shape)) * kh * kw * w_oihw.shape[1]

    def _accumulate(self, x: np.ndarray) -> np.ndarray:
        """Σ w·x over the taps (raw codes, padded with Z_in) → int64 NHWC accumulators."""
        from hwsim.fixedpoint.kernels import npconv

        if self.backend == "intops":
            torch = _torch()
            import torch.nn.functional as F

            from hwsim.fixedpoint.intops import int_conv2d

            xt = torch.from_numpy(x).permute(0, 3, 1, 2)
            if any(self.pads):
                xt = F.pad(xt, self.pads, value=self.zin)
            acc = int_conv2d(xt, self.w_t, stride=self.stride, padding=(0, 0),
                             dilation=self.dilation, groups=self.groups)
            return acc.permute(0, 2, 3, 1).numpy()
        xp = npconv.pad_nhwc(x, self.pads, self.zin)
        if self.depthwise:
            return npconv.depthwise_nhwc(xp, self.w_np[0], self.out_hw, self.stride,
                                         self.dilation, self.multiplier, self.mw)
        if self.groups != 1:
            raise self.fail("grouped convolution needs backend='intops'")
        return npconv.conv2d_nhwc(xp, self.w_mm, self.out_hw, self.stride, self.dilation, self.mw)

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        from hwsim.fixedpoint.kernels.npconv import slice_step

        x = inputs[0]
        n = x.shape[0]
        y_spec = self.out()
        xs = np.ascontiguousarray(x.reshape((-1,) + x.shape[2:]))
        if self.backend == "intops":
            acc = self._accumulate(xs)
            yq, sat = self.requant.epilogue(acc, self.offset, y_spec.zp, *self.act, y_spec.dtype)
            return [yq.reshape((n,) + y_spec.shape)], sat
        # numpy: stream slices of the batch through accumulate + epilogue (cache-resident)
        oh, ow = self.out_hw
        kh, kw = self.kernel_hw
        per = oh * ow * (kh * kw * (1 if self.depthwise else xs.shape[3]) + self.w_sum.size)
        step = slice_step(per)
        out = np.empty((xs.shape[0], oh, ow, self.w_sum.size), y_spec.dtype)
        sat = 0
        for m0 in range(0, xs.shape[0], step):
            acc = self._accumulate(xs[m0:m0 + step])
            out[m0:m0 + step], s = self.requant.epilogue(acc, self.offset, y_spec.zp, *self.act,
                                                         y_spec.dtype)
            sat += s
        return [out.reshape((n,) + y_spec.shape)], sat

    def work(self) -> dict[tuple[str, str], int]:
        cls = "dw_mac" if self.depthwise else "mac"
        return {(cls, self.fmt): self.macs, ("elementwise", "int32"): int(np.prod(self.out().shape))}


class Conv2D(_ConvBase):
    """CONV_2D (NHWC input, OHWI filter, per-channel along O)."""

    event_op = "conv2d"


class DepthwiseConv2D(_ConvBase):
    """DEPTHWISE_CONV_2D (filter [1, KH, KW, C·mult], per-channel along the last dim)."""

    event_op = "depthwise_conv2d"
    depthwise = True


class FullyConnected(Kernel):
    """FULLY_CONNECTED (weights [units, K]); LiteRT-ref requantizes with the float64 formula."""

    event_op = "fully_connected"
    weight_inputs = (1,)
    bias_inputs = (2,)

    def prepare(self) -> None:
        self.require_types("int8", "uint8", "int16")
        x, w, y = self.tensor(0), self.tensor(1), self.out()
        if w.data is None:
            raise self.fail("non-constant weights are not supported")
        if w.shape[-1] == 0 or int(np.prod(x.shape)) % w.shape[-1]:
            raise self.fail(f"input {x.shape} does not divide into rows of {w.shape[-1]}")
        wq = w.data.astype(np.int32) - (w.zp if not w.per_channel else 0)
        self.k = w.shape[-1]
        self.units = w.shape[0]
        self.mw = int(np.abs(wq).max(initial=0))
        self.w_np = np.ascontiguousarray(wq.T.astype(np.int8 if self.mw <= 127 else np.int32))
        # the GEMM operand, converted once: float32 holds every |w| ≤ 2^24 exactly
        self.w_mm = self.w_np.astype(np.float32) if self.mw <= 2 ** 24 else self.w_np
        if self.backend == "intops":
            self.w_t = _torch().from_numpy(self.w_np)
        self.zin = x.zp
        bias = self.tensor(2).data if self.has_input(2) else None
        b = bias.astype(np.int64) if bias is not None else np.zeros(self.units, np.int64)
        self.offset = (b - self.zin * wq.sum(axis=1).astype(np.int64)).reshape(1, -1)
        self.requant = Requantizer.build(x.s, w.scale, y.s, _requant_mode(self, True))
        self.act = activation_range(int(self.op.options.get("fused_activation_function", 0)), y)
        self.rows = int(np.prod(x.shape)) // self.k

    def run(self, inputs: list[Any]) -> tuple[list[np.ndarray], int]:
        x = inputs[0]
        n = x.shape[0]
        y_spec = self.out()
        rows = np.ascontiguousarray(x).reshape(-1, self.k)
        if self.backend == "intops":
            from hwsim.fixedpoint.intops import int_matmul

            acc = int_matmul(_torch().from_numpy(rows), self.w_t).numpy()
        else:
            from hwsim.fixedpoint.kernels.npconv import exact_matmul

            acc = exact_matmul(rows, self.w_mm, None, self.mw)
        yq, sat = self.requant.epilogue(acc, self.offset.reshape(-1), y_spec.zp, *self.act,
                                        y_spec.dtype)
        return [yq.reshape((n,) + y_spec.shape)], sat

    def work(self) -> dict[tuple[str, str], int]:
        return {("mac", self.fmt): self.rows * self.k * self.units,
                ("elementwise", "int32"): self.rows * self.units}
