"""PGD adversarial training (Madry et al., ICLR 2018) for the "adversarially trained" attack columns.

Why: ZOQO's Table I attacks both a naturally and an adversarially trained model (the Madry
challenge models). Those checkpoints cannot be downloaded at run time, so we train the robust
model ourselves: ℓ∞ PGD with a uniform random start in the ε-ball, `steps` signed-gradient steps
of `step_size`, projection onto the ball and [lb, ub]; the model is trained on the adversarial
points only (Madry's objective). Seeded and cached on disk by a hash of (model architecture,
initial weights, data, hyper-parameters) — through `hwsim.models.float_train.train_float` with a
PGD batch hook — so the attack tables are reproducible and cheap to rerun.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.errors import WorkloadError


@dataclass
class PGDConfig:
    """Madry-style PGD training hyper-parameters ([A] scaled to small models; all parameters)."""

    eps: float = 0.3
    steps: int = 10
    step_size: float | None = None     # None → 2.5·ε/steps (Madry's rule of thumb)
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    lb: float = 0.0
    ub: float = 1.0
    random_start: bool = True
    seed: int = 0

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / max(self.steps, 1)


def pgd_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int,
               step_size: float, lb: float, ub: float, random_start: bool = True,
               gen: torch.Generator | None = None) -> torch.Tensor:
    """White-box ℓ∞ PGD maximizing CE (used for training and to measure robust accuracy)."""
    was_training = model.training
    model.eval()
    x0 = x.detach()
    if random_start:
        noise = torch.rand(x0.shape, generator=gen, dtype=x0.dtype) * 2 - 1
        xa = (x0 + eps * noise).clamp(lb, ub)
    else:
        xa = x0.clone()
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa), y)
        (grad,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            xa = xa + step_size * grad.sign()
            xa = torch.min(torch.max(xa, x0 - eps), x0 + eps).clamp(lb, ub)
    model.train(was_training)
    return xa.detach()


def train_adversarial(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], cfg: PGDConfig, *,
                      cache_dir: str | Path | None = None, tag: str = "") -> nn.Module:
    """Train `model` in place with PGD adversarial training; reuse a cached result when present.

    The training loop, seeding and cache are `hwsim.models.float_train.train_float` (Adam, CE);
    PGD enters as its per-batch hook, and the hook's name carries every PGD hyper-parameter so
    the cache key changes with them. `model` holds its seeded initial weights (part of the key).
    """
    from hwsim.models.float_train import train_float
    x, y = data
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise WorkloadError(f"adversarial training data: {x.shape[0]} inputs vs {y.shape[0]} labels")
    gen = torch.Generator().manual_seed(cfg.seed)

    def pgd_hook(xb: torch.Tensor, yb: torch.Tensor, m: nn.Module) -> torch.Tensor:
        return pgd_attack(m, xb, yb, eps=cfg.eps, steps=cfg.steps, step_size=cfg.alpha, lb=cfg.lb,
                          ub=cfg.ub, random_start=cfg.random_start, gen=gen)

    name = "pgd-madry:" + json.dumps(asdict(cfg), sort_keys=True) + tag
    return train_float(model, (x, y), epochs=cfg.epochs, seed=cfg.seed, cache_dir=cache_dir, lr=cfg.lr,
                       batch_size=cfg.batch_size, hook=pgd_hook, hook_name=name).eval()


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig,
                    seed: int = 1) -> tuple[float, float]:
    """(clean accuracy, PGD accuracy) — a sanity figure for the report."""
    model.eval()
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    gen = torch.Generator().manual_seed(seed)
    xa = pgd_attack(model, x, y, eps=cfg.eps, steps=cfg.steps, step_size=cfg.alpha, lb=cfg.lb,
                    ub=cfg.ub, random_start=cfg.random_start, gen=gen)
    with torch.no_grad():
        robust = float((model(xa).argmax(1) == y).float().mean())
    return clean, robust
