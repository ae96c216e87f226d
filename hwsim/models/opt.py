"""Integer-only OPT-style decoder built from traced integer ops (real payloads or shapes-only).

Why: the ZOQO LLM experiments (OPT-1.3B, ZO-Bench) need the cost of a forward pass of a
1.3 B-parameter model on a device. Running it for real is too slow, so the same builder runs on
``meta`` payloads (shapes only, no data, milliseconds) and emits exactly the event stream a real run
emits; on a tiny config it runs on real integer payloads, checked bit for bit against an independent
exact reference (tests/test_opt_shapes.py).

Numeric scheme ("W8A8, int32 accumulate, int16 residual"). Every multiplier m is applied as
``R(acc, m) = clamp(div_pow2(acc·M, n, half_away))`` with ``(M, n) = fixed_multiplier(m, 31)``;
m is computed in float64 as ``(s_in · s_w[c]) / s_out``.

- Weights int8 symmetric per output channel ([-127, 127]); biases int32 with scale s_in·s_w[c];
  token embeddings int8 per row (the LM head is tied to them); positions int8 per tensor.
- Residual stream int16 (scale ``s_res``); adds saturate at int16 and count saturations.
- Linear: ``acc = x·Wᵀ + b`` exact (``int_matmul``), narrowed to the accumulator (``acc_bits``,
  ``acc_policy``), then ``R`` to int8 (q/k/v/fc1) or int16 (out_proj/fc2, onto the residual scale).
- Attention: ``scores = q·kᵀ`` (int32), ``logit = R8(scores, s_q·s_k/(√dh·s_logit))``. Causal
  softmax by LUT: ``e = EXP[max − logit]`` with ``EXP[t] = round_half_away(2^15·exp(−t·s_logit))``
  (t = 0..255; masked j > i → 0) and ``p = div_int(255·e, Σe, half_away)`` (uint8, scale 1/255).
  Then ``ctx = R8(p·v, (1/255)·s_v/s_ctx)``.
- LayerNorm (integer, I-BERT style) over d: ``mean = div_int(Σh, d, half_away)``, ``c = h − mean``,
  ``var = div_int(Σc², d, floor)``, ``std = max(isqrt(var), 1)``,
  ``y = clamp8(div_int(c·G + B·std, std·2^F, half_away))`` with ``G = round(γ·2^F/s_out)``,
  ``B = round(β·2^F/s_out)``, F = ``ln_frac_bits`` (ε is dropped).
- FFN activation: ReLU fused into the fc1 clamp (OPT uses ReLU), or ``gelu``: a 256-entry int8 LUT.
- LoRA (rank r, default on q_proj / v_proj): ``t = R8(x·Aᵀ, s_x·s_A[c]/s_t)``, ``u = t·Bᵀ``
  (int32); the projection output is ``clamp(R(acc, s_x·s_w/s_out) + R(u, α·s_t·s_B/s_out))``.

Work counted per op (``OpEvent.work``, by (op_class, fmt)):
- mac int8: every product (attention: all S² scores per head, as a dense kernel computes them);
- requantization: 2 int32 elementwise + 1 int32 compare per output; bias add: 1 int32 elementwise;
- layernorm: 7 int32 elementwise per element + 12 int32 elementwise per row (the mean/variance
  divisions and the integer square root are 3 double-width operations, priced as 4 int32 each —
  targets price no int64);
- softmax: per score 1 int8 compare (row max), 1 int8 lookup, 4 int32 elementwise (subtract,
  sum, scale, divide);
- residual add: 1 int16 elementwise + 1 int16 compare per element; GELU: 1 int8 lookup per element.

Trace: weights/biases (and LUTs) are allocated at the start (``alloc_weights``); before each op its
outputs are allocated, after it every tensor whose last use it was is freed; logits are never freed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

import torch

from hwsim.errors import HwsimError
from hwsim.fixedpoint.accumulate import AccumulatorSpec, narrow
from hwsim.fixedpoint.intops import int_matmul
from hwsim.fixedpoint.qformat import QFormat, QTensor, quantize, quantize_symmetric
from hwsim.fixedpoint.rounding import div_int, div_pow2, fixed_multiplier, round_half_away
from hwsim.trace import TensorInfo, Trace

INT8 = (-128, 127)
INT16 = (-(2 ** 15), 2 ** 15 - 1)
INT32 = (-(2 ** 31), 2 ** 31 - 1)
EXP_ONE_BITS = 15


# ---- configuration ------------------------------------------------------------------------
@dataclass(frozen=True)
class ActScales:
    """Static activation scales (per tensor). Defaults suit unit-variance activations."""

    res: float = 2.0 ** -8      # int16 residual stream: range ±128
    ln: float = 2.0 ** -5       # layernorm outputs (int8): ±4
    q: float = 2.0 ** -4
    k: float = 2.0 ** -4
    v: float = 2.0 ** -4
    logit: float = 2.0 ** -4    # scaled attention scores: ±8
    ctx: float = 2.0 ** -4
    ffn: float = 2.0 ** -4      # fc1 output after activation
    ffn_pre: float = 2.0 ** -4  # fc1 output before a GELU LUT
    lora: float = 2.0 ** -4     # LoRA bottleneck t


@dataclass(frozen=True)
class OPTConfig:
    """OPT decoder shape + integer scheme. ``opt_1_3b()`` = facebook/opt-1.3b."""

    layers: int = 2
    hidden: int = 32
    heads: int = 4
    ffn: int = 64
    vocab: int = 100
    max_pos: int = 64
    seq: int = 8
    batch: int = 2
    pos_offset: int = 2          # OPT's learned positions start at index 2
    activation: str = "relu"     # relu | gelu
    acc_bits: int = 32
    acc_policy: str = "wrap"     # wrap | saturate | raise
    ln_frac_bits: int = 10
    scales: ActScales = field(default_factory=ActScales)
    name: str = "opt-tiny"

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise HwsimError(f"OPTConfig: hidden ({self.hidden}) must be divisible by heads "
                             f"({self.heads})")
        if self.seq > self.max_pos:
            raise HwsimError(f"OPTConfig: seq ({self.seq}) exceeds max_pos ({self.max_pos})")
        if self.activation not in ("relu", "gelu"):
            raise HwsimError(f"OPTConfig.activation must be relu or gelu, got {self.activation!r}")
        AccumulatorSpec(self.acc_bits, self.acc_policy)  # validates

    @classmethod
    def opt_1_3b(cls, *, batch: int = 16, seq: int = 128, **kw: Any) -> "OPTConfig":
        return cls(layers=24, hidden=2048, heads=32, ffn=8192, vocab=50272, max_pos=2048,
                   seq=seq, batch=batch, name="opt-1.3b", **kw)

    @classmethod
    def tiny(cls, **kw: Any) -> "OPTConfig":
        return cls(**kw)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def acc(self) -> AccumulatorSpec:
        return AccumulatorSpec(self.acc_bits, self.acc_policy)


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA adapters of rank r on the listed projections (y += α·B·A·x)."""

    rank: int = 8
    alpha: float = 1.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    bits: int = 8
    signed: bool = True  # False: unsigned grid codes (ZOQO), priced as uint<bits>

    @property
    def fmt(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}"

    def __post_init__(self) -> None:
        bad = set(self.targets) - {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}
        if bad or self.rank < 1:
            raise HwsimError(f"LoRAConfig: bad targets {sorted(bad)} or rank {self.rank}")


#: name -> QTensor (int codes) for matrices/biases/embeddings, int32 tensors for LN G/B.
OPTWeights = dict[str, Any]
Payload = Union[str, Mapping[str, Any]]


# ---- weights --------------------------------------------------------------------------------
def _linear_shapes(cfg: OPTConfig, lora: LoRAConfig | None) -> list[tuple[str, int, int]]:
    d, f = cfg.hidden, cfg.ffn
    out = []
    for i in range(cfg.layers):
        for p, (o, n) in {"q_proj": (d, d), "k_proj": (d, d), "v_proj": (d, d),
                          "out_proj": (d, d), "fc1": (f, d), "fc2": (d, f)}.items():
            out.append((f"l{i}.{p}", o, n))
    return out


def weight_infos(cfg: OPTConfig, lora: LoRAConfig | None = None) -> list[TensorInfo]:
    """Every stored parameter/constant as a TensorInfo (what the device holds)."""
    d = cfg.hidden
    infos = [TensorInfo("embed_tokens", (cfg.vocab, d), 8, "weight", "int8"),
             TensorInfo("embed_tokens.scale_mult", (cfg.vocab,), 32, "weight", "int32"),
             TensorInfo("embed_positions", (cfg.max_pos + cfg.pos_offset, d), 8, "weight", "int8")]
    for name, o, n in _linear_shapes(cfg, lora):
        infos.append(TensorInfo(f"{name}.weight", (o, n), 8, "weight", "int8"))
        infos.append(TensorInfo(f"{name}.bias", (o,), 32, "bias", "int32"))
        proj = name.split(".")[1]
        if lora is not None and proj in lora.targets:
            infos.append(TensorInfo(f"{name}.lora_A", (lora.rank, n), lora.bits, "param",
                                    lora.fmt))
            infos.append(TensorInfo(f"{name}.lora_B", (o, lora.rank), lora.bits, "param",
                                    lora.fmt))
    for i in range(cfg.layers):
        for ln in ("ln1", "ln2"):
            infos.append(TensorInfo(f"l{i}.{ln}.gamma", (d,), 32, "weight", "int32"))
            infos.append(TensorInfo(f"l{i}.{ln}.beta", (d,), 32, "weight", "int32"))
    infos.append(TensorInfo("final_ln.gamma", (d,), 32, "weight", "int32"))
    infos.append(TensorInfo("final_ln.beta", (d,), 32, "weight", "int32"))
    infos.append(TensorInfo("softmax.exp_lut", (256,), 32, "weight", "int32"))
    if cfg.activation == "gelu":
        infos.append(TensorInfo("gelu.lut", (256,), 8, "weight", "int8"))
    return infos


def param_count(cfg: OPTConfig, lora: LoRAConfig | None = None) -> int:
    """Model parameters as published (embeddings, linears + biases, LN γ/β; LM head tied)."""
    skip = ("scale_mult", "exp_lut", "gelu.lut")
    return sum(t.numel for t in weight_infos(cfg, lora) if not t.name.endswith(skip))


def opt_random_weights(cfg: OPTConfig, seed: int = 0, lora: LoRAConfig | None = None) -> OPTWeights:
    """Deterministic random float weights, quantized to the integer scheme (real-payload runs)."""
    g = torch.Generator().manual_seed(seed)
    d = cfg.hidden
    w: OPTWeights = {}
    w["embed_tokens"] = quantize_symmetric(torch.randn(cfg.vocab, d, generator=g), 8, axis=0)
    w["embed_positions"] = quantize_symmetric(
        0.5 * torch.randn(cfg.max_pos + cfg.pos_offset, d, generator=g), 8)
    in_scale = {"q_proj": "ln", "k_proj": "ln", "v_proj": "ln", "out_proj": "ctx", "fc1": "ln",
                "fc2": "ffn"}
    for name, o, n in _linear_shapes(cfg, lora):
        proj = name.split(".")[1]
        wq = quantize_symmetric(torch.randn(o, n, generator=g) / math.sqrt(n), 8, axis=0)
        w[f"{name}.weight"] = wq
        s_in = getattr(cfg.scales, in_scale[proj])
        b_scale = tuple(s_in * s for s in _as_tuple(wq.fmt.scale, o))
        b_real = 0.1 * torch.randn(o, generator=g)
        w[f"{name}.bias"] = quantize(b_real, QFormat.int32_bias(b_scale, axis=0))
        if lora is not None and proj in lora.targets:
            w[f"{name}.lora_A"] = quantize_symmetric(
                torch.randn(lora.rank, n, generator=g) / math.sqrt(n), lora.bits, axis=0)
            w[f"{name}.lora_B"] = quantize_symmetric(
                0.1 * torch.randn(o, lora.rank, generator=g), lora.bits, axis=0)
    norms = [f"l{i}.{x}" for i in range(cfg.layers) for x in ("ln1", "ln2")] + ["final_ln"]
    for ln, s_out in [(n, cfg.scales.ln) for n in norms]:
        gamma = 1.0 + 0.1 * torch.randn(d, generator=g, dtype=torch.float64)
        beta = 0.1 * torch.randn(d, generator=g, dtype=torch.float64)
        w[f"{ln}.gamma"] = round_half_away(gamma * 2.0 ** cfg.ln_frac_bits / s_out).to(torch.int64)
        w[f"{ln}.beta"] = round_half_away(beta * 2.0 ** cfg.ln_frac_bits / s_out).to(torch.int64)
    return w


def _as_tuple(v, n: int) -> tuple[float, ...]:
    return tuple(v) if isinstance(v, tuple) else (float(v),) * n


def exp_lut(s_logit: float) -> torch.Tensor:
    """EXP[t] = round_half_away(2^15·exp(−t·s_logit)), t = 0..255 (a prepare-time constant)."""
    return torch.tensor([int(round_half_away(2.0 ** EXP_ONE_BITS * math.exp(-t * s_logit)))
                         for t in range(256)], dtype=torch.int64)


def gelu_lut(s_in: float, s_out: float) -> torch.Tensor:
    """int8 → int8 GELU table: LUT[q+128] = clamp8(round_half_away(gelu(q·s_in)/s_out))."""
    vals = []
    for q in range(-128, 128):
        x = q * s_in
        y = 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))
        vals.append(max(-128, min(127, int(round_half_away(y / s_out)))))
    return torch.tensor(vals, dtype=torch.int64)


# ---- recording + liveness ---------------------------------------------------------------------
@dataclass
class _Rec:
    op: str
    name: str
    reads: tuple[TensorInfo, ...]
    writes: tuple[TensorInfo, ...]
    work: dict
    saturations: int
    layer: str
    attrs: dict


class _Recorder:
    """Collects ops, then emits alloc/op/free events per the architecture emission rule."""

    def __init__(self) -> None:
        self.recs: list[_Rec] = []

    def op(self, op: str, name: str, reads: Iterable[TensorInfo], writes: Iterable[TensorInfo],
           work: dict, saturations: int = 0, layer: str = "", **attrs: Any) -> None:
        self.recs.append(_Rec(op, name, tuple(reads), tuple(writes), work, saturations,
                              layer or name, attrs))

    def emit(self, trace: Trace, inputs: list[TensorInfo], keep: set[str]) -> None:
        last: dict[str, int] = {}
        for i, r in enumerate(self.recs):
            for t in r.reads + r.writes:
                if t.kind not in ("weight", "bias"):
                    last[t.name] = i
        for t in inputs:
            trace.alloc(t)
        alive = {t.name for t in inputs}
        for i, r in enumerate(self.recs):
            for t in r.writes:
                if t.name not in alive:
                    trace.alloc(t)
                    alive.add(t.name)
            trace.op(r.op, r.name, r.reads, r.writes, r.work, saturations=r.saturations,
                     layer=r.layer, **r.attrs)
            for t in r.reads + r.writes:
                if t.name in alive and last.get(t.name) == i and t.name not in keep:
                    trace.free(t)
                    alive.discard(t.name)


# ---- integer building blocks (real payloads) ---------------------------------------------------
def _mn(mults: Iterable[float]) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [fixed_multiplier(m, 31) for m in mults]
    return (torch.tensor([p[0] for p in pairs], dtype=torch.int64),
            torch.tensor([p[1] for p in pairs], dtype=torch.int64))


def _rq(acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, rng: tuple[int, int] | None
        ) -> tuple[torch.Tensor, int]:
    y = div_pow2(acc * mult, shift, "half_away")
    if rng is None:
        return y, 0
    sat = int(((y < rng[0]) | (y > rng[1])).sum())
    return torch.clamp(y, rng[0], rng[1]), sat


def _isqrt(v: torch.Tensor) -> torch.Tensor:
    r = torch.sqrt(v.to(torch.float64)).floor().to(torch.int64)
    for _ in range(2):
        r = torch.where(r * r > v, r - 1, r)
        r = torch.where((r + 1) * (r + 1) <= v, r + 1, r)
    return r


def _layernorm(h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, frac: int
               ) -> tuple[torch.Tensor, int]:
    d = h.shape[-1]
    h = h.to(torch.int64)
    mean = div_int(h.sum(-1, keepdim=True), d, "half_away")
    c = h - mean
    var = div_int((c * c).sum(-1, keepdim=True), d, "floor")
    std = torch.clamp(_isqrt(var), min=1)
    y = div_int(c * gamma + beta * std, std << frac, "half_away")
    sat = int(((y < INT8[0]) | (y > INT8[1])).sum())
    return torch.clamp(y, *INT8), sat


def _codes(qt: Any) -> torch.Tensor:
    """Integer codes centred on zero (payload − zero point); offset-form formats are rejected."""
    if not isinstance(qt, QTensor):
        return qt.to(torch.int64)
    if qt.fmt.offset is not None:
        raise HwsimError("OPT integer forward needs affine weights (integer zero point); got an "
                         "offset-form (grid) format — convert codes to code − round(z) first")
    zp = qt.fmt.param_tensor("zero_point", qt.payload.ndim, torch.int64)
    return qt.payload.to(torch.int64) - zp


def _scales(qt: QTensor, n: int) -> tuple[float, ...]:
    return _as_tuple(qt.fmt.scale, n)


# ---- the forward pass ----------------------------------------------------------------------------
@dataclass
class OPTForward:
    """Result: int32-valued logits (payload or meta), their TensorInfo, the weights' TensorInfos."""

    logits: torch.Tensor
    logits_info: TensorInfo
    weights: list[TensorInfo]
    saturations: int = 0


class _Builder:
    def __init__(self, cfg: OPTConfig, weights: Mapping[str, Any] | None,
                 lora: LoRAConfig | None, prefix: str) -> None:
        self.cfg, self.w, self.lora, self.prefix = cfg, weights, lora, prefix
        self.meta = weights is None
        self.rec = _Recorder()
        self.winfo = {t.name: t for t in weight_infos(cfg, lora)}
        self.sat_total = 0
        self._ti: dict[str, TensorInfo] = {}

    # tensors
    def t(self, name: str, shape: tuple[int, ...], fmt: str,
          kind: str = "activation") -> TensorInfo:
        bits = int(fmt.lstrip("uint"))
        return TensorInfo(f"{self.prefix}{name}", tuple(shape), bits, kind, fmt)

    def empty(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.empty(shape, dtype=torch.int64, device="meta")

    def W(self, name: str) -> TensorInfo:
        return self.winfo[name]

    def record(self, op: str, name: str, reads, writes, work, sat: int = 0, layer: str = "",
               **attrs: Any) -> None:
        self.sat_total += sat
        self.rec.op(op, f"{self.prefix}{name}", reads, writes, work, sat,
                    f"{self.prefix}{layer or name}", **attrs)

    # ops
    def linear(self, name: str, x: torch.Tensor, xi: TensorInfo, s_in: float, s_out: float,
               out_fmt: str, layer: str, relu: bool = False) -> tuple[torch.Tensor, TensorInfo]:
        cfg = self.cfg
        wname = f"{name}.weight"
        o, n = self.W(wname).shape
        lead = tuple(x.shape[:-1])
        rows = math.prod(lead)
        proj = name.split(".")[-1]
        use_lora = self.lora is not None and proj in self.lora.targets
        rng = INT8 if out_fmt == "int8" else INT16
        reads = [xi, self.W(wname), self.W(f"{name}.bias")]
        u = None
        if use_lora:
            u, ui = self.lora_path(name, x, xi, s_in, layer)
            reads.append(ui)
        out_info = self.t(f"{name}.out", lead + (o,), out_fmt)
        work = {("mac", "int8"): rows * n * o, ("elementwise", "int32"): 3 * rows * o,
                ("compare", "int32"): rows * o}
        sat = 0
        if self.meta:
            y = self.empty(lead + (o,))
        else:
            wq = self.w[wname]
            acc = int_matmul(x, _codes(wq).t()) + _codes(self.w[f"{name}.bias"])
            acc, c1 = narrow(acc, cfg.acc, op=name)
            m, s = _mn((s_in * sw) / s_out for sw in _scales(wq, o))
            if u is None:
                y, sat = _rq(acc, m, s, rng)
            else:
                lb = self.w[f"{name}.lora_B"]
                s_t = cfg.scales.lora
                mu, su = _mn((self.lora.alpha * s_t * sb) / s_out for sb in _scales(lb, o))
                y1, _ = _rq(acc, m, s, None)
                y2, _ = _rq(u, mu, su, None)
                y = y1 + y2
                sat = int(((y < rng[0]) | (y > rng[1])).sum())
                y = torch.clamp(y, *rng)
            sat += c1
            if relu:  # fused ReLU: a clamp at 0, not a saturation
                y = torch.clamp(y, min=0)
        if use_lora:
            work[("elementwise", "int32")] += 3 * rows * o
        self.record("fully_connected", name, reads, [out_info], work, sat, layer,
                    in_features=n, out_features=o, lora=use_lora)
        return y, out_info

    def lora_path(self, name: str, x: torch.Tensor, xi: TensorInfo, s_in: float, layer: str):
        cfg, lo = self.cfg, self.lora
        assert lo is not None
        a_i, b_i = self.W(f"{name}.lora_A"), self.W(f"{name}.lora_B")
        r, n = a_i.shape
        o = b_i.shape[0]
        lead = tuple(x.shape[:-1])
        rows = math.prod(lead)
        ti = self.t(f"{name}.lora_t", lead + (r,), "int8")
        ui = self.t(f"{name}.lora_u", lead + (o,), "int32")
        sat_a = sat_b = 0
        if self.meta:
            t, u = self.empty(lead + (r,)), self.empty(lead + (o,))
        else:
            aq, bq = self.w[f"{name}.lora_A"], self.w[f"{name}.lora_B"]
            acc, c1 = narrow(int_matmul(x, _codes(aq).t()), cfg.acc, op=f"{name}.lora_A")
            m, s = _mn((s_in * sa) / cfg.scales.lora for sa in _scales(aq, r))
            t, sat_a = _rq(acc, m, s, INT8)
            u, sat_b = narrow(int_matmul(t, _codes(bq).t()), cfg.acc, op=f"{name}.lora_B")
            sat_a += c1
        fa = lo.fmt
        self.record("fully_connected", f"{name}.lora_A", [xi, a_i], [ti],
                    {("mac", "int8"): rows * n * r, ("elementwise", "int32"): 2 * rows * r,
                     ("compare", "int32"): rows * r}, sat_a, layer, weight_fmt=fa)
        self.record("fully_connected", f"{name}.lora_B", [ti, b_i], [ui],
                    {("mac", "int8"): rows * r * o}, sat_b, layer, weight_fmt=fa)
        return u, ui

    def layernorm(self, name: str, h: torch.Tensor, hi: TensorInfo, layer: str):
        cfg = self.cfg
        d = cfg.hidden
        rows = math.prod(tuple(h.shape[:-1]))
        out = self.t(f"{name}.out", tuple(h.shape), "int8")
        sat = 0
        if self.meta:
            y = self.empty(tuple(h.shape))
        else:
            y, sat = _layernorm(h, self.w[f"{name}.gamma"], self.w[f"{name}.beta"],
                                cfg.ln_frac_bits)
        self.record("layernorm", name, [hi, self.W(f"{name}.gamma"), self.W(f"{name}.beta")],
                    [out], {("elementwise", "int32"): 7 * rows * d + 12 * rows}, sat, layer)
        return y, out

    def add(self, name: str, a: torch.Tensor, ai: TensorInfo, b: torch.Tensor, bi: TensorInfo,
            layer: str):
        out = self.t(name, tuple(a.shape), "int16")
        n = math.prod(tuple(a.shape))
        sat = 0
        if self.meta:
            y = self.empty(tuple(a.shape))
        else:
            y = a + b
            sat = int(((y < INT16[0]) | (y > INT16[1])).sum())
            y = torch.clamp(y, *INT16)
        self.record("add", name, [ai, bi], [out], {("elementwise", "int16"): n,
                                                   ("compare", "int16"): n}, sat, layer)
        return y, out

    def attention(self, i: int, q, qi, k, ki, v, vi, layer: str):
        cfg, sc = self.cfg, self.cfg.scales
        b, s, d = cfg.batch, cfg.seq, cfg.hidden
        h, dh = cfg.heads, cfg.head_dim
        logits_i = self.t(f"l{i}.attn.logits", (b, h, s, s), "int8")
        probs_i = self.t(f"l{i}.attn.probs", (b, h, s, s), "uint8")
        ctx_i = self.t(f"l{i}.attn.ctx", (b, s, d), "int8")
        nsc = b * h * s * s
        lut = self.W("softmax.exp_lut")
        sat1 = sat3 = 0
        if self.meta:
            logit = probs = self.empty((b, h, s, s))
            ctx = self.empty((b, s, d))
        else:
            qh = q.reshape(b, s, h, dh).transpose(1, 2)
            kh = k.reshape(b, s, h, dh).transpose(1, 2)
            vh = v.reshape(b, s, h, dh).transpose(1, 2)
            scores, c1 = narrow(int_matmul(qh, kh.transpose(-1, -2)), cfg.acc, op=f"l{i}.scores")
            m, sh = _mn([(sc.q * sc.k) / (math.sqrt(dh) * sc.logit)])
            logit, sat1 = _rq(scores, m, sh, INT8)
            sat1 += c1
            causal = torch.ones(s, s, dtype=torch.bool).tril()
            masked = torch.where(causal, logit, torch.full_like(logit, -(2 ** 20)))
            mx = masked.max(dim=-1, keepdim=True).values
            e = torch.where(causal, self.w["softmax.exp_lut"][torch.clamp(mx - logit, 0, 255)],
                            torch.zeros_like(logit))
            probs = div_int(255 * e, e.sum(-1, keepdim=True), "half_away")
            cacc, c2 = narrow(int_matmul(probs, vh), cfg.acc, op=f"l{i}.context")
            m2, sh2 = _mn([(sc.v / 255.0) / sc.ctx])
            ctx, sat3 = _rq(cacc, m2, sh2, INT8)
            sat3 += c2
            ctx = ctx.transpose(1, 2).reshape(b, s, d)
        self.record("batch_matmul", f"l{i}.attn.scores", [qi, ki], [logits_i],
                    {("mac", "int8"): nsc * dh, ("elementwise", "int32"): 2 * nsc,
                     ("compare", "int32"): nsc}, sat1, layer)
        self.record("softmax", f"l{i}.attn.softmax", [logits_i, lut], [probs_i],
                    {("compare", "int8"): nsc, ("lookup", "int8"): nsc,
                     ("elementwise", "int32"): 4 * nsc}, 0, layer, impl="exp-lut-256")
        self.record("batch_matmul", f"l{i}.attn.context", [probs_i, vi], [ctx_i],
                    {("mac", "int8"): nsc * dh, ("elementwise", "int32"): 2 * b * s * d,
                     ("compare", "int32"): b * s * d}, sat3, layer)
        return ctx, ctx_i

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, TensorInfo, TensorInfo]:
        cfg, sc = self.cfg, self.cfg.scales
        b, s, d = cfg.batch, cfg.seq, cfg.hidden
        tok_i = self.t("tokens", (b, s), "int32", kind="input")
        h_i = self.t("h0", (b, s, d), "int16")
        sat = 0
        if self.meta:
            h = self.empty((b, s, d))
        else:
            et, ep = self.w["embed_tokens"], self.w["embed_positions"]
            m, sh = _mn(se / sc.res for se in _scales(et, cfg.vocab))
            pos = torch.arange(s) + cfg.pos_offset
            y1, _ = _rq(_codes(et)[tokens], m[tokens].unsqueeze(-1), sh[tokens].unsqueeze(-1), None)
            mp, shp = _mn([float(ep.fmt.scale) / sc.res])
            y2, _ = _rq(_codes(ep)[pos], mp, shp, None)
            h = y1 + y2
            sat = int(((h < INT16[0]) | (h > INT16[1])).sum())
            h = torch.clamp(h, *INT16)
        self.record("embedding", "embed", [tok_i, self.W("embed_tokens"),
                                           self.W("embed_tokens.scale_mult"),
                                           self.W("embed_positions")], [h_i],
                    {("elementwise", "int32"): 5 * b * s * d, ("compare", "int32"): b * s * d},
                    sat, "embed")
        for i in range(cfg.layers):
            L = f"l{i}"
            a, ai = self.layernorm(f"{L}.ln1", h, h_i, L)
            q, qi = self.linear(f"{L}.q_proj", a, ai, sc.ln, sc.q, "int8", L)
            k, ki = self.linear(f"{L}.k_proj", a, ai, sc.ln, sc.k, "int8", L)
            v, vi = self.linear(f"{L}.v_proj", a, ai, sc.ln, sc.v, "int8", L)
            ctx, ci = self.attention(i, q, qi, k, ki, v, vi, L)
            o, oi = self.linear(f"{L}.out_proj", ctx, ci, sc.ctx, sc.res, "int16", L)
            h, h_i = self.add(f"{L}.h_attn", h, h_i, o, oi, L)
            a2, a2i = self.layernorm(f"{L}.ln2", h, h_i, L)
            if cfg.activation == "relu":
                f, fi = self.linear(f"{L}.fc1", a2, a2i, sc.ln, sc.ffn, "int8", L, relu=True)
            else:
                fp, fpi = self.linear(f"{L}.fc1", a2, a2i, sc.ln, sc.ffn_pre, "int8", L)
                fi = self.t(f"{L}.gelu.out", tuple(fpi.shape), "int8")
                f = fp if self.meta else self.w["gelu.lut"][fp + 128]
                self.record("gelu", f"{L}.gelu", [fpi, self.W("gelu.lut")], [fi],
                            {("lookup", "int8"): fpi.numel}, 0, L, impl="lut-256")
            o2, o2i = self.linear(f"{L}.fc2", f, fi, sc.ffn, sc.res, "int16", L)
            h, h_i = self.add(f"{L}.h_out", h, h_i, o2, o2i, L)
        a, ai = self.layernorm("final_ln", h, h_i, "final_ln")
        logits_i = self.t("logits", (b, s, cfg.vocab), "int32", kind="output")
        lsat = 0
        if self.meta:
            logits = self.empty((b, s, cfg.vocab))
        else:
            logits, lsat = narrow(int_matmul(a, _codes(self.w["embed_tokens"]).t()), cfg.acc,
                                  op="lm_head")
        self.record("fully_connected", "lm_head", [ai, self.W("embed_tokens")], [logits_i],
                    {("mac", "int8"): b * s * d * cfg.vocab}, lsat, "lm_head", tied=True)
        return logits, logits_i, tok_i


def opt_forward(cfg: OPTConfig, trace: Trace, payload: Payload = "meta", *,
                lora: LoRAConfig | None = None, phase: str = "forward",
                tokens: torch.Tensor | None = None, alloc_weights: bool = True,
                prefix: str = "") -> OPTForward:
    """Run (or, with payload="meta", shape-trace) one integer forward pass and emit its events.

    payload: "meta" or a weights mapping from `opt_random_weights` (or one with the same names).
    tokens: int64 [batch, seq] ids (real payload only; default: seeded random ids).
    alloc_weights: emit AllocEvents for every weight first (set False on a second pass of the
    same step so weights are not counted twice). prefix: prepended to activation/op names.
    """
    meta = isinstance(payload, str)
    if meta and payload != "meta":
        raise HwsimError(f"opt_forward payload must be 'meta' or a weights mapping, "
                         f"got {payload!r}")
    weights = None if meta else dict(payload)
    if weights is not None:
        weights.setdefault("softmax.exp_lut", exp_lut(cfg.scales.logit))
        if cfg.activation == "gelu":
            weights.setdefault("gelu.lut", gelu_lut(cfg.scales.ffn_pre, cfg.scales.ffn))
        missing = [t.name for t in weight_infos(cfg, lora)
                   if t.name not in weights and not t.name.endswith("scale_mult")]
        if missing:
            raise HwsimError(f"opt_forward: weights lack {missing[:5]} ({len(missing)} missing); "
                             "build them with opt_random_weights(cfg, seed, lora)")
        if tokens is None:
            g = torch.Generator().manual_seed(0)
            tokens = torch.randint(0, cfg.vocab, (cfg.batch, cfg.seq), generator=g)
        if tuple(tokens.shape) != (cfg.batch, cfg.seq):
            raise HwsimError(f"opt_forward: tokens shape {tuple(tokens.shape)} != "
                             f"(batch, seq) = {(cfg.batch, cfg.seq)}")
    bld = _Builder(cfg, weights, lora, prefix)
    logits, logits_i, tok_i = bld.forward(tokens if tokens is not None else bld.empty((1,)))
    winfos = list(bld.winfo.values())
    with trace.phase(phase):
        if alloc_weights:
            for t in winfos:
                trace.alloc(t)
        bld.rec.emit(trace, [tok_i], keep={logits_i.name})
    trace.meta.setdefault("model", cfg.name)
    return OPTForward(logits, logits_i, winfos, bld.sat_total)
