"""MNIST from local IDX files (the format of yann.lecun.com's distribution, optionally gzipped).

IDX layout: 2 zero bytes, a type byte (0x08 = uint8), a byte with the number of dimensions, then one
big-endian uint32 per dimension, then the data in C order.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from hwsim.errors import WorkloadError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}

#: official file stems per split; `-` and `.` variants (train-images.idx3-ubyte) are accepted too
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (plain or .gz) into a numpy array; raise WorkloadError on a bad header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise WorkloadError(f"{path}: not an IDX file (bad magic {raw[:4].hex()}); expected 0000 08 0N")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != need:
        raise WorkloadError(f"{path}: IDX header says {dims} ({need} bytes) but {len(raw) - header} "
                            "bytes follow; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8/int8 array as an IDX file (used by tests to make tiny fixtures)."""
    arr = np.ascontiguousarray(array)
    code = _CODES.get(arr.dtype)
    if code is None:
        raise WorkloadError(f"write_idx: dtype {arr.dtype} unsupported; use uint8 or int8")
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _find(root: Path, stem: str) -> Path:
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        for folder in (root, root / "raw", root / "MNIST" / "raw"):
            if (folder / name).is_file():
                return folder / name
    raise WorkloadError(f"MNIST: {stem}[.gz] not found under {root}; put the four IDX files there "
                        "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                        "t10k-labels-idx1-ubyte)")


def load_mnist(root: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    root = Path(root)
    if not root.is_dir():
        raise WorkloadError(f"MNIST: path {root} is not a folder; point `path:` at the IDX files")
    parts = ("train", "test") if split == "all" else (split,)
    xs, ys = [], []
    for part in parts:
        img_stem, lab_stem = _FILES[part]
        img = read_idx(_find(root, img_stem))
        lab = read_idx(_find(root, lab_stem))
        if img.ndim != 3 or lab.ndim != 1 or img.shape[0] != lab.shape[0]:
            raise WorkloadError(f"MNIST {part}: images {img.shape} and labels {lab.shape} do not match "
                                "(expected N×H×W and N)")
        xs.append(torch.from_numpy(img.astype(np.float32) / 255.0).unsqueeze(1))
        ys.append(torch.from_numpy(lab.astype(np.int64)))
    return torch.cat(xs), torch.cat(ys)
