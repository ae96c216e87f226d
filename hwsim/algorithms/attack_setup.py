"""Data, natural model and adversarially trained model for the attack tables.

Why: the attack runner needs (x_test, y_test) plus two trained classifiers. Data, model builders
and the seeded, cached trainer are the ZOQO-training room's (`hwsim.data.load_dataset`,
`hwsim.models.{mlp,cnn}`, `hwsim.models.float_train.train_float`); this module only adds the
dataset defaults of the attack papers and the adversarially trained twin (adv_train.py).

Pixel units: every attack here runs on [0, 1] images; ε/δ are given in the dataset's native units
(CIFAR-10: 0–255, as in the SignHunter configs) and divided by `pixel_scale`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

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


# ---- data and models (the ZOQO-training room's API) -----------------------------------------------


def load_data(dataset: str, path: str | None = None):
    """(x_train, y_train, x_test, y_test), images NCHW float32 in [0, 1] (`hwsim.data`)."""
    if dataset not in DATASET_DEFAULTS:
        raise WorkloadError(f"attack workload: dataset {dataset!r} unknown; use one of "
                            f"{sorted(DATASET_DEFAULTS)}")
    from hwsim.data import load_dataset
    x_tr, y_tr = load_dataset(dataset, path=path, split="train")
    x_te, y_te = load_dataset(dataset, path=path, split="test")
    return x_tr, y_tr, x_te, y_te


def build_model(kind: str, in_shape: tuple[int, ...], classes: int, seed: int,
                model_args: dict | None = None) -> nn.Module:
    """`hwsim.models.build_mlp` / `build_cnn`, seeded, with optional extra builder arguments."""
    from hwsim.models.cnn import build_cnn
    from hwsim.models.mlp import build_mlp
    fn = build_mlp if kind == "mlp" else build_cnn
    extra = dict(model_args or {})
    allowed = set(inspect.signature(fn).parameters) - {"in_shape", "num_classes", "seed"}
    if set(extra) - allowed:
        raise WorkloadError(f"workload field model_args.{sorted(set(extra) - allowed)[0]} unknown for "
                            f"{kind}; known: {', '.join(sorted(allowed))}")
    return fn(in_shape=in_shape, num_classes=classes, seed=seed, **extra)


def prepare(dataset: str, *, path: str | None, model_kind: str | None, which: list[str], epochs: int,
            pgd: PGDConfig, seed: int, cache_dir: Path | None, model_args: dict | None = None,
            lr: float = 1e-2) -> AttackSetup:
    """Load data and train/load the requested models ("natural", "adversarial")."""
    from hwsim.models.float_train import train_float
    x_tr, y_tr, x_te, y_te = load_data(dataset, path)
    kind = model_kind or DATASET_DEFAULTS[dataset]["model"]
    if kind not in ("mlp", "cnn"):
        raise WorkloadError(f"attack workload: model {kind!r} unknown; use mlp or cnn")
    classes = int(max(int(y_tr.max()), int(y_te.max())) + 1)
    setup = AttackSetup(dataset, x_tr, y_tr, x_te, y_te)
    setup.provenance["data"] = f"hwsim.data.load_dataset({dataset!r}): {len(y_tr)} train / {len(y_te)} test"
    for which_model in which:
        if which_model not in ("natural", "adversarial"):
            raise WorkloadError(f"attack workload: models entry {which_model!r} unknown; "
                                "use natural and/or adversarial")
        model = build_model(kind, tuple(x_tr.shape[1:]), classes, seed, model_args)
        setup.provenance[f"{which_model}_model"] = f"hwsim.models.{kind}.build_{kind}({model_args or {}})"
        if which_model == "natural":
            model = train_float(model, (x_tr, y_tr), epochs=epochs, seed=seed, cache_dir=cache_dir, lr=lr)
            how = f"train_float (Adam lr {lr}, {epochs} epochs, seed {seed})"
        else:
            model = train_adversarial(model, (x_tr, y_tr), pgd, cache_dir=cache_dir, tag=f"{dataset}-{kind}")
            how = (f"PGD adversarial training via train_float (eps {pgd.eps}, {pgd.steps} steps of "
                   f"{pgd.alpha:.4g}, {pgd.epochs} epochs, Adam lr {pgd.lr})")
        setup.provenance[f"{which_model}_training"] = how
        setup.models[which_model] = model.eval()
        clean, robust = robust_accuracy(model, x_te, y_te, PGDConfig(
            eps=pgd.eps, steps=20, step_size=pgd.eps / 8, lb=0.0, ub=1.0, seed=seed))
        setup.accuracy[which_model] = {"clean": clean, f"pgd20_eps{pgd.eps:g}": robust}
    return setup
