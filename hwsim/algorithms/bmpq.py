"""BMPQ training (Kundu et al., DATE 2022) in the emulator: quantizers, layers, bit gradients.

Why: BMPQ trains a mixed-precision network from scratch and re-assigns per-layer widths with an
ILP driven by epoch-normalised bit gradients (ENBG). Here every forward product is an exact
integer conv/matmul (`hwsim.fixedpoint.intops`) on the codes the device would hold, and every op
is an event in a `Trace`, so the same code yields accuracy *and* cost. The backward pass is float,
as in the paper (STE through the quantizers), and is emitted as fp32 work.

Pieces (docs/algorithms.md §3):
  quantize_weight  symmetric signed, S = max|W|/(2^{q−1}−1) (eqs. 3–4); TWN ternary at 2 bits
  pact_quantize    a_o = clip(a, 0, α), codes = round(a_o·(2^k−1)/α) (eqs. 1–2), α learnable
  nbg              S(q_max)·(2^{q_max}−1)·mean|∂L/∂w^q|  (closed form of eqs. 5–7, §3.2–3.3)
  QLayer           PACT input quantizer (the layer's own width) + exact integer conv/linear
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.fixedpoint.intops import int_conv2d, int_matmul
from hwsim.trace import TensorInfo, Trace

# ---- quantizers --------------------------------------------------------------------------------


def weight_scale(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Eq. 3: S = max|W| / (2^{q−1} − 1) (a 0-d tensor; 1 for an all-zero tensor)."""
    s = w.detach().abs().amax() / (2 ** (bits - 1) - 1)
    return torch.where(s > 0, s, torch.ones_like(s))


def quantize_weight(w: torch.Tensor, bits: int, *, ternary_at_2: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes and scale of a weight tensor: w^q = codes · scale.

    q bits: codes = round(W/S) ∈ [−(2^{q−1}−1), 2^{q−1}−1] (eq. 4; round half to even, torch).
    2 bits with `ternary_at_2`: TWN (Li et al. 2016) — Δ = 0.7·mean|W|, α = mean(|W_i| : |W_i| > Δ),
    codes = sign(W)·1[|W| > Δ] ∈ {−1, 0, 1}, scale α.
    """
    wd = w.detach()
    if bits == 2 and ternary_at_2:
        a = wd.abs()
        delta = 0.7 * a.mean()
        mask = a > delta
        count = mask.sum()
        alpha = torch.where(count > 0, (a * mask).sum() / count.clamp(min=1), torch.ones_like(delta))
        codes = torch.sign(wd) * mask
        return codes, alpha
    s = weight_scale(wd, bits)
    qmax = 2 ** (bits - 1) - 1
    codes = torch.clamp(torch.round(wd / s), -qmax, qmax)
    return codes, s


def pact_quantize(a: torch.Tensor, alpha: torch.Tensor, bits: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PACT (eqs. 1–2): returns (fake-quantized value with STE grads, integer codes, scale).

    Gradients follow the PACT paper: ∂/∂a = 1[0 ≤ a < α], ∂/∂α = 1[a ≥ α].
    """
    levels = 2 ** bits - 1
    mid = ((a >= 0) & (a < alpha)).to(a.dtype).detach()
    high = (a >= alpha).to(a.dtype).detach()
    clipped = a * mid + alpha * high                  # = clip(a, 0, α), with PACT's gradients
    scale = alpha.detach() / levels
    codes = torch.round(clipped.detach() / scale).clamp(0, levels)
    fq = clipped + (codes * scale - clipped).detach()
    return fq, codes, scale


def nbg(weight: torch.Tensor, grad_wq: torch.Tensor, q_max: int) -> float:
    """Normalised bit gradient of a layer, closed form (§3.3):

    NBG = mean_j Σ_i |∂L/∂b_{j,i}| = S(q_max) · (2^{q_max} − 1) · mean_j |∂L/∂w^q_j|.
    """
    s = float(weight_scale(weight, q_max))
    return s * (2 ** q_max - 1) * float(grad_wq.detach().abs().mean())


# ---- exact integer products with float (STE) backward ------------------------------------------


class _IntConv(torch.autograd.Function):
    """Forward: exact integer conv on codes, rescaled. Backward: float conv grads on w^q, a^q."""

    @staticmethod
    def forward(ctx, a_fq, w_fq, a_codes, w_codes, scale, stride, padding):
        acc = int_conv2d(a_codes, w_codes, stride=stride, padding=padding)
        ctx.save_for_backward(a_fq, w_fq)
        ctx.conf = (stride, padding)
        return acc.to(torch.float64).mul(scale.to(torch.float64)).to(a_fq.dtype), acc

    @staticmethod
    def backward(ctx, grad_y, _grad_acc):
        a_fq, w_fq = ctx.saved_tensors
        stride, padding = ctx.conf
        ga = torch.nn.grad.conv2d_input(a_fq.shape, w_fq, grad_y, stride=stride, padding=padding)
        gw = torch.nn.grad.conv2d_weight(a_fq, w_fq.shape, grad_y, stride=stride, padding=padding)
        return ga, gw, None, None, None, None, None


class _IntLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a_fq, w_fq, a_codes, w_codes, scale):
        acc = int_matmul(a_codes, w_codes.t())
        ctx.save_for_backward(a_fq, w_fq)
        return acc.to(torch.float64).mul(scale.to(torch.float64)).to(a_fq.dtype), acc

    @staticmethod
    def backward(ctx, grad_y, _grad_acc):
        a_fq, w_fq = ctx.saved_tensors
        return grad_y @ w_fq, grad_y.t() @ a_fq, None, None, None


# ---- the layer ---------------------------------------------------------------------------------


def _fmt(bits: int) -> str:
    return f"int{bits}"


@dataclass
class LayerRecord:
    """What one forward pass of a layer did (shapes and widths), to emit backward/update events."""

    name: str
    kind: str
    bits: int
    batch: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    macs: int
    has_bias: bool
    saved: list[TensorInfo] = field(default_factory=list)


class QLayer(nn.Module):
    """A BMPQ layer: PACT input quantizer at the layer's width + exact integer conv/linear.

    The first layer quantizes the raw input unsigned over a fixed (non-learned) range
    [0, `input_range`] (digits pixels are in [0, 1]); every other layer's PACT clip α is learned.
    """

    def __init__(self, spec, *, alpha_init: float = 4.0, input_range: float | None = None,
                 ternary_at_2: bool = True, device=None):
        super().__init__()
        self.name, self.kind, self.spec = spec.name, spec.kind, spec
        self.weight = nn.Parameter(torch.empty(spec.weight_shape, device=device))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels, device=device)) if spec.bias else None
        if device is None or torch.device(device).type != "meta":
            nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.input_range = input_range
        self.alpha = None if input_range is not None else nn.Parameter(
            torch.tensor(float(alpha_init), device=device))
        self.bits = int(spec.fixed_bits or 8)
        self.ternary_at_2 = ternary_at_2

    def forward(self, x: torch.Tensor, trace: Trace, records: list[LayerRecord],
                *, src: TensorInfo | None = None, quantized: tuple | None = None):
        """x: the previous layer's (dequantized int32) output or the raw input.

        `quantized` lets a tied shortcut reuse the block input codes of its partner layer.
        Returns (y, acc_info) where acc_info is the int32 accumulator TensorInfo written.
        """
        b, batch = self.bits, x.shape[0]
        if quantized is None:
            if self.alpha is None:
                alpha = torch.tensor(float(self.input_range), device=x.device)
                a_fq, a_codes, a_scale = pact_quantize(x, alpha, b)
            else:
                a_fq, a_codes, a_scale = pact_quantize(x, self.alpha, b)
            codes_info = TensorInfo(f"{self.name}.in_codes", tuple(x.shape), b, "activation", _fmt(b))
            src = src or TensorInfo(f"{self.name}.input", tuple(x.shape), 32, "input", "fp32")
            trace.alloc(codes_info)
            trace.op("pact_quantize", f"{self.name}.pact", [src], [codes_info],
                     {("elementwise", "int32"): 3 * x.numel()}, layer=self.name, bits=b)
        else:
            a_fq, a_codes, a_scale, codes_info = quantized
        # weights: re-quantize the FP32 shadow weights for every forward pass (paper)
        w_codes, w_scale = quantize_weight(self.weight, b, ternary_at_2=self.ternary_at_2)
        w_fq = self.weight + (w_codes * w_scale - self.weight).detach()     # STE
        if w_fq.requires_grad:
            w_fq.retain_grad()
        self._w_fq = w_fq
        shadow = TensorInfo(f"{self.name}.weight.fp32", tuple(self.weight.shape), 32, "param", "fp32")
        w_info = TensorInfo(f"{self.name}.weight.q", tuple(self.weight.shape), b, "weight", _fmt(b))
        trace.alloc(w_info)
        trace.op("quantize_weight", f"{self.name}.wq", [shadow], [w_info],
                 {("elementwise", "fp32"): 3 * self.weight.numel()}, layer=self.name, bits=b)
        scale = a_scale * w_scale
        if self.kind == "conv":
            y, acc = _IntConv.apply(a_fq, w_fq, a_codes, w_codes, scale, self.spec.stride,
                                    self.spec.padding)
        else:
            y, acc = _IntLinear.apply(a_fq, w_fq, a_codes, w_codes, scale)
        reads = [codes_info, w_info]
        if self.bias is not None:
            # int32 bias at the accumulator scale, added exactly to the accumulator; STE gradient
            b_codes = torch.round(self.bias.detach() / scale)
            shape = (1, -1, 1, 1) if self.kind == "conv" else (1, -1)
            acc = acc + b_codes.to(torch.int64).view(shape)
            y = y + (self.bias + (b_codes * scale - self.bias).detach()).view(shape)
            reads.append(TensorInfo(f"{self.name}.bias.q", (self.spec.out_channels,), 32, "bias", "int32"))
        acc, y, over = self._accumulator_policy(acc, y, scale)
        out_info = TensorInfo(f"{self.name}.acc", tuple(y.shape), 32, "activation", "int32")
        trace.alloc(out_info)
        op = "conv2d" if self.kind == "conv" else "fully_connected"
        macs = self.spec.weight_count * (y.shape[2] * y.shape[3] if self.kind == "conv" else 1)
        trace.op(op, self.name, reads, [out_info], {("mac", _fmt(b)): macs * batch},
                 saturations=over, layer=self.name, bits=b)
        self.last_acc = acc
        records.append(LayerRecord(self.name, self.kind, b, batch, tuple(x.shape), tuple(y.shape),
                                   tuple(self.weight.shape), macs, self.bias is not None,
                                   saved=[codes_info, w_info] if quantized is None else [w_info]))
        self._quantized = (a_fq, a_codes, a_scale, codes_info)
        return y, out_info


    #: (accumulator bits, overflow policy, apply?) set by QNet.set_accumulator; None = exact int64
    accumulator: tuple[int, str, bool] | None = None
    overflows: int = 0

    def _accumulator_policy(self, acc: torch.Tensor, y: torch.Tensor, scale: torch.Tensor):
        """Count (and optionally apply) the target's accumulator width: wrap, saturate or raise.

        Why: the paper's 16-bit first/last layers need > 32-bit accumulators (TFLite's 16x8
        kernels use int64); counting shows where a 32-bit device would overflow.
        """
        if self.accumulator is None or acc.device.type == "meta":
            return acc, y, 0
        bits, policy, apply = self.accumulator
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        over = int(((acc < lo) | (acc > hi)).sum())
        self.overflows += over
        if not over or not apply:
            return acc, y, over
        if policy == "raise":
            from hwsim.errors import HwsimError
            raise HwsimError(f"layer {self.name}: {over} accumulator values overflow int{bits} "
                             "(target numerics.overflow: raise); use fewer bits or a wider accumulator")
        if policy == "wrap":
            acc = torch.remainder(acc - lo, 2 ** bits) + lo
        else:
            acc = acc.clamp(lo, hi)
        exact = acc.to(torch.float64) * scale.to(torch.float64)      # value the device now holds
        return acc, y + (exact.to(y.dtype) - y).detach(), over


# ---- backward / update events ------------------------------------------------------------------


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def emit_backward(trace: Trace, records: list[LayerRecord], *, first_layer: str) -> None:
    """The float backward pass of the recorded forward, as fp32 events (paper: float backward).

    Gradient liveness is modelled along the layer chain: a layer's output gradient dies once its
    input gradient exists (pooling/residual backward is treated as in place).
    """
    with trace.phase("backward"):
        pending: TensorInfo | None = None
        for rec in reversed(records):
            gy = pending or TensorInfo(f"{rec.name}.grad_out", rec.output_shape, 32, "gradient", "fp32")
            if pending is None:
                trace.alloc(gy)
                trace.op("loss_grad", "loss_grad", [], [gy],
                         {("elementwise", "fp32"): 5 * _numel(rec.output_shape)}, layer=rec.name)
            gw = TensorInfo(f"{rec.name}.grad_w", rec.weight_shape, 32, "gradient", "fp32")
            trace.alloc(gw)
            acts = [t for t in rec.saved if t.kind == "activation"]
            wq = [t for t in rec.saved if t.kind == "weight"]
            trace.op("grad_weight", f"{rec.name}.grad_w", [gy] + acts, [gw],
                     {("mac", "fp32"): rec.macs * rec.batch}, layer=rec.name)
            pending = None
            if rec.name != first_layer:
                gx = TensorInfo(f"{rec.name}.grad_in", rec.input_shape, 32, "gradient", "fp32")
                trace.alloc(gx)
                trace.op("grad_input", f"{rec.name}.grad_in", [gy] + wq, [gx],
                         {("mac", "fp32"): rec.macs * rec.batch}, layer=rec.name)
                # PACT STE masks and the α gradient (a reduction over the elements)
                trace.op("pact_grad", f"{rec.name}.pact_grad", [gx] + acts, [gx],
                         {("elementwise", "fp32"): 3 * _numel(rec.input_shape)}, layer=rec.name)
                pending = gx
            trace.free(gy)
            for t in rec.saved:
                trace.free(t)
        if pending is not None:
            trace.free(pending)
    with trace.phase("sensitivity"):
        for rec in records:
            gw = TensorInfo(f"{rec.name}.grad_w", rec.weight_shape, 32, "gradient", "fp32")
            trace.op("nbg", f"{rec.name}.nbg", [gw], [],
                     {("elementwise", "fp32"): 2 * _numel(rec.weight_shape)}, layer=rec.name)


def emit_update(trace: Trace, records: list[LayerRecord]) -> None:
    """SGD with momentum and weight decay on the FP32 shadow weights (4 fp32 ops per weight)."""
    with trace.phase("update"):
        for rec in records:
            n = _numel(rec.weight_shape)
            w = TensorInfo(f"{rec.name}.weight.fp32", rec.weight_shape, 32, "param", "fp32")
            m = TensorInfo(f"{rec.name}.momentum", rec.weight_shape, 32, "optimizer", "fp32")
            gw = TensorInfo(f"{rec.name}.grad_w", rec.weight_shape, 32, "gradient", "fp32")
            trace.op("sgd_momentum", f"{rec.name}.sgd", [w, m, gw], [w, m],
                     {("elementwise", "fp32"): 4 * n}, layer=rec.name)
            trace.free(gw)


# ---- networks ----------------------------------------------------------------------------------


class QNet(nn.Module):
    """Base of BMPQ networks built from a ModelSpec: ordered QLayers plus a topology in forward()."""

    def __init__(self, model_spec, *, alpha_init: float = 4.0, input_range: float = 1.0,
                 ternary_at_2: bool = True, device=None):
        super().__init__()
        self.model_spec = model_spec
        self.first = model_spec.layers[0].name
        self.qlayers = nn.ModuleDict()
        for i, spec in enumerate(model_spec.layers):
            self.qlayers[self._key(spec.name)] = QLayer(
                spec, alpha_init=alpha_init, input_range=input_range if i == 0 else None,
                ternary_at_2=ternary_at_2, device=device)

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "_")

    def layer(self, name: str) -> QLayer:
        return self.qlayers[self._key(name)]

    def layers(self) -> list[QLayer]:
        return list(self.qlayers.values())

    def bits(self) -> dict[str, int]:
        return {q.name: q.bits for q in self.layers()}

    def set_accumulator(self, bits: int | None, policy: str = "wrap", apply: bool = False) -> None:
        """Check accumulators against `bits` (count overflows); `apply` wraps/saturates them."""
        for q in self.layers():
            q.accumulator = None if bits is None else (int(bits), policy, bool(apply))
            q.overflows = 0

    def overflows(self) -> dict[str, int]:
        return {q.name: q.overflows for q in self.layers()}

    def set_bits(self, bits: dict[str, int]) -> None:
        for name, b in bits.items():
            self.layer(name).bits = int(b)

    def emit_state(self, trace: Trace, *, training: bool) -> None:
        """Long-lived tensors: FP32 shadow weights + momentum (training) or quantized weights."""
        for q in self.layers():
            shape = tuple(q.weight.shape)
            if training:
                trace.alloc(TensorInfo(f"{q.name}.weight.fp32", shape, 32, "param", "fp32"))
                trace.alloc(TensorInfo(f"{q.name}.momentum", shape, 32, "optimizer", "fp32"))
            if q.bias is not None:
                trace.alloc(TensorInfo(f"{q.name}.bias.q", (q.spec.out_channels,), 32, "bias", "int32"))

    def forward_traced(self, x: torch.Tensor, trace: Trace, records: list[LayerRecord]):
        raise NotImplementedError


def _pool(trace: Trace, y: torch.Tensor, info: TensorInfo, k: int, name: str):
    out = F.max_pool2d(y, k)
    pooled = TensorInfo(f"{name}.pool", tuple(out.shape), 32, "activation", "int32")
    trace.alloc(pooled)
    trace.op("max_pool2d", f"{name}.pool", [info], [pooled], {("compare", "int32"): y.numel()},
             layer=name)
    trace.free(info)
    return out, pooled


class SequentialQNet(QNet):
    """conv/linear chain with max-pools after named layers (digits CNN, VGG16)."""

    def __init__(self, model_spec, pools: dict[str, int], **kw):
        super().__init__(model_spec, **kw)
        self.pools = dict(pools)

    def forward_traced(self, x, trace, records):
        src = TensorInfo("input", tuple(x.shape), 32, "input", "fp32")
        trace.alloc(src)
        h = x
        for q in self.layers():
            if q.kind == "linear" and h.dim() > 2:
                h = h.flatten(1)
            y, out = q(h, trace, records, src=src)
            trace.free(src)
            if q.name in self.pools:
                y, out = _pool(trace, y, out, self.pools[q.name], q.name)
            h, src = y, out
        return h, src


# ---- one training step, traced -----------------------------------------------------------------


def loss_and_trace(net: QNet, x: torch.Tensor, y: torch.Tensor | None, trace: Trace):
    """Forward (exact integer products) + loss; returns (loss or None, logits, records)."""
    records: list[LayerRecord] = []
    with trace.phase("forward"):
        logits, info = net.forward_traced(x, trace, records)
        trace.op("softmax_xent", "loss", [info], [],
                 {("elementwise", "fp32"): 5 * logits.numel()}, layer="loss")
        trace.free(info)
    loss = F.cross_entropy(logits, y) if y is not None else None
    return loss, logits, records


def train_step_trace(net: QNet, x: torch.Tensor, y: torch.Tensor | None, *, shapes_only: bool = False
                     ) -> Trace:
    """The events of one BMPQ training step at the current widths (forward, backward, NBG, update).

    With `shapes_only` the net and `x` live on the meta device; no numbers are computed.
    """
    trace = Trace()
    trace.meta.update(algorithm="bmpq-train", bits=net.bits(), batch=int(x.shape[0]))
    with trace.phase("setup"):
        net.emit_state(trace, training=True)
    ctx = torch.no_grad() if shapes_only else torch.enable_grad()
    with ctx:
        _, _, records = loss_and_trace(net, x, y, trace)
    emit_backward(trace, records, first_layer=net.first)
    emit_update(trace, records)
    return trace


def inference_trace(net: QNet, x: torch.Tensor) -> Trace:
    """Events of one mixed-precision inference at the current widths (shapes or numbers)."""
    trace = Trace()
    trace.meta.update(algorithm="bmpq-inference", bits=net.bits(), batch=int(x.shape[0]))
    for q in net.layers():
        trace.alloc(TensorInfo(f"{q.name}.weight.q", tuple(q.weight.shape), q.bits, "weight",
                               _fmt(q.bits)))
    net.emit_state(trace, training=False)
    records: list[LayerRecord] = []
    with torch.no_grad(), trace.phase("forward"):
        # the per-forward weight re-quantization is a training-time op; drop its events here
        body = Trace()
        net.forward_traced(x, body, records)
    for e in body.events:
        if getattr(e, "op", None) == "quantize_weight":
            continue
        tensor = getattr(e, "tensor", None)
        if tensor is not None and tensor.kind == "weight":
            continue
        trace.emit(e)
    return trace
