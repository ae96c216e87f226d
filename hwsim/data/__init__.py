"""Offline datasets for the training and attack workloads.

Why: hwsim never downloads anything at run time. `digits` (scikit-learn's bundled 8×8 set) is the
embedded default; MNIST (IDX files) and CIFAR-10 (python batches) are read from a local folder.

Stable API (used by the attack room too)::

    X, y = load_dataset("digits" | "mnist" | "cifar10", path=None, split="train" | "test" | "all")

X is a float32 NCHW tensor in [0, 1], y an int64 tensor of class indices.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from hwsim.errors import WorkloadError
from hwsim.data.cifar10 import load_cifar10
from hwsim.data.digits import load_digits_split
from hwsim.data.mnist import load_mnist, read_idx, write_idx

DATASETS = ("digits", "mnist", "cifar10")
SPLITS = ("train", "test", "all")

__all__ = ["DATASETS", "SPLITS", "load_dataset", "read_idx", "write_idx", "num_classes"]


def _default_path(name: str) -> Path | None:
    """`$HWSIM_DATA/<name>` when the variable is set (a local copy, never a download)."""
    root = os.environ.get("HWSIM_DATA")
    return Path(root) / name if root else None


def load_dataset(name: str, path: str | os.PathLike | None = None, split: str = "train", *,
                 seed: int = 0, test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """(X float32 NCHW in [0,1], y int64) for one split of a dataset.

    `digits` has no official split: a stratified split with `test_fraction` and `seed` is used
    (default 80/20, seed 0 → 1,437 train / 360 test). MNIST and CIFAR-10 use their official splits.
    """
    if split not in SPLITS:
        raise WorkloadError(f"dataset split {split!r} unknown; use one of {', '.join(SPLITS)}")
    key = str(name).lower().replace("-", "").replace("_", "")
    if key == "digits":
        return load_digits_split(split, seed=seed, test_fraction=test_fraction)
    if key in ("mnist", "cifar10"):
        root = Path(path) if path is not None else _default_path(key)
        if root is None:
            raise WorkloadError(f"dataset {name!r} is read from local files: give `path:` (a folder "
                                f"holding the {'IDX files' if key == 'mnist' else 'CIFAR-10 python batches'}) "
                                "or set $HWSIM_DATA; hwsim never downloads data")
        loader = load_mnist if key == "mnist" else load_cifar10
        return loader(root, split)
    raise WorkloadError(f"dataset {name!r} unknown; use one of {', '.join(DATASETS)}")


def num_classes(y: torch.Tensor) -> int:
    return int(y.max()) + 1 if y.numel() else 0
