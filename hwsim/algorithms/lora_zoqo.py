"""ZOQO fine-tuning of LoRA adapters with both loss queries in the integer emulator.

Why: `ZOQOAdapterTrainer` (hwsim.algorithms.lora) perturbs and updates integer codes but asks the
float transformer for the two losses; here the queries run through `IntRowTransformer`, so a whole
step — perturb, forward±, compare, update — is integer except the loss comparison (none with
loss="lut"), and its trace is what `hwsim simulate` costs.

One step (docs/algorithms.md §1.7), per adapter tensor g with its own grid (§1.9, `lora_groups`):
    perturb  j ← inverse-CDF(T_g, uint32 draws) ∈ {−k_g..k_g};  c± = clamp(c ± j, 0, 2^b−1)
    forward  logits± = IntRowTransformer.forward(c±, x)
    compare  σ = +1 if ℓ(c+) > ℓ(c−) else −1 (tie rule per ZOQOConfig)
    update   c ← clamp(c − m_g·σ·sign(j), 0, 2^b−1)
"""
from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torch.nn as nn

from hwsim.algorithms.lora import lora_groups
from hwsim.algorithms.lora_forward import IntRowTransformer, int_weight_infos
from hwsim.algorithms.zoqo import emit_perturb_events
from hwsim.algorithms.zoqo_loss import LutLoss, float_ce
from hwsim.algorithms.zoqo_noise import GroupedSampler, cdf_table, counter_base, noise_steps, uniform32
from hwsim.errors import WorkloadError
from hwsim.trace import TensorInfo, Trace


class IntLoRATrainer:
    """Integer codes of the LoRA adapters of a `RowTransformer` and integer ZOQO steps on them."""

    def __init__(self, model: nn.Module, names: list[str], cfg, calib_x: torch.Tensor, *,
                 zero_range: str = "paired_a", zero_floor: float = 0.01) -> None:
        if cfg.regenerate_noise:
            raise WorkloadError("zoqo-lora: regenerate_noise is not supported by the integer LoRA trainer "
                                "(the noise is stored between perturb and update); set it to false")
        self.cfg, self.names = cfg, list(names)
        params = dict(model.named_parameters())
        self.groups = lora_groups({n: params[n].detach() for n in self.names}, cfg.bits, zero_range=zero_range,
                                  zero_floor=zero_floor, factor=cfg.range_factor)
        init = {n: self.groups[n].quantize(params[n].detach()) for n in self.names}
        self.shapes = {n: tuple(c.shape) for n, c in init.items()}
        self.sizes = [init[n].numel() for n in self.names]
        self.flat = torch.cat([init[n].reshape(-1).to(torch.int32) for n in self.names])
        self.ks, tables, self.ms = [], [], []
        for n in self.names:
            g = self.groups[n]
            k = noise_steps(cfg.mu, g.scale, cfg.k_rounding)
            sigma = cfg.sigma_steps if cfg.sigma_steps is not None else cfg.mu / g.scale
            self.ks.append(k)
            tables.append(cdf_table(k, sigma, cfg.noise))
            self.ms.append(g.steps(cfg.lr))
        self.tables = tables
        self.sampler = GroupedSampler(tables, self.ks, self.sizes)
        self.m_vec = torch.cat([torch.full((s,), m, dtype=torch.int32) for s, m in zip(self.sizes, self.ms)])
        self.q_vec = torch.cat([torch.full((s,), self.groups[n].qmax, dtype=torch.int32)
                                for s, n in zip(self.sizes, self.names)])
        self.base = counter_base(self.flat.numel())
        self.code_dtype = torch.uint8 if cfg.bits <= 8 else torch.int32
        self.net = IntRowTransformer(model, self.groups, init, calib_x)
        self.lut = LutLoss.build(self.net.logit_scale) if cfg.loss == "lut" else None
        self.t = 0

    # ---- state ------------------------------------------------------------------------------
    def codes_of(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: c.view(self.shapes[n]).to(self.code_dtype)
                for n, c in zip(self.names, torch.split(flat, self.sizes))}

    @property
    def codes(self) -> dict[str, torch.Tensor]:
        return self.codes_of(self.flat)

    def load_into(self, model: nn.Module) -> None:
        """Write the grid values R_min + s·c into the float model's adapters (for float evaluation)."""
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n, c in self.codes.items():
                params[n].copy_(self.groups[n].dequantize(c).view_as(params[n]))

    # ---- one step -----------------------------------------------------------------------------
    def _loss(self, logits: torch.Tensor, y: torch.Tensor, trace: Trace | None, tag: str):
        if self.lut is not None:
            return self.lut(logits, y, trace, tag)
        return float_ce(logits, y, self.net.logit_scale, trace, tag)

    @torch.no_grad()
    def step(self, xq: torch.Tensor, y: torch.Tensor, trace: Trace | None = None) -> dict:
        cfg = self.cfg
        if trace is not None:
            self._emit_start(trace, xq)
        with _phase(trace, "perturb"):
            j = self.sampler(uniform32(cfg.seed, self.t, 0, self.flat.numel(), self.base)).to(torch.int32)
            pm = []
            for sgn in (1, -1):
                c = self.flat + sgn * j
                if cfg.clamp_perturbed:
                    c = torch.minimum(c.clamp(min=0), self.q_vec)
                pm.append(c)
            if trace is not None:
                self._emit_perturb(trace)
        losses, logits = [], []
        for tag, c in zip(("+", "-"), pm):
            ph = "forward_plus" if tag == "+" else "forward_minus"
            with _phase(trace, ph):
                logits.append(self.net.forward(self.codes_of(c), xq, trace, tag))
                if trace is not None:
                    for n in self.names:
                        trace.free(self._code_info(n, tag))
        with _phase(trace, "compare"):
            for tag, lg in zip(("+", "-"), logits):
                losses.append(self._loss(lg, y, trace, tag))
                if trace is not None:
                    trace.free(TensorInfo(f"logits{tag}", tuple(lg.shape), 16, "output", "int16"))
            lp, lm = losses
            sigma = 1 if lp > lm else (0 if (cfg.tie == "zero" and lp == lm) else -1)
            if trace is not None:
                fmt = "int64" if self.lut is not None else "fp32"
                bits = 64 if self.lut is not None else 32
                li, lj = (TensorInfo(f"loss{t}", (1,), bits, "scratch", fmt) for t in ("+", "-"))
                trace.op("compare_losses", "sigma", [li, lj], [TensorInfo("sigma", (1,), 8, "scratch", "int8")],
                         {("compare", "int32" if self.lut is not None else "fp32"): 1})
                trace.free(li)
                trace.free(lj)
        with _phase(trace, "update"):
            if sigma:
                self.flat = torch.minimum((self.flat - torch.sign(j) * self.m_vec * sigma).clamp(min=0), self.q_vec)
            if trace is not None:
                self._emit_update(trace)
        self.t += 1
        return {"sigma": sigma, "loss_plus": lp, "loss_minus": lm}

    # ---- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, xq: torch.Tensor) -> torch.Tensor:
        return self.net.predict(self.codes, xq)

    def accuracy(self, xq: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predict(xq) == y).float().mean())

    # ---- trace emission ---------------------------------------------------------------------
    def _code_info(self, name: str, tag: str = "") -> TensorInfo:
        g = self.groups[name]
        return TensorInfo(f"{name}{tag}", self.shapes[name], g.bits, "param", f"uint{g.bits}")

    def _noise_bits(self, i: int) -> int:
        return int(math.ceil(math.log2(2 * self.ks[i] + 1)))

    def _noise_info(self, i: int) -> TensorInfo:
        n = self.names[i]
        return TensorInfo(f"noise:{n}", self.shapes[n], self._noise_bits(i), "noise", "int8")

    def _emit_start(self, trace: Trace, xq: torch.Tensor) -> None:
        with trace.phase("perturb"):
            for t in int_weight_infos(self.net):
                trace.alloc(t)
            for i, n in enumerate(self.names):
                trace.alloc(self._code_info(n))
                trace.alloc(TensorInfo(f"cdf:{n}", (self.tables[i].numel(),), 64, "state", "uint64"))
            trace.alloc(TensorInfo("x", tuple(xq.reshape(xq.shape[0], self.net.tokens, -1).shape), 8, "input",
                                   "uint8"))
        trace.meta.setdefault("zoqo", {"config": asdict(self.cfg), "params": int(self.flat.numel()),
                                       "model": "RowTransformer (integer forward, LoRA on q/v)",
                                       "groups": {n: {"r_min": g.r_min, "r_max": g.r_max, "scale": g.scale,
                                                      "m": self.ms[i], "k": self.ks[i]}
                                                  for i, (n, g) in enumerate(self.groups.items())}})

    def _emit_perturb(self, trace: Trace) -> None:
        for i, (name, n) in enumerate(zip(self.names, self.sizes)):
            emit_perturb_events(trace, name, n, self.tables[i].numel(), code=self._code_info(name),
                                noise=self._noise_info(i),
                                outs=[self._code_info(name, tag) for tag in ("+", "-")],
                                rng_chunk=self.cfg.rng_chunk, clamp=self.cfg.clamp_perturbed)

    def _emit_update(self, trace: Trace) -> None:
        for i, (name, n) in enumerate(zip(self.names, self.sizes)):
            code, j = self._code_info(name), self._noise_info(i)
            # sign(j), ×(m·σ), subtract, clamp low, clamp high
            trace.op("update_codes", f"update:{name}", [code, j], [code],
                     {("elementwise", "int8"): 3 * n, ("compare", "int8"): 2 * n}, layer=name)
            trace.free(j)


class _phase:
    """`trace.phase(name)` when tracing, a no-op otherwise."""

    def __init__(self, trace: Trace | None, name: str) -> None:
        self.cm = trace.phase(name) if trace is not None else None

    def __enter__(self):
        return self.cm.__enter__() if self.cm is not None else None

    def __exit__(self, *a):
        return self.cm.__exit__(*a) if self.cm is not None else False
