"""CIFAR-10 from the local "python version" batches (data_batch_1..5, test_batch).

Each batch is a pickled dict with b"data" (N×3072 uint8, channel-major 3×32×32) and b"labels".
The unpickler is restricted to numpy array reconstruction, so a tampered file cannot run code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from hwsim.errors import WorkloadError

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("builtins", "dict"),
            ("_codecs", "encode")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            d = _SafeUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise WorkloadError(f"{path}: not a CIFAR-10 python batch ({err})") from None
    data = d.get(b"data", d.get("data")) if isinstance(d, dict) else None
    labels = d.get(b"labels", d.get("labels")) if isinstance(d, dict) else None
    if data is None or labels is None:
        raise WorkloadError(f"{path}: CIFAR-10 batch lacks 'data'/'labels' keys")
    data = np.asarray(data, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise WorkloadError(f"{path}: data {data.shape} / labels {labels.shape}; expected N×3072 and N")
    return data.reshape(-1, 3, 32, 32), labels


def write_batch(path: str | Path, images: np.ndarray, labels) -> None:
    """Write N×3×32×32 uint8 images as a CIFAR-10 python batch (test fixtures)."""
    d = {b"batch_label": b"hwsim", b"labels": [int(v) for v in labels],
         b"data": np.ascontiguousarray(images, dtype=np.uint8).reshape(len(labels), 3072),
         b"filenames": [b"%d.png" % i for i in range(len(labels))]}
    with open(path, "wb") as fh:
        pickle.dump(d, fh, protocol=2)


def load_cifar10(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise WorkloadError(f"CIFAR-10: path {root} is not a folder; point `path:` at cifar-10-batches-py")
    names = []
    if split in ("train", "all"):
        names += sorted(p.name for p in root.glob("data_batch_*"))
        if not names:
            raise WorkloadError(f"CIFAR-10: no data_batch_* files under {root}")
    if split in ("test", "all"):
        if not (root / "test_batch").is_file():
            raise WorkloadError(f"CIFAR-10: test_batch not found under {root}")
        names.append("test_batch")
    xs, ys = zip(*(read_batch(root / n) for n in names))
    x = torch.from_numpy(np.concatenate(xs).astype(np.float32) / 255.0)
    return x, torch.from_numpy(np.concatenate(ys))
