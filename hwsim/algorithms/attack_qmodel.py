"""A b-bit integer version of a small float classifier, for the attack environments (§1.11).

Why: the "Quant. Model", "Post Quant." and "ZOQO" environments attack a model whose weights and
activations are b-bit integers. This converts a trained float `nn.Module` (a chain of
Linear/Conv2d/ReLU/MaxPool2d/Flatten/BatchNorm/Dropout, as built by `hwsim.models`) into an
integer forward: every product is `hwsim.fixedpoint.intops.int_matmul/int_conv2d` on codes,
requantization is a fixed-point multiplier + rounding shift (TFLite style, half away from zero),
and each op is emitted into a `hwsim.trace.Trace`. Only the final logits are dequantized, for
the FP cross-entropy the attack maximizes (the paper keeps the loss FP).

Quantization choices ([A], all parameters): weights symmetric per output channel on b bits
(codes in ±(2^{b−1}−1)); activations asymmetric unsigned on b bits with min/max ranges
calibrated on the float model; the *input* quantizer has `input_bits` (default max(b, 8): an
8-bit image like a TFLite uint8 input) over the data range [lb, ub].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.algorithms.attack_grid import quantize_codes, recode, round_half_away
from hwsim.errors import ModelError
from hwsim.fixedpoint.intops import int_conv2d, int_matmul
from hwsim.trace import TensorInfo, Trace

_ACC_BITS = 32  # accumulator width of the integer kernels (int32, like TFLite / CMSIS-NN)


def _fmt(bits: int) -> str:
    return f"int{bits}"


def quantize_multiplier(m: float) -> tuple[int, int]:
    """Real multiplier m > 0 as (M0, n) with m ≈ M0·2^−n, M0 ∈ [2^30, 2^31) (TFLite QuantizeMultiplier)."""
    if not m > 0:
        raise ModelError(f"requantization multiplier must be > 0, got {m}")
    mant, exp = math.frexp(m)            # m = mant·2^exp, mant ∈ [0.5, 1)
    m0 = int(round(mant * 2 ** 31))
    if m0 == 2 ** 31:
        m0 //= 2
        exp += 1
    n = 31 - exp
    if n > 62:                           # tiny multiplier: keep the shift representable
        m0 >>= (n - 62)
        n = 62
    if n < 0:
        raise ModelError(f"requantization multiplier {m} too large for a right shift")
    return m0, n


def rounding_rshift(p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """round_half_away(p / 2^n) for int64 p and per-channel int64 shifts n ≥ 0."""
    half = torch.where(n > 0, torch.ones_like(n) << (n - 1).clamp(min=0), torch.zeros_like(n))
    mag = (p.abs() + half) >> n
    return torch.where(p < 0, -mag, mag)


@dataclass
class IntLayer:
    """One integer conv/linear (+ fused ReLU) (+ max-pool) stage."""

    name: str
    kind: str                          # "linear" | "conv"
    w_codes: torch.Tensor              # int64, OIHW or (out, in)
    w_scale: torch.Tensor              # float64 per output channel
    b_codes: torch.Tensor | None       # int64 at scale s_in·s_w
    in_scale: float
    in_zero: int
    in_bits: int
    relu: bool
    out_scale: float | None = None     # None for the final (logit) layer
    out_zero: int = 0
    out_bits: int = 8
    conv_args: dict = field(default_factory=dict)
    pool: dict | None = None           # max-pool kwargs applied to the output codes
    flatten_before: bool = False
    m0: torch.Tensor | None = None     # per-channel int64 multiplier
    shift: torch.Tensor | None = None  # per-channel int64 right shift


def _leaf_chain(model: nn.Module) -> list[nn.Module]:
    leaves = [m for m in model.modules() if len(list(m.children())) == 0]
    return [m for m in leaves if not isinstance(m, (nn.Dropout, nn.Identity))]


def _replay(chain: list[nn.Module], x: torch.Tensor, record: bool = False):
    """Run the chain in float; optionally record the post-(ReLU) output of each conv/linear."""
    outs = []
    for i, m in enumerate(chain):
        x = m(x)
        if record and isinstance(m, (nn.Linear, nn.Conv2d)):
            outs.append((i, x))
        if record and isinstance(m, nn.ReLU) and outs and outs[-1][0] == i - 1:
            outs[-1] = (i, x)
    return x, outs


class IntegerClassifier:
    """The b-bit integer twin of a float classifier; `logits(x)` / `logits_from_codes(c)`."""

    def __init__(self, model: nn.Module, calib_x: torch.Tensor, *, bits: int, lb: float, ub: float,
                 input_bits: int | None = None, weight_bits: int | None = None,
                 act_bits: int | None = None, name: str = "qmodel") -> None:
        self.bits = bits
        self.lb, self.ub = float(lb), float(ub)
        self.input_bits = input_bits if input_bits is not None else max(bits, 8)
        self.weight_bits = weight_bits or bits
        self.act_bits = act_bits or bits
        self.name = name
        self.saturations = 0
        model = model.eval()
        chain = _fold_batchnorm(_leaf_chain(model))
        supported = (nn.Linear, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten)
        bad = [type(m).__name__ for m in chain if not isinstance(m, supported)]
        if bad:
            raise ModelError(f"integer attack model: unsupported layer(s) {sorted(set(bad))}; "
                             "supported: Linear, Conv2d, ReLU, MaxPool2d, Flatten, BatchNorm, Dropout")
        with torch.no_grad():
            ref = model(calib_x[:8])
            rep, _ = _replay(chain, calib_x[:8])
            if not torch.allclose(ref, rep, atol=1e-4, rtol=1e-4):
                raise ModelError("integer attack model: the model's forward is not a plain chain of its "
                                 "layers (registration order); build it as an nn.Sequential")
            _, acts = _replay(chain, calib_x, record=True)
        self.layers = self._build(chain, acts)

    # ---- construction -----------------------------------------------------------------------
    def _build(self, chain: list[nn.Module], acts) -> list[IntLayer]:
        in_scale = (self.ub - self.lb) / (2 ** self.input_bits - 1)
        in_zero = int(round_half_away(torch.tensor(-self.lb / in_scale)).item())
        in_bits = self.input_bits
        layers: list[IntLayer] = []
        compute = [i for i, m in enumerate(chain) if isinstance(m, (nn.Linear, nn.Conv2d))]
        pending_flatten = False
        act_iter = iter(acts)
        for i, m in enumerate(chain):
            if isinstance(m, nn.Flatten):
                pending_flatten = True
                continue
            if isinstance(m, nn.MaxPool2d):
                if not layers:
                    raise ModelError("integer attack model: max-pool before the first conv is unsupported")
                layers[-1].pool = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding)
                continue
            if isinstance(m, nn.ReLU):
                continue
            _, a = next(act_iter)
            is_last = i == compute[-1]
            relu = i + 1 < len(chain) and isinstance(chain[i + 1], nn.ReLU)
            w = m.weight.detach().to(torch.float64)
            qmax = 2 ** (self.weight_bits - 1) - 1
            absmax = w.reshape(w.shape[0], -1).abs().amax(dim=1)
            w_scale = torch.where(absmax > 0, absmax / qmax, torch.ones_like(absmax))
            shape = (-1,) + (1,) * (w.dim() - 1)
            w_codes = round_half_away(w / w_scale.view(shape)).clamp(-qmax, qmax).to(torch.int64)
            acc_scale = in_scale * w_scale
            b_codes = None
            if m.bias is not None:
                b_codes = round_half_away(m.bias.detach().to(torch.float64) / acc_scale).to(torch.int64)
            layer = IntLayer(f"{self.name}.{i}", "conv" if isinstance(m, nn.Conv2d) else "linear",
                             w_codes, w_scale, b_codes, in_scale, in_zero, in_bits, relu,
                             flatten_before=pending_flatten)
            pending_flatten = False
            if isinstance(m, nn.Conv2d):
                if m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise ModelError(f"integer attack model: conv {i} needs numeric zero padding")
                layer.conv_args = dict(stride=m.stride, padding=m.padding, dilation=m.dilation,
                                       groups=m.groups)
            if not is_last:
                lo = min(float(a.min()), 0.0)
                hi = max(float(a.max()), lo + 1e-8)
                out_scale = (hi - lo) / (2 ** self.act_bits - 1)
                out_zero = int(round_half_away(torch.tensor(-lo / out_scale)).item())
                layer.out_scale, layer.out_zero, layer.out_bits = out_scale, out_zero, self.act_bits
                pairs = [quantize_multiplier(float(s) / out_scale) for s in acc_scale]
                layer.m0 = torch.tensor([p[0] for p in pairs], dtype=torch.int64)
                layer.shift = torch.tensor([p[1] for p in pairs], dtype=torch.int64)
                in_scale, in_zero, in_bits = out_scale, out_zero, self.act_bits
            layers.append(layer)
        return layers

    # ---- integer forward ---------------------------------------------------------------------
    def input_codes(self, x: torch.Tensor) -> torch.Tensor:
        """FP image in [lb, ub] → input codes (the model's own input quantizer)."""
        return quantize_codes(x, self.lb, self.ub, self.input_bits)

    def grid_to_input_codes(self, codes: torch.Tensor, grid_bits: int) -> torch.Tensor:
        """ZOQO: b-bit grid codes of [lb, ub] → input codes, integer only (exact when 2^b−1 | 2^ib−1)."""
        if grid_bits == self.input_bits:
            return codes.to(torch.int64)
        return recode(codes, grid_bits, self.input_bits)

    def logits(self, x: torch.Tensor, trace: Trace | None = None) -> torch.Tensor:
        return self.logits_from_codes(self.input_codes(x), trace)

    def logits_from_codes(self, q: torch.Tensor, trace: Trace | None = None) -> torch.Tensor:
        """Integer forward on input codes; returns float64 logits (dequantized accumulators)."""
        batch = q.shape[0]
        info = TensorInfo(f"{self.name}.input", tuple(q.shape), self.input_bits, "input",
                          _fmt(self.input_bits))
        if trace is not None:
            for layer in self.layers:
                trace.alloc(TensorInfo(f"{layer.name}.weight", tuple(layer.w_codes.shape),
                                       self.weight_bits, "weight", _fmt(self.weight_bits)))
                if layer.b_codes is not None:
                    trace.alloc(TensorInfo(f"{layer.name}.bias", tuple(layer.b_codes.shape), 32,
                                           "bias", "int32"))
            trace.alloc(info)
        for layer in self.layers:
            if layer.flatten_before:
                q = q.reshape(batch, -1)
            x = q - layer.in_zero
            if layer.kind == "conv":
                acc = int_conv2d(x, layer.w_codes, **layer.conv_args)
                shape = (1, -1, 1, 1)
            else:
                acc = int_matmul(x, layer.w_codes.t())
                shape = (1, -1)
            if layer.b_codes is not None:
                acc = acc + layer.b_codes.view(shape)
            lim = 2 ** (_ACC_BITS - 1)
            sat = int(((acc >= lim) | (acc < -lim)).sum())
            self.saturations += sat
            acc = acc.clamp(-lim, lim - 1)
            macs = layer.w_codes[0].numel() * acc[0].numel() * batch
            w_info = TensorInfo(f"{layer.name}.weight", tuple(layer.w_codes.shape), self.weight_bits,
                                "weight", _fmt(self.weight_bits))
            reads = [info, w_info]
            if layer.b_codes is not None:
                reads.append(TensorInfo(f"{layer.name}.bias", tuple(layer.b_codes.shape), 32, "bias", "int32"))
            if layer.out_scale is None:        # final layer: int32 logits, dequantized for the FP loss
                out = TensorInfo(f"{layer.name}.logits", tuple(acc.shape), 32, "output", "int32")
                if trace is not None:
                    trace.alloc(out)
                    trace.op("conv2d" if layer.kind == "conv" else "fully_connected", layer.name, reads,
                             [out], {("mac", _fmt(self.weight_bits)): macs}, saturations=sat,
                             layer=layer.name, bits=self.weight_bits)
                    trace.free(info)
                return acc.to(torch.float64) * (layer.in_scale * layer.w_scale).view(shape)
            p = acc * layer.m0.view(shape)
            y = layer.out_zero + rounding_rshift(p, layer.shift.view(shape))
            lo = layer.out_zero if layer.relu else 0
            y = y.clamp(lo, 2 ** layer.out_bits - 1)
            if layer.pool is not None:
                y = F.max_pool2d(y.to(torch.float64), **layer.pool).to(torch.int64)
            out = TensorInfo(f"{layer.name}.out", tuple(y.shape), layer.out_bits, "activation",
                             _fmt(layer.out_bits))
            if trace is not None:
                trace.alloc(out)
                work = {("mac", _fmt(self.weight_bits)): macs, ("elementwise", "int32"): 3 * acc.numel()}
                if layer.pool is not None:
                    work[("compare", _fmt(layer.out_bits))] = acc.numel()
                trace.op("conv2d" if layer.kind == "conv" else "fully_connected", layer.name, reads,
                         [out], work, saturations=sat, layer=layer.name, bits=self.weight_bits,
                         fused="relu" if layer.relu else "", pool=bool(layer.pool))
                trace.free(info)
            q, info = y, out
        raise ModelError("integer attack model has no final linear layer")


def _fold_batchnorm(chain: list[nn.Module]) -> list[nn.Module]:
    """Fold BatchNorm into the preceding conv/linear (inference form) so the chain is integer-able."""
    out: list[nn.Module] = []
    for m in chain:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not out or not isinstance(out[-1], (nn.Conv2d, nn.Linear)):
                raise ModelError("integer attack model: BatchNorm must follow a conv/linear layer")
            prev = out[-1]
            with torch.no_grad():
                std = torch.sqrt(m.running_var + m.eps)
                gamma = m.weight if m.weight is not None else torch.ones_like(std)
                beta = m.bias if m.bias is not None else torch.zeros_like(std)
                scale = gamma / std
                fused = type(prev).__new__(type(prev))
                fused.__dict__ = dict(prev.__dict__)
                fused._parameters = dict(prev._parameters)
                w = prev.weight * scale.view((-1,) + (1,) * (prev.weight.dim() - 1))
                b0 = prev.bias if prev.bias is not None else torch.zeros_like(std)
                fused._parameters["weight"] = nn.Parameter(w)
                fused._parameters["bias"] = nn.Parameter((b0 - m.running_mean) * scale + beta)
            out[-1] = fused
            continue
        out.append(m)
    return out
