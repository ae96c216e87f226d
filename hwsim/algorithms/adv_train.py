"""PGD adversarial training (Madry et al., ICLR 2018) for the "adversarially trained" attack columns.

Why: ZOQO's Table I attacks both a naturally and an adversarially trained model (the Madry
challenge models). Those checkpoints cannot be downloaded at run time, so we train the robust
model ourselves: ℓ∞ PGD with a uniform random start in the ε-ball, `steps` signed-gradient steps
of `step_size`, projection onto the ball and [lb, ub]; the model is trained on the adversarial
points only (Madry's objective). Seeded and cached on disk by a hash of (model architecture,
initial weights, data, hyper-parameters), so the attack tables are reproducible and cheap to rerun.
"""
from __future__ import annotations

import hashlib
import io
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


def _cache_key(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig, tag: str) -> str:
    h = hashlib.sha256()
    h.update(repr(model).encode())
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    h.update(buf.getvalue())
    h.update(x.detach().cpu().numpy().tobytes())
    h.update(y.detach().cpu().numpy().tobytes())
    h.update(json.dumps(asdict(cfg), sort_keys=True).encode())
    h.update(tag.encode())
    return h.hexdigest()[:16]


def train_adversarial(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], cfg: PGDConfig, *,
                      cache_dir: str | Path | None = None, tag: str = "", progress: bool = False
                      ) -> nn.Module:
    """Train `model` in place with PGD adversarial training; reuse a cached result when present.

    `model` should hold its (seeded) initial or naturally pre-trained weights: they are part of the
    cache key. Returns the model in eval mode.
    """
    x, y = data
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise WorkloadError(f"adversarial training data: {x.shape[0]} inputs vs {y.shape[0]} labels")
    path = None
    if cache_dir is not None:
        key = _cache_key(model, x, y, cfg, tag)
        path = Path(cache_dir) / f"adv_pgd_{key}.pt"
        if path.exists():
            model.load_state_dict(torch.load(path, map_location="cpu"))
            return model.eval()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = x.shape[0]
    epochs = range(cfg.epochs)
    if progress:
        from tqdm import tqdm
        epochs = tqdm(epochs, desc="PGD adversarial training", leave=False)
    for _ in epochs:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            xa = pgd_attack(model, x[idx], y[idx], eps=cfg.eps, steps=cfg.steps, step_size=cfg.alpha,
                            lb=cfg.lb, ub=cfg.ub, random_start=cfg.random_start, gen=gen)
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(xa), y[idx]).backward()
            opt.step()
    model.eval()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
    return model


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
