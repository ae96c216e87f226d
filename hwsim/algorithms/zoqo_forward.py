"""Integer forward pass on grid codes for ZOQO (the emulator side of docs/algorithms.md §1.7).

Why: ZOQO's two loss queries must run on the b-bit codes themselves. A weight w = R_min + s·c, so a
linear layer on uint8 activations x (scale s_x, zero point 0) is

    y_real = s_x·s·(x·cᵀ) + s_x·R_min·Σ_k x_k + (R_min_b + s_b·c_b)

i.e. one exact integer GEMM (`int_matmul`/`int_conv2d`), one integer row sum, and a requantization
by fixed-point multipliers m/2^S computed once at setup. The zero point −R_min/s need not be an
integer ([A] of §1.7): the R_min term is carried separately through the row sum. Hidden outputs are
uint8 (ReLU fused, static per-layer scale calibrated once on float data); the last layer emits int16
logits with a static scale. Rounding of the requant: add 2^(S−1), arithmetic shift right (half up).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.errors import ModelError
from hwsim.fixedpoint.intops import int_conv2d, int_matmul
from hwsim.quant import QGroup, round_half_away
from hwsim.trace import TensorInfo, Trace

LOGIT_MIN, LOGIT_MAX = -(1 << 15), (1 << 15) - 1


def code_fmt(bits: int) -> str:
    """Numeric format the MACs of b-bit codes run in (the container)."""
    return "int8" if bits <= 8 else "int16"


@dataclass
class IntLayer:
    """One weighted layer of the integer network (ReLU and pooling fused in as flags)."""

    name: str
    kind: str                      # "linear" | "conv"
    w: str                         # group name of the weight codes
    b: str | None                  # group name of the bias codes
    relu: bool
    pool: int = 0                  # max-pool kernel after the ReLU (0 = none)
    padding: int = 0
    stride: int = 1
    flatten_before: bool = False
    in_scale: float = 1.0
    out_scale: float = 1.0
    out_max: int = 255
    mult: tuple[int, int, int, int] = (0, 0, 0, 0)   # m1 (acc), m2 (row sum), m3 (bias code), m0 (const)
    shift: int = 0
    kshape: tuple[int, ...] = ()


@dataclass
class IntNet:
    """Integer network over a dict of codes (group name → code tensor)."""

    layers: list[IntLayer]
    groups: dict[str, QGroup]
    in_scale: float
    in_bits: int = 8
    logit_scale: float = 1.0
    meta: dict = field(default_factory=dict)

    # ---- building --------------------------------------------------------------------------
    @classmethod
    def from_float(cls, model: nn.Module, groups: dict[str, QGroup], codes: dict[str, torch.Tensor],
                   calib_x: torch.Tensor, *,
                   in_scale: float = 1.0 / 255, act_bits: int = 8, act_margin: float = 1.0,
                   logit_margin: float = 2.0) -> "IntNet":
        """Walk an nn.Sequential of Flatten/Linear/Conv2d/ReLU/MaxPool2d; calibrate scales once."""
        mods = list(model.children()) if isinstance(model, nn.Sequential) else [model]
        layers: list[IntLayer] = []
        flatten = False
        for i, mod in enumerate(mods):
            pname = f"{i}"
            if isinstance(mod, nn.Flatten):
                flatten = True
            elif isinstance(mod, (nn.Linear, nn.Conv2d)):
                kind = "linear" if isinstance(mod, nn.Linear) else "conv"
                if kind == "conv" and (mod.groups != 1 or _pair(mod.dilation) != (1, 1)
                                       or len(set(_pair(mod.padding))) != 1 or len(set(_pair(mod.stride))) != 1):
                    raise ModelError(f"zoqo emulator: conv layer {i} must be ungrouped, undilated, square pad/stride")
                layers.append(IntLayer(
                    name=pname, kind=kind, w=f"{pname}.weight", b=f"{pname}.bias" if mod.bias is not None else None,
                    relu=False, padding=_pair(getattr(mod, "padding", 0))[0],
                    stride=_pair(getattr(mod, "stride", 1))[0], flatten_before=flatten,
                    kshape=tuple(mod.weight.shape)))
                flatten = False
            elif isinstance(mod, nn.ReLU):
                if not layers or layers[-1].relu:
                    raise ModelError(f"zoqo emulator: ReLU at {i} must follow a Linear/Conv2d")
                layers[-1].relu = True
            elif isinstance(mod, nn.MaxPool2d):
                k = _pair(mod.kernel_size)[0]
                if not layers or not layers[-1].relu or _pair(mod.stride)[0] != k:
                    raise ModelError(f"zoqo emulator: MaxPool2d at {i} must follow Conv→ReLU, stride = kernel")
                layers[-1].pool = k
            else:
                raise ModelError(f"zoqo emulator: layer {i} ({type(mod).__name__}) unsupported; "
                                 "use Flatten, Linear, Conv2d, ReLU, MaxPool2d")
        for lay in layers[:-1]:
            if not lay.relu:
                raise ModelError(f"zoqo emulator: hidden layer {lay.name} needs a ReLU (uint8 activations)")
        net = cls(layers, groups, in_scale, in_bits=8)
        net.meta["numel"] = {k: int(v.numel()) for k, v in codes.items()}
        net.meta["shape"] = {k: tuple(v.shape) for k, v in codes.items()}
        net._init_codes = {k: v.clone() for k, v in codes.items()}
        net._calibrate(calib_x, act_bits, act_margin, logit_margin)
        return net

    def _calibrate(self, x: torch.Tensor, act_bits: int, act_margin: float, logit_margin: float) -> None:
        """Static activation scales from a float pass with fake-quantized weights (setup, not training)."""
        h = x.float()
        scale = self.in_scale
        amax = (1 << act_bits) - 1
        for lay in self.layers:
            lay.in_scale = scale
            w = self._deq(lay.w)
            b = self._deq(lay.b) if lay.b else None
            if lay.flatten_before:
                h = h.flatten(1)
            h = F.linear(h, w, b) if lay.kind == "linear" else F.conv2d(h, w, b, lay.stride, lay.padding)
            if lay.relu:
                h = F.relu(h)
                if lay.pool:
                    h = F.max_pool2d(h, lay.pool)
                top = float(h.max()) * act_margin
                lay.out_scale, lay.out_max = (top if top > 0 else 1.0) / amax, amax
            else:
                top = float(h.abs().max()) * logit_margin
                lay.out_scale, lay.out_max = (top if top > 0 else 1.0) / LOGIT_MAX, LOGIT_MAX
                self.logit_scale = lay.out_scale
            self._set_multipliers(lay)
            scale = lay.out_scale
        self.meta["calibration_n"] = int(x.shape[0])

    def _deq(self, name: str) -> torch.Tensor:
        return self.groups[name].dequantize(self._init_codes[name])

    def _set_multipliers(self, lay: IntLayer) -> None:
        g = self.groups[lay.w]
        reals = [lay.in_scale * g.scale / lay.out_scale, lay.in_scale * g.r_min / lay.out_scale, 0.0, 0.0]
        if lay.b:
            gb = self.groups[lay.b]
            reals[2], reals[3] = gb.scale / lay.out_scale, gb.r_min / lay.out_scale
        top = max(abs(v) for v in reals)
        k = math.prod(lay.kshape[1:])
        # bound on |term|: acc ≤ K·amax·qmax; keep |m|·|term| < 2^62
        term = max(k * 255 * g.qmax, k * 255, (1 << 16))
        s = 62 - int(math.ceil(math.log2(term))) - max(0, int(math.ceil(math.log2(top))) + 1)
        lay.shift = max(1, min(s, 40))
        lay.mult = tuple(int(round_half_away(torch.tensor(v * 2.0 ** lay.shift, dtype=torch.float64)))
                         for v in reals)

    # ---- running ---------------------------------------------------------------------------
    @property
    def stackable(self) -> bool:
        return all(lay.kind == "linear" for lay in self.layers)

    def forward_stacked(self, codes: dict[str, torch.Tensor], xq: torch.Tensor, trace: Trace | None = None,
                        tags: tuple[str, ...] = ("+", "-"), phases: tuple[str, ...] = ("forward_plus", "forward_minus")
                        ) -> torch.Tensor:
        """Q queries at once: codes carry a leading query axis [Q, ...]; returns int64 logits [Q, N, C].

        Same integer arithmetic as `forward`, one kernel call per layer for all queries (why: the two
        ZOQO queries share the input batch, and per-call overhead dominates at this size). Events are
        still emitted per query, in that query's phase.
        """
        if not self.stackable:
            outs = []
            for qi, (tag, ph) in enumerate(zip(tags, phases)):
                cq = {n: c[qi] for n, c in codes.items()}
                if trace is not None:
                    with trace.phase(ph):
                        outs.append(self.forward(cq, xq, trace, tag))
                else:
                    outs.append(self.forward(cq, xq, None, tag))
            return torch.stack(outs)
        h = xq.flatten(1)
        hinfos = [TensorInfo("x", tuple(xq.shape), self.in_bits, "input", "uint8") for _ in tags]   # shared batch
        for li, lay in enumerate(self.layers):
            c = codes[lay.w]
            acc = int_matmul(h, c.transpose(-1, -2))                     # [Q, N, O]
            m1, m2, m3, m0 = lay.mult
            rs = h.sum(dim=-1, dtype=torch.int64, keepdim=True)
            const = m0 + (1 << (lay.shift - 1))
            if lay.b:
                bvec = torch.add(torch.full((1,), const, dtype=torch.int64), codes[lay.b], alpha=m3).unsqueeze(-2)
            else:
                bvec = torch.full((1,), const, dtype=torch.int64)
            # m1·acc + m2·rs + (m3·c_b + m0 + half), fused as integer axpys
            t = torch.add(bvec, rs, alpha=m2).add_(acc, alpha=m1)
            out = t.bitwise_right_shift_(lay.shift)
            lo, hi = (0, lay.out_max) if lay.relu else (LOGIT_MIN, LOGIT_MAX)
            sats = ((out < lo) | (out > hi)).flatten(1).sum(1).tolist() if trace is not None else None
            out = out.clamp_(lo, hi)
            if lay.relu:
                out = out.to(torch.uint8)
            if trace is not None:
                hb = h if h.dim() == 3 else h.expand(len(tags), *h.shape)
                for qi, (tag, ph) in enumerate(zip(tags, phases)):
                    with trace.phase(ph):
                        hinfos[qi] = self._emit(trace, lay, li, tag, hb[qi], c[qi], acc[qi], out[qi],
                                                hinfos[qi], int(sats[qi]))
            h = out
        return h.to(torch.int64)

    def forward(self, codes: dict[str, torch.Tensor], xq: torch.Tensor, trace: Trace | None = None,
                tag: str = "") -> torch.Tensor:
        """int64 logits (int16 range, scale `logit_scale`) for uint8 inputs `xq` (scale `in_scale`)."""
        h = xq
        hinfo = TensorInfo("x", tuple(xq.shape), self.in_bits, "input", "uint8")
        for li, lay in enumerate(self.layers):
            if lay.flatten_before:
                h = h.flatten(1)
            c = codes[lay.w]
            if lay.kind == "linear":
                acc = int_matmul(h, c.t())
                rs = h.sum(dim=1, dtype=torch.int64).unsqueeze(1)
            else:
                acc = int_conv2d(h, c, stride=lay.stride, padding=lay.padding)
                ones = torch.ones((1,) + tuple(c.shape[1:]), dtype=torch.uint8)
                rs = int_conv2d(h, ones, stride=lay.stride, padding=lay.padding)
            m1, m2, m3, m0 = lay.mult
            t = acc * m1 + rs * m2 + m0
            if lay.b:
                cb = codes[lay.b].to(torch.int64) * m3
                t = t + (cb.view(1, -1, 1, 1) if lay.kind == "conv" else cb)
            out = (t + (1 << (lay.shift - 1))) >> lay.shift
            lo, hi = (0, lay.out_max) if lay.relu else (LOGIT_MIN, LOGIT_MAX)
            sat = int(((out < lo) | (out > hi)).sum()) if trace is not None else 0
            out = out.clamp(lo, hi)
            if lay.relu:
                out = out.to(torch.uint8)
                if lay.pool:
                    out = F.max_pool2d(out.to(torch.int16), lay.pool).to(torch.uint8)
            if trace is not None:
                hinfo = self._emit(trace, lay, li, tag, h, c, acc, out, hinfo, sat)
            h = out
        return h.to(torch.int64)

    def _emit(self, trace: Trace, lay: IntLayer, li: int, tag: str, h, c, acc, out, hinfo: TensorInfo,
              sat: int) -> TensorInfo:
        g = self.groups[lay.w]
        fmt = code_fmt(g.bits)
        w_info = TensorInfo(f"{lay.w}{tag}", tuple(c.shape), g.bits, "param", f"uint{g.bits}")
        reads = [hinfo, w_info]
        if lay.b:
            gb = self.groups[lay.b]
            reads.append(TensorInfo(f"{lay.b}{tag}", self.meta["shape"][lay.b], gb.bits, "param",
                                    f"uint{gb.bits}"))
        last = li == len(self.layers) - 1
        bits = 16 if last else 8
        o_info = TensorInfo(f"act{lay.name}{tag}", tuple(out.shape), bits, "output" if last else "activation",
                            "int16" if last else "uint8")
        acc_info = TensorInfo(f"acc{lay.name}{tag}", tuple(acc.shape), 32, "scratch", "int32")
        macs = acc.numel() * math.prod(c.shape[1:])
        trace.alloc(acc_info)
        trace.alloc(o_info)
        work = {("mac", fmt): macs,
                ("elementwise", "int32"): h.numel() + 5 * acc.numel()}   # row sum + requant (3 mul-add, shift, clamp)
        if lay.pool:
            work[("compare", "int8")] = acc.numel()
        trace.op("conv2d" if lay.kind == "conv" else "fully_connected", f"{lay.name}{tag}", reads,
                 [o_info], work, saturations=sat, layer=lay.name, bits=g.bits)
        trace.free(acc_info)
        if hinfo.kind != "input":
            trace.free(hinfo)
        return o_info


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def quantize_input(x: torch.Tensor, in_scale: float = 1.0 / 255) -> torch.Tensor:
    """Sensor-side input quantization to uint8 (zero point 0), done once per dataset, not per step."""
    return round_half_away(x.double() / in_scale).clamp(0, 255).to(torch.uint8)
