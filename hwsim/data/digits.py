"""scikit-learn's bundled 8×8 digits (1,797 images, 10 classes): the embedded offline dataset."""
from __future__ import annotations

import functools

import numpy as np
import torch

from hwsim.errors import WorkloadError


@functools.lru_cache(maxsize=4)
def _split_indices(seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    y = _raw()[1]
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    return np.sort(tr), np.sort(te)


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # pixel values are 0..16 in the bundled file; /16 maps them onto [0, 1]
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def load_digits_split(split: str, *, seed: int = 0, test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    if not 0.0 < test_fraction < 1.0:
        raise WorkloadError(f"digits: test_fraction {test_fraction} must lie in (0, 1)")
    x, y = _raw()
    if split != "all":
        tr, te = _split_indices(int(seed), float(test_fraction))
        idx = tr if split == "train" else te
        x, y = x[idx], y[idx]
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.copy())
