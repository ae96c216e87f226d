"""Data, natural model and adversarially trained model for the attack tables.

Why: the attack runner needs (x_test, y_test) in the dataset's [lb, ub] plus two trained
classifiers. Data and natural training come from the ZOQO-training room's `hwsim.data` /
`hwsim.models` (`load_dataset`, `build_mlp`/`build_cnn`, `train_float`) when those are
installed; until then (or if their API differs) a small self-contained fallback is used for the
offline `digits` set only, and `AttackSetup.provenance` says which path was taken.

Pixel units: every attack here runs on [0, 1] images; ε/δ are given in the dataset's native units
(CIFAR-10: 0–255, as in the SignHunter configs) and divided by `pixel_scale`.
"""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwsim.algorithms.adv_train import PGDConfig, robust_accuracy, train_adversarial
from hwsim.errors import WorkloadError

#: §1.11 / §2.5 defaults in native units: ε natural, ε adversarial, Simple δ, native pixel scale
DATASET_DEFAULTS = {
    "digits": {"eps": 0.3, "eps_adv": 0.3, "delta": 0.1, "pixel_scale": 1.0, "model": "mlp"},
    "mnist": {"eps": 0.3, "eps_adv": 0.3, "delta": 0.1, "pixel_scale": 1.0, "model": "cnn"},
    "cifar10": {"eps": 12.0, "eps_adv": 8.0, "delta": 2.0, "pixel_scale": 255.0, "model": "cnn"},
}


@dataclass
class AttackSetup:
    dataset: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    models: dict[str, nn.Module] = field(default_factory=dict)   # "natural", "adversarial"
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)


# ---- data --------------------------------------------------------------------------------------


def _digits_fallback(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return x_tr, y_tr, x_te, y_te


def load_data(dataset: str, path: str | None = None):
    """(x_train, y_train, x_test, y_test), images NCHW float32 in [0, 1]."""
    if dataset not in DATASET_DEFAULTS:
        raise WorkloadError(f"attack workload: dataset {dataset!r} unknown; use one of "
                            f"{sorted(DATASET_DEFAULTS)}")
    try:
        from hwsim.data import load_dataset  # the ZOQO-training room's loader
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        x_tr, y_tr = load_dataset(dataset, path=path, split="train")
        x_te, y_te = load_dataset(dataset, path=path, split="test")
        return (torch.as_tensor(x_tr, dtype=torch.float32), torch.as_tensor(y_tr, dtype=torch.int64),
                torch.as_tensor(x_te, dtype=torch.float32), torch.as_tensor(y_te, dtype=torch.int64)), \
            "hwsim.data.load_dataset"
    if dataset != "digits":
        raise WorkloadError(f"attack workload: dataset {dataset!r} needs hwsim.data (not installed); "
                            "use dataset: digits")
    return _digits_fallback(), "fallback: sklearn digits, stratified 80/20 split (seed 0)"


# ---- models ------------------------------------------------------------------------------------


def _fallback_model(kind: str, in_shape: tuple[int, ...], classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    c, h, w = in_shape
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 128), nn.ReLU(), nn.Linear(128, 64),
                             nn.ReLU(), nn.Linear(64, classes))
    return nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * (h // 4) * (w // 4), classes))


def build_model(kind: str, in_shape: tuple[int, ...], classes: int, seed: int) -> tuple[nn.Module, str]:
    """The ZOQO room's builder when available (called with what its signature accepts), else ours."""
    try:
        from hwsim.models import cnn as cnn_mod, mlp as mlp_mod
        fn = mlp_mod.build_mlp if kind == "mlp" else cnn_mod.build_cnn
    except (ImportError, AttributeError):
        fn = None
    if fn is not None:
        params = inspect.signature(fn).parameters
        kw = {}
        for name, value in (("in_shape", in_shape), ("input_shape", in_shape), ("num_classes", classes),
                            ("classes", classes), ("seed", seed)):
            if name in params:
                kw[name] = value
        try:
            torch.manual_seed(seed)
            return fn(**kw), f"hwsim.models.{kind}.build_{kind}({', '.join(kw)})"
        except TypeError:
            pass
    return _fallback_model(kind, in_shape, classes, seed), f"fallback {kind} (attack_setup)"


def _train_natural_fallback(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int,
                            cache_dir: Path | None) -> nn.Module:
    key = None
    if cache_dir is not None:
        h = hashlib.sha256(repr(model).encode())
        h.update(x.numpy().tobytes())
        h.update(f"{epochs}-{seed}".encode())
        for v in model.state_dict().values():
            h.update(v.numpy().tobytes())
        key = Path(cache_dir) / f"nat_{h.hexdigest()[:16]}.pt"
        if key.exists():
            model.load_state_dict(torch.load(key, map_location="cpu"))
            return model.eval()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        for s in range(0, x.shape[0], 64):
            idx = order[s:s + 64]
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    if key is not None:
        key.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), key)
    return model


def train_natural(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int,
                  cache_dir: Path | None) -> tuple[nn.Module, str]:
    try:
        from hwsim.models.float_train import train_float
    except ImportError:
        train_float = None
    if train_float is not None:
        try:
            out = train_float(model, (x, y), epochs=epochs, seed=seed, cache_dir=cache_dir)
            trained = out if isinstance(out, nn.Module) else model
            return trained.eval(), "hwsim.models.float_train.train_float"
        except TypeError:
            pass
    return _train_natural_fallback(model, x, y, epochs=epochs, seed=seed, cache_dir=cache_dir), \
        "fallback Adam trainer (attack_setup)"


def prepare(dataset: str, *, path: str | None, model_kind: str | None, which: list[str], epochs: int,
            pgd: PGDConfig, seed: int, cache_dir: Path | None, progress: bool = False) -> AttackSetup:
    """Load data and train/load the requested models ("natural", "adversarial")."""
    (x_tr, y_tr, x_te, y_te), data_src = load_data(dataset, path)
    kind = model_kind or DATASET_DEFAULTS[dataset]["model"]
    if kind not in ("mlp", "cnn"):
        raise WorkloadError(f"attack workload: model {kind!r} unknown; use mlp or cnn")
    classes = int(max(int(y_tr.max()), int(y_te.max())) + 1)
    setup = AttackSetup(dataset, x_tr, y_tr, x_te, y_te)
    setup.provenance["data"] = data_src
    for which_model in which:
        if which_model not in ("natural", "adversarial"):
            raise WorkloadError(f"attack workload: models entry {which_model!r} unknown; "
                                "use natural and/or adversarial")
        model, src = build_model(kind, tuple(x_tr.shape[1:]), classes, seed)
        setup.provenance[f"{which_model}_model"] = src
        if which_model == "natural":
            model, how = train_natural(model, x_tr, y_tr, epochs=epochs, seed=seed, cache_dir=cache_dir)
        else:
            model = train_adversarial(model, (x_tr, y_tr), pgd, cache_dir=cache_dir,
                                      tag=f"{dataset}-{kind}", progress=progress)
            how = f"PGD adversarial training (eps {pgd.eps}, {pgd.steps} steps, {pgd.epochs} epochs)"
        setup.provenance[f"{which_model}_training"] = how
        setup.models[which_model] = model.eval()
        clean, robust = robust_accuracy(model, x_te, y_te, PGDConfig(
            eps=pgd.eps, steps=20, step_size=pgd.eps / 8, lb=0.0, ub=1.0, seed=seed))
        setup.accuracy[which_model] = {"clean": clean, "pgd20": robust}
    return setup
