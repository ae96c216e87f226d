"""Integer forward pass of `RowTransformer` with LoRA adapters on ZOQO grid codes (the emulator side
of ZOQO-LoRA, docs/algorithms.md §1.7 and §1.9).

Why: ZOQO's two loss queries must run in the emulator on integers, like the MLP/CNN path
(`hwsim.algorithms.zoqo_forward`), so the LoRA step is costed from the events it really executes.

Numeric scheme (every scale static, calibrated once on float data; nothing float at run time):
- input uint8 (scale 1/255); frozen base weights int8 symmetric **per output channel**
  ([−127, 127], s_w[c] = max|W[c]|/127); biases int32 at scale s_in·s_w[c]; the positional
  embedding is folded into the embedding bias per (token, channel) at the same scale.
- activations int8 symmetric (LayerNorm outputs, q/k/v, attention logits, context, pooled vector,
  LoRA intermediate t), uint8 after the fused ReLU of fc1, int8 softmax output (Z = −128, S = 1/256);
  residual stream int16 (a separate calibrated scale after each residual add).
- every GEMM is exact (`int_matmul`, int32 accumulation); every requantization is one
  `fused_requant`: y = ⌊(Σ mᵢ·tᵢ + 2^(S−1)) / 2^S⌋ with 32-bit multipliers mᵢ and one shift S
  chosen at setup (round half up).
- LoRA (α/r folded into the multipliers), adapters on grid codes A = R_A + s_A·c_A, B = R_B + s_B·c_B:
      t = ⌊m₁·(a·c_Aᵀ) + m₂·Σₖaₖ⌉ (int8, scale s_t),   m₁ = s_a·s_A/s_t, m₂ = s_a·R_A/s_t
      y = ⌊M[o]·(a·Wᵀ + b) + m₃·(t·c_Bᵀ) + m₄·Σᵣtᵣ⌉,  m₃ = (α/r)·s_t·s_B/s_y, m₄ = (α/r)·s_t·R_B/s_y
  (the R_min terms through integer row sums, as in zoqo_forward; the zero point −R/s need not be
  an integer).
- attention: integer q·kᵀ → int8 logits (1/√dh folded into the multiplier) → TFLM reference int8
  softmax (gemmlowp fixed-point exp; `hwsim.fixedpoint.transformer_ops.softmax_int8`) →
  (p + 128)·v exact → int8 context.
- LayerNorm: I-BERT style, `transformer_ops.layernorm_int` (integer mean/variance, Newton ⌊√⌋,
  fixed-point reciprocal ⌊2^24/std⌋, F = 16 fraction bits for γ/β).
- residual adds: the branch accumulator and the old residual (rescaled by s_old/s_new) in one
  `fused_requant` onto the new int16 scale; mean pool: integer token sum, 1/T folded into the
  multiplier; head: int8 GEMM → int16 logits (scale `logit_scale`).

Work charged per op (OpEvent.work; targets price int8/int16/int32): GEMM products as ("mac", int8);
a requantization with k terms as 2k+2 int32 elementwise (k 32×32→64 multiply-adds priced as two
int32 ops each, the rounding add, the shift) + 1 int32 compare (clamp) per output; a bias add or a
row-sum element as 1 int32 elementwise; an integer division as 4 int32 elementwise (no divider
pricing in the profiles); LayerNorm 10 int32 elementwise + 1 compare per element, 13 + 7·(Newton
iterations actually run) per row; softmax 30 int32 elementwise + 2 int8 compare per element and 20
int32 per row (exp polynomial/barrel and Newton reciprocal of gemmlowp).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.algorithms.zoqo_forward import code_fmt
from hwsim.errors import ModelError
from hwsim.fixedpoint.intops import int_matmul
from hwsim.fixedpoint.rounding import round_half_away
from hwsim.fixedpoint.transformer_ops import (INT8, INT16, UINT8, LayerNormParams, SoftmaxParams,
                                              fixed_point_terms, fused_requant, layernorm_int, softmax_int8)
from hwsim.quant import QGroup
from hwsim.trace import TensorInfo, Trace

LOGIT_MAX = INT16[1]


@dataclass
class Requant:
    """Integer multipliers (one tensor per term, broadcast per channel) and the shared shift."""

    mults: list[torch.Tensor]
    shift: int

    @classmethod
    def plan(cls, reals: list[torch.Tensor | float], bounds: list[int]) -> "Requant":
        tops = [float(torch.as_tensor(r, dtype=torch.float64).abs().max()) for r in reals]
        _, _, s = fixed_point_terms(tops, bounds)
        mults = [torch.as_tensor(round_half_away(torch.as_tensor(r, dtype=torch.float64) * 2.0 ** s),
                                 dtype=torch.float64).to(torch.int64) for r in reals]
        return cls(mults, s)

    def __call__(self, terms: list[torch.Tensor], lo: int, hi: int) -> tuple[torch.Tensor, int]:
        return fused_requant(list(zip(terms, self.mults)), 0, self.shift, lo, hi)


@dataclass
class IntLinear:
    """Frozen base projection: int8 per-channel weights, int32 bias (+ folded extras)."""

    name: str
    w: torch.Tensor          # int8 [O, K]
    b: torch.Tensor          # int64 [O] or [T, O] (embedding + positions)
    s_w: torch.Tensor        # float64 [O]

    @classmethod
    def from_float(cls, name: str, lin: nn.Linear, s_in: float, extra: torch.Tensor | None = None) -> "IntLinear":
        w = lin.weight.detach().double()
        s_w = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        wq = round_half_away(w / s_w[:, None]).clamp(-127, 127).to(torch.int8)
        bias = lin.bias.detach().double() if lin.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if extra is not None:
            bias = bias + extra.double()
        bq = round_half_away(bias / (s_in * s_w)).to(torch.int64)
        return cls(name, wq, bq, s_w)

    def dequant_w(self) -> torch.Tensor:
        return (self.w.double() * self.s_w[:, None]).float()

    def acc(self, x: torch.Tensor) -> torch.Tensor:
        return int_matmul(x, self.w.t()) + self.b

    def acc_bound(self, k_bound: int) -> int:
        return k_bound * 127 * self.w.shape[1] + int(self.b.abs().max())


@dataclass
class Scales:
    """Static activation scales (real value per integer step), calibrated once."""

    x: float
    h0: float = 1.0
    a1: float = 1.0
    t: dict = field(default_factory=dict)
    q: float = 1.0
    k: float = 1.0
    v: float = 1.0
    lg: float = 1.0
    ctx: float = 1.0
    h1: float = 1.0
    a2: float = 1.0
    f1: float = 1.0
    h2: float = 1.0
    pool: float = 1.0
    logit: float = 1.0


class IntRowTransformer:
    """Integer `RowTransformer` (one block) whose LoRA adapters are read from grid codes."""

    def __init__(self, model: nn.Module, groups: dict[str, QGroup], init_codes: dict[str, torch.Tensor],
                 calib_x: torch.Tensor, *, in_scale: float = 1.0 / 255, act_margin: float = 1.0,
                 lora_margin: float = 2.0, res_margin: float = 2.0, logit_margin: float = 2.0) -> None:
        from hwsim.models.transformer import LoRALinear

        need = ("heads", "embed", "pos", "ln1", "ln2", "q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "head")
        missing = [a for a in need if not hasattr(model, a)]
        if missing:
            raise ModelError(f"lora_forward: model {type(model).__name__} lacks {missing}; "
                             "the integer forward covers hwsim.models.transformer.RowTransformer")
        if model.embed.out_features % int(model.heads):
            raise ModelError(f"lora_forward: width {model.embed.out_features} is not a multiple of heads {model.heads}")
        self.heads = int(model.heads)
        self.d = int(model.embed.out_features)
        self.tokens = int(model.pos.shape[0])
        self.dh = self.d // self.heads
        self.groups = groups
        self.lora: dict[str, tuple[str, str, float]] = {}   # proj → (A group, B group, α/r)
        self.base: dict[str, nn.Linear] = {}
        for p in ("q_proj", "k_proj", "v_proj"):
            m = getattr(model, p)
            if isinstance(m, LoRALinear):
                self.lora[p] = (f"{p}.lora_A", f"{p}.lora_B", float(m.scaling))
                self.base[p] = m.base
            elif isinstance(m, nn.Linear):
                self.base[p] = m
            else:
                raise ModelError(f"lora_forward: {p} is {type(m).__name__}; expected Linear or LoRALinear")
        for p in ("out_proj", "fc1", "fc2", "head", "embed"):
            if isinstance(getattr(model, p), LoRALinear):
                raise ModelError(f"lora_forward: LoRA on {p} is not supported (only q/k/v projections)")
        for a, b, _ in self.lora.values():
            for n in (a, b):
                if n not in groups or n not in init_codes:
                    raise ModelError(f"lora_forward: no grid/codes for adapter {n}")
        self.model = model
        self.meta = {"shape": {n: tuple(c.shape) for n, c in init_codes.items()},
                     "calibration_n": int(calib_x.shape[0])}
        self.sc = Scales(x=in_scale)
        self._calibrate(calib_x, init_codes, act_margin, lora_margin, res_margin, logit_margin)
        self._build()

    # ---- setup (float, once) -------------------------------------------------------------------
    def _adapter(self, name: str, codes: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.groups[name].dequantize(codes[name]).double()

    def _fq(self, lin: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        w = lin.weight.detach().double()
        s = (w.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
        b = lin.bias.detach().double() if lin.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        return round_half_away(w / s).clamp(-127, 127) * s, b

    @torch.no_grad()
    def _calibrate(self, x: torch.Tensor, codes: dict[str, torch.Tensor], act_m: float, lora_m: float,
                   res_m: float, logit_m: float) -> None:
        """A float64 pass mirroring the integer graph (fake-quantized weights, grid adapters, the
        uint8-rounded input) that records each activation's max |value| → its static scale."""
        from hwsim.algorithms.zoqo_forward import quantize_input

        m, sc = self.model, self.sc
        n = x.shape[0]
        xin = quantize_input(x).double().reshape(n, self.tokens, -1) * sc.x

        def lin(mod, h):
            w, b = self._fq(mod)
            return h @ w.t() + b

        def s8(v, margin=act_m, top=127):
            mx = float(v.abs().max()) * margin
            return (mx if mx > 0 else 1.0) / top

        def ln(mod, h):
            return F.layer_norm(h, (self.d,), mod.weight.double(), mod.bias.double(), 0.0)

        h0 = lin(m.embed, xin) + m.pos.detach().double()
        sc.h0 = s8(h0, res_m, INT16[1])
        a = ln(m.ln1, h0)
        sc.a1 = s8(a)
        proj = {}
        for p, base in self.base.items():
            y = lin(base, a)
            if p in self.lora:
                an, bn, scal = self.lora[p]
                t = a @ self._adapter(an, codes).t()
                sc.t[p] = s8(t, lora_m)
                y = y + scal * (t @ self._adapter(bn, codes).t())
            setattr(sc, p[0], s8(y, lora_m if p in self.lora else act_m))
            proj[p[0]] = y.view(n, self.tokens, self.heads, self.dh).transpose(1, 2)
        lg = proj["q"] @ proj["k"].transpose(-1, -2) / math.sqrt(self.dh)
        sc.lg = s8(lg)
        ctx = (torch.softmax(lg, -1) @ proj["v"]).transpose(1, 2).reshape(n, self.tokens, self.d)
        sc.ctx = s8(ctx)
        h1 = h0 + lin(m.out_proj, ctx)
        sc.h1 = s8(h1, res_m, INT16[1])
        a2 = ln(m.ln2, h1)
        sc.a2 = s8(a2)
        f1 = F.relu(lin(m.fc1, a2))
        sc.f1 = s8(f1, act_m, 255)
        h2 = h1 + lin(m.fc2, f1)
        sc.h2 = s8(h2, res_m, INT16[1])
        pool = h2.mean(1)
        sc.pool = s8(pool)
        logits = lin(m.head, pool)
        sc.logit = s8(logits, logit_m, LOGIT_MAX)

    def _build(self) -> None:
        """Integer weights and fixed-point multipliers from the calibrated scales."""
        m, sc, d, T = self.model, self.sc, self.d, self.tokens
        self.embed = IntLinear.from_float("embed", m.embed, sc.x, extra=m.pos.detach())
        self.rq_embed = Requant.plan([sc.x * self.embed.s_w / sc.h0], [self.embed.acc_bound(255)])
        self.ln1 = LayerNormParams.build(m.ln1.weight.detach(), m.ln1.bias.detach(), sc.a1)
        self.ln2 = LayerNormParams.build(m.ln2.weight.detach(), m.ln2.bias.detach(), sc.a2)
        self.proj: dict[str, IntLinear] = {}
        self.rq_proj: dict[str, Requant] = {}
        self.rq_t: dict[str, Requant] = {}
        for p, base in self.base.items():
            lin = IntLinear.from_float(p, base, sc.a1)
            self.proj[p] = lin
            s_y = getattr(sc, p[0])
            reals, bounds = [sc.a1 * lin.s_w / s_y], [lin.acc_bound(128)]
            if p in self.lora:
                an, bn, scal = self.lora[p]
                ga, gb = self.groups[an], self.groups[bn]
                r = self.meta["shape"][an][0]
                s_t = sc.t[p]
                self.rq_t[p] = Requant.plan([sc.a1 * ga.scale / s_t, sc.a1 * ga.r_min / s_t],
                                            [128 * ga.qmax * d, 128 * d])
                reals += [scal * s_t * gb.scale / s_y, scal * s_t * gb.r_min / s_y]
                bounds += [128 * gb.qmax * r, 128 * r]
            self.rq_proj[p] = Requant.plan(reals, bounds)
        self.rq_lg = Requant.plan([sc.q * sc.k / (math.sqrt(self.dh) * sc.lg)], [128 * 128 * self.dh])
        self.softmax = SoftmaxParams.build(sc.lg)
        self.rq_ctx = Requant.plan([sc.v / (256.0 * sc.ctx)], [255 * 128 * T])
        self.out_proj = IntLinear.from_float("out_proj", m.out_proj, sc.ctx)
        self.rq_h1 = Requant.plan([sc.ctx * self.out_proj.s_w / sc.h1, sc.h0 / sc.h1],
                                  [self.out_proj.acc_bound(128), 1 << 15])
        self.fc1 = IntLinear.from_float("fc1", m.fc1, sc.a2)
        self.rq_f1 = Requant.plan([sc.a2 * self.fc1.s_w / sc.f1], [self.fc1.acc_bound(128)])
        self.fc2 = IntLinear.from_float("fc2", m.fc2, sc.f1)
        self.rq_h2 = Requant.plan([sc.f1 * self.fc2.s_w / sc.h2, sc.h1 / sc.h2],
                                  [self.fc2.acc_bound(255), 1 << 15])
        self.rq_pool = Requant.plan([sc.h2 / (T * sc.pool)], [T << 15])
        self.head = IntLinear.from_float("head", m.head, sc.pool)
        self.rq_head = Requant.plan([sc.pool * self.head.s_w / sc.logit], [self.head.acc_bound(128)])
        self.logit_scale = sc.logit
        self.classes = int(self.head.w.shape[0])

    # ---- running -------------------------------------------------------------------------------
    def forward(self, codes: dict[str, torch.Tensor], xq: torch.Tensor, trace: Trace | None = None,
                tag: str = "") -> torch.Tensor:
        """int64 logits [N, classes] (int16 range, scale `logit_scale`) for uint8 images `xq`."""
        em = _Emitter(trace, tag)
        n, T, d, dh = xq.shape[0], self.tokens, self.d, self.dh
        x = xq.reshape(n, T, -1)
        xi = TensorInfo("x", tuple(x.shape), 8, "input", "uint8")
        # embedding (+ positions folded into the bias) → int16 residual h0
        acc = self.embed.acc(x)
        h0, sat = self.rq_embed([acc], *INT16)
        h0i = em.t("h0", h0.shape, "int16")
        em.linear("embed", xi, self.embed, h0i, acc.numel(), x.shape[-1], 1, sat, bias=True)
        # LayerNorm 1
        a, a_i = self._layernorm(em, "ln1", h0, h0i, self.ln1, free_in=False)
        # projections (LoRA on the adapters' grid codes)
        outs = {}
        for p, lin in self.proj.items():
            outs[p] = self._projection(em, p, lin, a, a_i, codes)
        em.free(a_i)
        (q, qi), (k, ki), (v, vi) = outs["q_proj"], outs["k_proj"], outs["v_proj"]
        # attention
        lg, pr, ctx, sats = self.attention(q, k, v)
        lgi = em.t("attn.logits", lg.shape, "int8")
        ns = lg.numel()
        em.op("batch_matmul", "attn.scores", [qi, ki], [lgi], {("mac", "int8"): ns * dh,
              ("elementwise", "int32"): 4 * ns, ("compare", "int32"): ns}, sats[0], free=[qi, ki])
        pri = em.t("attn.probs", pr.shape, "int8")
        rows = ns // T
        em.op("softmax", "attn.softmax", [lgi], [pri], {("elementwise", "int32"): 30 * ns + 20 * rows,
              ("compare", "int8"): 2 * ns}, 0, free=[lgi], impl="tflm-reference-int8")
        ci = em.t("attn.ctx", ctx.shape, "int8")
        em.op("batch_matmul", "attn.context", [pri, vi], [ci], {("mac", "int8"): ns * dh,
              ("elementwise", "int8"): ns, ("elementwise", "int32"): 4 * ctx.numel(),
              ("compare", "int32"): ctx.numel()}, sats[1], free=[pri, vi])
        # out_proj + residual (rescale h0 onto h1's scale) → int16 h1
        acc = self.out_proj.acc(ctx)
        h1, sat = self.rq_h1([acc, h0], *INT16)
        h1i = em.t("h1", h1.shape, "int16")
        em.linear("out_proj", ci, self.out_proj, h1i, acc.numel(), d, 2, sat, bias=True, extra_reads=[h0i],
                  free=[ci, h0i])
        # FFN
        a2, a2i = self._layernorm(em, "ln2", h1, h1i, self.ln2, free_in=False)
        acc = self.fc1.acc(a2)
        f1, sat = self.rq_f1([acc], *UINT8)
        f1 = f1.to(torch.uint8)
        f1i = em.t("fc1", f1.shape, "uint8")
        em.linear("fc1", a2i, self.fc1, f1i, acc.numel(), d, 1, sat, bias=True, free=[a2i])
        acc = self.fc2.acc(f1)
        h2, sat = self.rq_h2([acc, h1], *INT16)
        h2i = em.t("h2", h2.shape, "int16")
        em.linear("fc2", f1i, self.fc2, h2i, acc.numel(), f1.shape[-1], 2, sat, bias=True, extra_reads=[h1i],
                  free=[f1i, h1i])
        # mean pool (1/T folded into the multiplier) and head
        ps = h2.sum(1)
        pool, sat = self.rq_pool([ps], *INT8)
        pool = pool.to(torch.int8)
        pi = em.t("pool", pool.shape, "int8")
        em.op("mean_pool", "pool", [h2i], [pi], {("elementwise", "int32"): h2.numel() + 4 * pool.numel(),
              ("compare", "int32"): pool.numel()}, sat, free=[h2i])
        acc = self.head.acc(pool)
        logits, sat = self.rq_head([acc], *INT16)
        li = TensorInfo(f"logits{tag}", tuple(logits.shape), 16, "output", "int16")
        em.alloc(li)
        em.linear("head", pi, self.head, li, acc.numel(), d, 1, sat, bias=True, free=[pi], alloc=False)
        return logits

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
        """int8 q, k, v [N, T, d] → (int8 logits [N, H, T, T], int8 probabilities (Z = −128, S = 1/256),
        int8 context [N, T, d], saturations of the two requantizations)."""
        n, T, d = q.shape
        H, dh = self.heads, self.dh
        qh, kh, vh = (t.reshape(n, T, H, dh).transpose(1, 2) for t in (q, k, v))
        lg, sat1 = self.rq_lg([int_matmul(qh, kh.transpose(-1, -2))], *INT8)
        pr = softmax_int8(lg, self.softmax)
        pu = (pr + 128).to(torch.uint8)                    # Z = −128 → unsigned probabilities ·256
        ctx, sat2 = self.rq_ctx([int_matmul(pu, vh)], *INT8)
        ctx = ctx.transpose(1, 2).reshape(n, T, d).to(torch.int8)
        return lg, pr, ctx, (sat1, sat2)

    def _layernorm(self, em: "_Emitter", name: str, h: torch.Tensor, hi: TensorInfo, p: LayerNormParams,
                   free_in: bool) -> tuple[torch.Tensor, TensorInfo]:
        y, sat, iters = layernorm_int(h, p)
        y = y.to(torch.int8)
        yi = em.t(name, y.shape, "int8")
        rows = h.numel() // h.shape[-1]
        gb = [TensorInfo(f"{name}.gamma", (h.shape[-1],), 32, "weight", "int32"),
              TensorInfo(f"{name}.beta", (h.shape[-1],), 32, "weight", "int32")]
        em.op("layernorm", name, [hi, *gb], [yi], {("elementwise", "int32"): 10 * h.numel() + 13 * rows + 7 * iters,
              ("compare", "int32"): h.numel()}, sat, free=[hi] if free_in else [], impl="ibert-int")
        return y, yi

    def project(self, p: str, a: torch.Tensor, codes: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
        """Projection `p` of int8 `a` [..., d] → (int8 y, int8 LoRA intermediate t or None, saturations
        of y, of t). With LoRA: t from the exact GEMM a·c_Aᵀ plus R_A·Σa (row sum), then y from
        a·Wᵀ + b, t·c_Bᵀ and R_B·Σt in one fused requantization (α/r inside the multipliers)."""
        acc = self.proj[p].acc(a)
        if p not in self.lora:
            y, sat = self.rq_proj[p]([acc], *INT8)
            return y.to(torch.int8), None, sat, 0
        an, bn, _ = self.lora[p]
        acc_a = int_matmul(a, codes[an].t())
        rs_a = a.sum(-1, dtype=torch.int64, keepdim=True)
        t, sat_t = self.rq_t[p]([acc_a, rs_a], *INT8)
        t = t.to(torch.int8)
        acc_b = int_matmul(t, codes[bn].t())
        rs_t = t.sum(-1, dtype=torch.int64, keepdim=True)
        y, sat = self.rq_proj[p]([acc, acc_b, rs_t], *INT8)
        return y.to(torch.int8), t, sat, sat_t

    def _projection(self, em: "_Emitter", p: str, lin: IntLinear, a: torch.Tensor, a_i: TensorInfo,
                    codes: dict[str, torch.Tensor]) -> tuple[torch.Tensor, TensorInfo]:
        y, t, sat, sat_t = self.project(p, a, codes)
        rows = y.numel() // y.shape[-1]
        outs = y.numel()
        reads: list[TensorInfo] = []
        terms = 1
        work = {("mac", "int8"): outs * lin.w.shape[1]}
        if t is not None:
            an, bn, _ = self.lora[p]
            ca, cb = codes[an], codes[bn]
            ga, gb = self.groups[an], self.groups[bn]
            ai_ = TensorInfo(f"{an}{em.tag}", tuple(ca.shape), ga.bits, "param", f"uint{ga.bits}")
            ti = em.t(f"{p}.lora_t", t.shape, "int8")
            em.op("fully_connected", f"{p}.lora_A", [a_i, ai_], [ti],
                  {("mac", code_fmt(ga.bits)): t.numel() * ca.shape[1],
                   ("elementwise", "int32"): a.numel() + 6 * t.numel(),
                   ("compare", "int32"): t.numel()}, sat_t, layer=f"{p}.lora_A", bits=ga.bits)
            bi_ = TensorInfo(f"{bn}{em.tag}", tuple(cb.shape), gb.bits, "param", f"uint{gb.bits}")
            reads = [ti, bi_]
            terms = 3
            fmt = code_fmt(gb.bits)
            work[("mac", fmt)] = work.get(("mac", fmt), 0) + outs * cb.shape[1]
        work[("elementwise", "int32")] = outs * (1 + 2 * terms + 2) + (t.numel() if t is not None else 0)
        work[("compare", "int32")] = outs
        yi = em.t(p, y.shape, "int8")
        em.op("fully_connected", p, [a_i, em.weight(lin), em.bias(lin)] + reads, [yi], work, sat, layer=p,
              free=reads[:1], lora=t is not None, rows=rows)
        return y, yi

    @torch.no_grad()
    def predict(self, codes: dict[str, torch.Tensor], xq: torch.Tensor, batch: int = 512) -> torch.Tensor:
        return torch.cat([self.forward(codes, xq[s:s + batch]).argmax(1) for s in range(0, xq.shape[0], batch)])


class _Emitter:
    """Trace bookkeeping of one integer forward (no-ops without a trace)."""

    def __init__(self, trace: Trace | None, tag: str) -> None:
        self.trace, self.tag = trace, tag

    def t(self, name: str, shape, fmt: str, kind: str = "activation") -> TensorInfo:
        bits = int(fmt.lstrip("uint"))
        return TensorInfo(f"{name}{self.tag}", tuple(shape), bits, kind, fmt)

    def weight(self, lin: IntLinear) -> TensorInfo:
        return TensorInfo(f"{lin.name}.weight", tuple(lin.w.shape), 8, "weight", "int8")

    def bias(self, lin: IntLinear) -> TensorInfo:
        return TensorInfo(f"{lin.name}.bias", tuple(lin.b.shape), 32, "bias", "int32")

    def alloc(self, t: TensorInfo) -> None:
        if self.trace is not None:
            self.trace.alloc(t)

    def free(self, t: TensorInfo) -> None:
        if self.trace is not None and t.kind != "input":
            self.trace.free(t)

    def op(self, op: str, name: str, reads, writes, work, sat: int, *, free=(), layer: str = "",
           alloc: bool = True, **attrs) -> None:
        if self.trace is None:
            return
        if alloc:
            for w in writes:
                self.trace.alloc(w)
        self.trace.op(op, f"{name}{self.tag}", reads, writes, work, saturations=sat, layer=layer or name, **attrs)
        for t in free:
            self.free(t)

    def linear(self, name: str, xi: TensorInfo, lin: IntLinear, yi: TensorInfo, outs: int, k: int, terms: int,
               sat: int, *, bias: bool, extra_reads=(), free=(), alloc: bool = True) -> None:
        work = {("mac", "int8"): outs * k,
                ("elementwise", "int32"): outs * ((1 if bias else 0) + 2 * terms + 2), ("compare", "int32"): outs}
        self.op("fully_connected", name, [xi, self.weight(lin), self.bias(lin), *extra_reads], [yi], work, sat,
                free=free, alloc=alloc)


def int_weight_infos(net: IntRowTransformer) -> list[TensorInfo]:
    """The frozen base weights/biases (allocated once at the start of a traced step)."""
    em = _Emitter(None, "")
    out = []
    for lin in [net.embed, *net.proj.values(), net.out_proj, net.fc1, net.fc2, net.head]:
        out += [em.weight(lin), em.bias(lin)]
    for ln in ("ln1", "ln2"):
        out += [TensorInfo(f"{ln}.gamma", (net.d,), 32, "weight", "int32"),
                TensorInfo(f"{ln}.beta", (net.d,), 32, "weight", "int32")]
    return out
