"""Zeroth-order baselines of ZOQO Table IV, in plain torch (docs/algorithms.md §1.2, §1.10).

Each baseline is one optimizer (ZO-Sign or ZO-Adam) times one quantization treatment:
  fp        Gaussian FP noise, FP parameters, FP update
  post-q    train exactly like fp, quantize (b bits, the same layer-wise grid as ZOQO) once at the end
  q-post    re-quantize the parameters after every update
  q-noise   θ± = Q(θ ± μz) (perturbed parameters quantized) and re-quantize after every update
ZO-Sign: θ ← θ − η·sign(ℓ+ − ℓ−)·sign(z)  (the discrete rule ZOQO says it uses, tie → −1 like ZOQO)
ZO-Adam: ĝ = (ℓ+ − ℓ−)/(2μ)·z, then Adam (β = 0.9, 0.999, ε = 1e-8), ZO-AdaMM style.
The MeZO-style in-place perturbation (θ+μz, θ−μz, restore) is the "plain torch" FP step used as the
speed baseline of benchmarks/bench_zoqo_step.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.errors import WorkloadError
from hwsim.quant import QGroup, make_group

OPTIMIZERS = ("sign", "adam")
TREATMENTS = ("fp", "post-q", "q-post", "q-noise")


@dataclass(frozen=True)
class ZOBaselineConfig:
    optimizer: str = "sign"
    treatment: str = "fp"
    lr: float = 1e-3
    mu: float = 1e-3
    bits: int = 8
    range_mode: str = "minmax"
    range_factor: float = 2.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise WorkloadError(f"zo baseline: optimizer {self.optimizer!r} unknown; use one of {OPTIMIZERS}")
        if self.treatment not in TREATMENTS:
            raise WorkloadError(f"zo baseline: treatment {self.treatment!r} unknown; use one of {TREATMENTS}")


class ZOBaseline:
    """Trains a float nn.Module in place with a two-query ZO estimate."""

    def __init__(self, model: nn.Module, cfg: ZOBaselineConfig, groups: dict[str, QGroup] | None = None,
                 trainable: list[str] | None = None) -> None:
        self.model, self.cfg = model, cfg
        self.params = {n: p for n, p in model.named_parameters() if trainable is None or n in trainable}
        for p in self.params.values():
            p.requires_grad_(False)
        if groups is None and cfg.treatment == "fp":
            groups = {}      # FP never quantizes during training; post-q builds its grid at the end
        self.groups = groups if groups is not None else {
            n: make_group(n, p.detach(), cfg.bits, cfg.range_mode, cfg.range_factor) for n, p in self.params.items()}
        self.gen = torch.Generator().manual_seed(int(cfg.seed))
        self.m = {n: torch.zeros_like(p) for n, p in self.params.items()} if cfg.optimizer == "adam" else {}
        self.v = {n: torch.zeros_like(p) for n, p in self.params.items()} if cfg.optimizer == "adam" else {}
        self.t = 0
        if cfg.treatment in ("q-post", "q-noise"):
            self._requantize()

    def _requantize(self) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.groups[n].fake_quant(p))

    @torch.no_grad()
    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(F.cross_entropy(self.model(x), y))

    @torch.no_grad()
    def step(self, x: torch.Tensor, y: torch.Tensor) -> int:
        cfg = self.cfg
        z = {n: torch.randn(p.shape, generator=self.gen) for n, p in self.params.items()}
        if cfg.treatment == "q-noise":
            saved = {n: p.clone() for n, p in self.params.items()}
            for n, p in self.params.items():
                p.copy_(self.groups[n].fake_quant(saved[n] + cfg.mu * z[n]))
            lp = self._loss(x, y)
            for n, p in self.params.items():
                p.copy_(self.groups[n].fake_quant(saved[n] - cfg.mu * z[n]))
            lm = self._loss(x, y)
            for n, p in self.params.items():
                p.copy_(saved[n])
        else:   # MeZO-style in-place perturbation
            for n, p in self.params.items():
                p.add_(z[n], alpha=cfg.mu)
            lp = self._loss(x, y)
            for n, p in self.params.items():
                p.add_(z[n], alpha=-2 * cfg.mu)
            lm = self._loss(x, y)
            for n, p in self.params.items():
                p.add_(z[n], alpha=cfg.mu)
        sigma = 1 if lp > lm else -1
        self.t += 1
        if cfg.optimizer == "sign":
            for n, p in self.params.items():
                p.sub_(torch.sign(z[n]), alpha=cfg.lr * sigma)
        else:
            b1, b2 = cfg.betas
            coef = (lp - lm) / (2 * cfg.mu)
            for n, p in self.params.items():
                g = z[n] * coef
                self.m[n].mul_(b1).add_(g, alpha=1 - b1)
                self.v[n].mul_(b2).addcmul_(g, g, value=1 - b2)
                mhat = self.m[n] / (1 - b1 ** self.t)
                vhat = self.v[n] / (1 - b2 ** self.t)
                p.sub_(cfg.lr * mhat / (vhat.sqrt() + cfg.eps))
        if cfg.treatment in ("q-post", "q-noise"):
            self._requantize()
        return sigma

    def final_codes(self) -> dict[str, torch.Tensor]:
        """The b-bit codes of the final parameters (post-q quantizes here, once)."""
        return {n: self.groups[n].quantize(p.detach()) for n, p in self.params.items()}
