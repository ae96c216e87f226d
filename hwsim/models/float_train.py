"""Seeded float training with an on-disk cache keyed by a hash of the whole configuration.

Why: attacks and ZOQO start from float-trained models; retraining them in every test or CLI run
would cost minutes, and a cache keyed by (architecture, initial weights, data, hyper-parameters)
can never hand back a model trained on something else.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

#: optional per-batch hook (x, y, model) -> x', e.g. the attack room's PGD adversarial examples
BatchHook = Callable[[torch.Tensor, torch.Tensor, nn.Module], torch.Tensor]


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run small-tensor work on `n` intra-op threads (restored afterwards).

    Why: on a loaded 2-core machine torch's default thread pool makes 64×64 GEMMs ~100× slower
    than one thread; the models here are far too small to gain from parallelism.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """`cache_dir`, else `$HWSIM_CACHE`, else `.hwsim_cache/` in the working directory."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("HWSIM_CACHE", ".hwsim_cache"))


def config_hash(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **hyper) -> str:
    h = hashlib.sha256()
    h.update(repr(model).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update(x.detach().cpu().contiguous().numpy().tobytes())
    h.update(y.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(sorted(hyper.items())).encode())
    return h.hexdigest()[:20]


def train_float(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], epochs: int = 20, seed: int = 0,
                cache_dir: str | os.PathLike | None = None, *, lr: float = 1e-2, batch_size: int = 64,
                weight_decay: float = 0.0, hook: BatchHook | None = None, hook_name: str = "",
                use_cache: bool = True) -> nn.Module:
    """Adam + cross-entropy, deterministic order from `seed`; returns the (same) model in eval mode.

    A `hook` changes the training data per batch (adversarial training); give it a `hook_name`
    so cached models trained with different hooks do not collide.
    """
    x, y = data
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    key = config_hash(model, x, y, epochs=int(epochs), seed=int(seed), lr=float(lr), bs=int(batch_size),
                      wd=float(weight_decay), hook=hook_name if hook is not None else "")
    path = cache_root(cache_dir) / f"float_{key}.pt"
    if use_cache and path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    with torch_threads(1):
        _fit(model, x, y, epochs=int(epochs), seed=int(seed), lr=lr, batch_size=batch_size,
             weight_decay=weight_decay, hook=hook)
    model.eval()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
    return model


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int, lr: float,
         batch_size: int, weight_decay: float, hook: BatchHook | None) -> None:
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    for _ in range(int(epochs)):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            xb, yb = x[idx], y[idx]
            if hook is not None:
                xb = hook(xb, yb, model)
            model.train()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for s in range(0, x.shape[0], batch_size):
        correct += int((model(x[s:s + batch_size]).argmax(1) == y[s:s + batch_size]).sum())
    return correct / max(1, x.shape[0])
