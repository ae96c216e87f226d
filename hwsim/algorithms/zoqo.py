"""ZOQO (Bar & Giryes, Algorithm 1): zeroth-order training on b-bit grid codes, integer-only except
for the loss comparison (docs/algorithms.md §1.3–1.7).

One step, per quantization group g (a layer tensor with its own R_min, R_max, s):
    perturb  r ← uint32 draws (counter PRNG), j ← inverse-CDF(T_g, r) − k_g ∈ {−k..k}
             c± ← clamp(c ± j, 0, 2^b−1)
    forward  logits± ← integer forward on c± (two queries, in the emulator)
    compare  σ ← +1 if ℓ(c+) > ℓ(c−) else −1            (the only float work; none with loss="lut")
    update   c ← clamp(c − m_g·σ·sign(j), 0, 2^b−1),  m_g = max(⌊η/s_g⌋, 1)

Every open choice ([A] in §1.12) is a `ZOQOConfig` field with the documented default.
An untraced step of an MLP runs through `zoqo_fast.FastStep` (same integers, less per-step overhead);
a traced step, and any model or setting it does not cover, takes the general path below.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import torch
import torch.nn as nn

from hwsim.algorithms.zoqo_fast import FastStep
from hwsim.algorithms.zoqo_forward import IntNet, quantize_input
from hwsim.algorithms.zoqo_loss import LOSSES, LutLoss, float_ce, pair_ce
from hwsim.algorithms.zoqo_noise import GroupedSampler, cdf_table, counter_base, noise_steps, uniform32
from hwsim.errors import WorkloadError
from hwsim.quant import QGroup, code_dtype, make_group
from hwsim.trace import TensorInfo, Trace

TIE_RULES = ("binary", "zero")


def emit_perturb_events(trace: Trace, name: str, n: int, table_size: int, *, code: TensorInfo,
                        noise: TensorInfo, outs: list[TensorInfo], rng_chunk: int, clamp: bool) -> None:
    """Events of ZOQO's perturb phase for one tensor of n codes (Algorithm 1, lines 3–5).

    Why shared: every ZOQO trainer (MLP/CNN, LoRA transformer) perturbs the same way — chunked
    uint32 draws, inverse-CDF table lookup into the noise codes, then c ± j (clamped) — so one
    function states its work once. `outs` are the two perturbed code tensors (+, −).
    """
    r_info = TensorInfo(f"r:{name}", (min(n, rng_chunk),), 32, "scratch", "uint32")
    table = TensorInfo(f"cdf:{name}", (table_size,), 64, "state", "uint64")
    trace.alloc(r_info)
    trace.op("rng_uint32", f"rng:{name}", [], [r_info], {("rng", "int32"): n}, layer=name)
    trace.alloc(noise)
    depth = max(1, int(math.ceil(math.log2(table_size))))
    trace.op("inverse_cdf", f"noise:{name}", [r_info, table], [noise],
             {("compare", "int32"): n * depth, ("elementwise", "int8"): n}, layer=name)
    trace.free(r_info)
    for tag, out in zip(("+", "-"), outs):
        trace.alloc(out)
        trace.op("perturb_codes", f"perturb{tag}:{name}", [code, noise], [out],
                 {("elementwise", "int8"): n * (2 if clamp else 1)}, layer=name)


@dataclass(frozen=True)
class ZOQOConfig:
    """Hyper-parameters and the [A] choices of §1.12 (defaults as documented there)."""

    bits: int = 8
    lr: float = 1e-3                 # η → m = max(⌊η/s⌋, 1) grid steps per update
    mu: float = 1e-3                 # μ → k = max(⌊μ/s⌋, 1) noise steps
    sigma_steps: float | None = None  # σ of the discrete Gaussian in grid steps; None → μ/s (σ = μ)
    k_rounding: str = "floor"        # floor | ceil
    noise: str = "gaussian"          # gaussian | uniform (on B)
    tie: str = "binary"              # binary: ℓ+ > ℓ− → +1 else −1 (text); zero: ℓ+ = ℓ− → no update
    clamp_perturbed: bool = True     # clamp θ± into [0, 2^b−1] (codes outside cannot be stored)
    loss: str = "float"              # float (fp32 CE) | lut (integer exp/log tables)
    regenerate_noise: bool = False   # MeZO-style: redraw j from the seed in the update, do not store it
    range_mode: str = "minmax"       # quantization range from the initial tensor (see hwsim.quant)
    range_factor: float = 2.0        # used by 2x_minmax / symmetric
    act_bits: int = 8
    seed: int = 0
    rng_chunk: int = 4096            # trace: uint32 draws are made and consumed in chunks of this many
                                     # (the host emulation draws all at once; the integers are identical)

    def __post_init__(self) -> None:
        if self.tie not in TIE_RULES:
            raise WorkloadError(f"zoqo: tie {self.tie!r} unknown; use one of {TIE_RULES}")
        if self.loss not in LOSSES:
            raise WorkloadError(f"zoqo: loss {self.loss!r} unknown; use one of {LOSSES}")
        if not (self.lr > 0 and self.mu > 0):
            raise WorkloadError(f"zoqo: lr ({self.lr}) and mu ({self.mu}) must be > 0")


@dataclass
class GroupState:
    """Integer constants of one quantization group, fixed before training."""

    index: int
    group: QGroup
    m: int                 # update steps
    k: int                 # noise steps
    table: torch.Tensor    # int64 CDF thresholds, last = 2^32
    noise_bits: int        # ceil(log2(2k+1)) (+1 for the sign) — §1.8 b_noise


class ZOQOTrainer:
    """Holds the codes of a float model's parameters and runs ZOQO steps on them."""

    def __init__(self, model: nn.Module, cfg: ZOQOConfig, calib_x: torch.Tensor, *,
                 groups: dict[str, QGroup] | None = None) -> None:
        self.cfg = cfg
        self.groups: dict[str, QGroup] = {}
        self.codes: dict[str, torch.Tensor] = {}
        for name, p in model.named_parameters():
            g = (groups or {}).get(name) or make_group(name, p.detach(), cfg.bits, cfg.range_mode, cfg.range_factor)
            self.groups[name] = g
            self.codes[name] = g.quantize(p.detach())
        self.state: dict[str, GroupState] = {}
        for i, (name, g) in enumerate(self.groups.items()):
            k = noise_steps(cfg.mu, g.scale, cfg.k_rounding)
            sigma = cfg.sigma_steps if cfg.sigma_steps is not None else cfg.mu / g.scale
            self.state[name] = GroupState(i, g, g.steps(cfg.lr), k, cdf_table(k, sigma, cfg.noise),
                                          int(math.ceil(math.log2(2 * k + 1))))
        self.net = IntNet.from_float(model, self.groups, self.codes, calib_x, act_bits=cfg.act_bits)
        # one flat code buffer (views per group): a step is then a handful of vector ops
        self.slices: dict[str, slice] = {}
        off = 0
        for name, c in self.codes.items():
            self.slices[name] = slice(off, off + c.numel())
            off += c.numel()
        self.shapes = {n: tuple(c.shape) for n, c in self.codes.items()}
        dtype = code_dtype(max(g.bits for g in self.groups.values()))
        self.flat = torch.cat([c.reshape(-1).to(dtype) for c in self.codes.values()])
        self.qmax_vec = torch.cat([torch.full((c.numel(),), self.groups[n].qmax, dtype=torch.int32)
                                   for n, c in self.codes.items()]).to(self._wide)
        self.m_vec = torch.cat([torch.full((c.numel(),), self.state[n].m, dtype=torch.int32)
                                for n, c in self.codes.items()]).to(self._wide)
        self.base = counter_base(off)
        names = list(self.codes)
        self.sampler = GroupedSampler([self.state[n].table for n in names], [self.state[n].k for n in names],
                                      [self.codes[n].numel() for n in names])
        self.codes = self._views(self.flat)
        self.lut = LutLoss.build(self.net.logit_scale) if cfg.loss == "lut" else None
        self.step_index = 0
        self._fast = FastStep.build(self)   # untraced fast path (same integers), None if not eligible

    @property
    def codes(self) -> dict[str, torch.Tensor]:
        """Per-group views of `flat` (rebuilt only when `flat` was replaced, not every step)."""
        flat = getattr(self, "flat", None)
        if flat is not None and self._codes_for is not flat:
            self._codes, self._codes_for = self._views(flat), flat
        return self._codes

    @codes.setter
    def codes(self, value: dict[str, torch.Tensor]) -> None:
        self._codes, self._codes_for = value, getattr(self, "flat", None)

    # ---- pieces of a step ------------------------------------------------------------------
    @property
    def _wide(self) -> torch.dtype:
        """Arithmetic dtype for codes ± steps (int16 holds −k..2^b−1+k for b ≤ 8)."""
        return torch.int16 if max(g.bits for g in self.groups.values()) <= 8 else torch.int32

    def _views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: flat[sl].view(self.shapes[n]) for n, sl in self.slices.items()}

    def _noise_flat(self, step: int) -> torch.Tensor:
        """j for every code of every group: one PRNG pass, one inverse-CDF search per group."""
        r = uniform32(self.cfg.seed, step, 0, self.base.numel(), self.base)
        return self.sampler(r).to(self._wide)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, trace: Trace | None, tag: str):
        if self.lut is not None:
            return self.lut(logits, y, trace, tag)
        return float_ce(logits, y, self.net.logit_scale, trace, tag)

    def step(self, xq: torch.Tensor, y: torch.Tensor, trace: Trace | None = None) -> dict:
        """One ZOQO update on a uint8 batch; emits the step's events into `trace` when given."""
        if trace is None and self._fast is not None and xq.dtype == torch.uint8 and xq.device.type == "cpu":
            return self._fast.step(xq, y)
        cfg, t = self.cfg, self.step_index
        if trace is not None:
            self._emit_params(trace, xq)
        ctx = trace.phase("perturb") if trace is not None else _null()
        with ctx:
            j = self._noise_flat(t)
            wide = self.flat.to(self._wide)
            pm = torch.empty((2, wide.numel()), dtype=self._wide)             # [2, d]: θ+, θ−
            torch.add(wide, j, out=pm[0])
            torch.sub(wide, j, out=pm[1])
            if cfg.clamp_perturbed:
                pm = torch.minimum(pm.clamp_(min=0), self.qmax_vec, out=pm).to(self.flat.dtype)
            stacked = {n: pm[:, sl].view(2, *self.shapes[n]) for n, sl in self.slices.items()}
            if trace is not None:
                for name, st in self.state.items():
                    self._emit_perturb(trace, name, st, self.codes[name])
            if cfg.regenerate_noise:
                del j
        logits = self.net.forward_stacked(stacked, xq, trace)
        if trace is None and self.lut is None:
            losses = pair_ce(logits, y, self.net.logit_scale)
        else:
            losses = []
            for qi, tag in enumerate(("+", "-")):
                ctx = trace.phase("compare") if trace is not None else _null()
                with ctx:
                    losses.append(self._loss(logits[qi], y, trace, tag))
        for qi, tag in enumerate(("+", "-")):
            if trace is not None:
                with trace.phase("forward_plus" if tag == "+" else "forward_minus"):
                    for name in self.codes:
                        trace.free(self._code_info(name, tag))
        lp, lm = losses
        ctx = trace.phase("compare") if trace is not None else _null()
        with ctx:
            sigma = 1 if lp > lm else (0 if (cfg.tie == "zero" and lp == lm) else -1)
            if trace is not None:
                fmt = "int64" if self.lut is not None else "fp32"
                li = TensorInfo("loss+", (1,), 64 if self.lut is not None else 32, "scratch", fmt)
                lj = TensorInfo("loss-", (1,), li.bits, "scratch", fmt)
                trace.op("compare_losses", "sigma", [li, lj], [TensorInfo("sigma", (1,), 8, "scratch", "int8")],
                         {("compare", "int32" if self.lut is not None else "fp32"): 1})
                trace.free(li)
                trace.free(lj)
        ctx = trace.phase("update") if trace is not None else _null()
        with ctx:
            if sigma != 0:
                if cfg.regenerate_noise:
                    j = self._noise_flat(t)
                wide = self.flat.to(self._wide)
                wide -= torch.sign(j) * self.m_vec * sigma
                self.flat = torch.minimum(wide.clamp_(min=0), self.qmax_vec, out=wide).to(self.flat.dtype)
                self.codes = self._views(self.flat)
            if trace is not None:
                for name, st in self.state.items():
                    self._emit_update(trace, name, st, self.codes[name])
            if trace is not None:
                for name, st in self.state.items():
                    if not cfg.regenerate_noise:
                        trace.free(self._noise_info(name, st))
        self.step_index += 1
        return {"sigma": sigma, "loss_plus": lp, "loss_minus": lm}

    # ---- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, xq: torch.Tensor, batch: int = 512) -> torch.Tensor:
        return torch.cat([self.net.forward(self.codes, xq[s:s + batch]).argmax(1)
                          for s in range(0, xq.shape[0], batch)])

    def accuracy(self, xq: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predict(xq) == y).float().mean())

    def dequantized(self) -> dict[str, torch.Tensor]:
        return {n: self.groups[n].dequantize(c) for n, c in self.codes.items()}

    def num_params(self) -> int:
        return sum(c.numel() for c in self.codes.values())

    # ---- trace emission ---------------------------------------------------------------------
    def _code_info(self, name: str, tag: str = "") -> TensorInfo:
        g = self.groups[name]
        # trainable grid codes are training state (RAM), not read-only weights (flash)
        return TensorInfo(f"{name}{tag}", tuple(self.codes[name].shape), g.bits, "param", f"uint{g.bits}")

    def _noise_info(self, name: str, st: GroupState) -> TensorInfo:
        return TensorInfo(f"noise:{name}", tuple(self.codes[name].shape), st.noise_bits, "noise", "int8")

    def _emit_params(self, trace: Trace, xq: torch.Tensor) -> None:
        with trace.phase("perturb"):
            for name in self.codes:
                trace.alloc(self._code_info(name))
            trace.alloc(TensorInfo("x", tuple(xq.shape), 8, "input", "uint8"))   # one batch, both queries
        trace.meta.setdefault("zoqo", {"config": asdict(self.cfg), "params": self.num_params(),
                                       "groups": {n: {"r_min": g.r_min, "r_max": g.r_max, "scale": g.scale,
                                                      "m": self.state[n].m, "k": self.state[n].k}
                                                  for n, g in self.groups.items()}})

    def _emit_perturb(self, trace: Trace, name: str, st: GroupState, c: torch.Tensor) -> None:
        j_info = self._noise_info(name, st)
        emit_perturb_events(trace, name, c.numel(), st.table.numel(), code=self._code_info(name),
                            noise=j_info, outs=[self._code_info(name, tag) for tag in ("+", "-")],
                            rng_chunk=self.cfg.rng_chunk, clamp=self.cfg.clamp_perturbed)
        if self.cfg.regenerate_noise:
            trace.free(j_info)

    def _emit_update(self, trace: Trace, name: str, st: GroupState, c: torch.Tensor) -> None:
        n = c.numel()
        code = self._code_info(name)
        j_info = self._noise_info(name, st)
        if self.cfg.regenerate_noise:
            r_info = TensorInfo(f"r:{name}", (min(n, self.cfg.rng_chunk),), 32, "scratch", "uint32")
            trace.alloc(r_info)
            trace.op("rng_uint32", f"rng:{name}", [], [r_info], {("rng", "int32"): n}, layer=name)
            trace.alloc(j_info)
            depth = max(1, int(math.ceil(math.log2(st.table.numel()))))
            trace.op("inverse_cdf", f"noise:{name}", [r_info], [j_info], {("compare", "int32"): n * depth},
                     layer=name)
            trace.free(r_info)
        # sign(j), ×(m·σ), subtract, clamp low, clamp high
        trace.op("update_codes", f"update:{name}", [code, j_info], [code],
                 {("elementwise", "int8"): 3 * n, ("compare", "int8"): 2 * n}, layer=name)
        if self.cfg.regenerate_noise:
            trace.free(j_info)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def batches(n: int, batch: int, seed: int, steps: int) -> Iterable[torch.Tensor]:
    """Index batches for `steps` steps: seeded reshuffle per epoch (same order for every variant)."""
    gen = torch.Generator().manual_seed(int(seed))
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=gen)
        for s in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield order[s:s + batch]
            done += 1
            if done >= steps:
                return


def train_zoqo(model: nn.Module, cfg: ZOQOConfig, x: torch.Tensor, y: torch.Tensor, *, steps: int,
               batch: int = 64, data_seed: int = 0, trace_step: int | None = 0, progress: bool = False,
               calib_n: int = 256) -> tuple[ZOQOTrainer, Trace, list[dict]]:
    """Run `steps` ZOQO steps on float data in [0,1]; return (trainer, trace of step `trace_step`, log)."""
    xq = quantize_input(x)
    trainer = ZOQOTrainer(model, cfg, x[:calib_n])
    trace = Trace()
    log = []
    it = batches(x.shape[0], batch, data_seed, steps)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=steps, desc=f"zoqo b={cfg.bits}", leave=False)
    for i, idx in enumerate(it):
        tr = trace if i == trace_step else None
        if tr is not None:
            with tr.step(i):
                log.append(trainer.step(xq[idx], y[idx], tr))
        else:
            log.append(trainer.step(xq[idx], y[idx]))
    return trainer, trace, log
