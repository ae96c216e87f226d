"""Dataset loaders: digits (bundled), MNIST IDX and CIFAR-10 python batches on tiny files written here."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from hwsim.data import load_dataset
from hwsim.errors import HwsimError


def _idx_bytes(arr: np.ndarray) -> bytes:
    # written by hand from the IDX spec (independent of hwsim.data.mnist.write_idx)
    return bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()


def test_digits_split_shapes_and_range():
    x, y = load_dataset("digits")
    xt, yt = load_dataset("digits", split="test")
    xa, ya = load_dataset("digits", split="all")
    assert x.shape == (1437, 1, 8, 8) and xt.shape == (360, 1, 8, 8) and xa.shape == (1797, 1, 8, 8)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(xa.min()) == 0.0 and float(xa.max()) == 1.0
    from sklearn.datasets import load_digits
    d = load_digits()
    assert torch.equal(ya, torch.tensor(d.target))
    assert torch.equal(xa[5, 0] * 16, torch.tensor(d.images[5], dtype=torch.float32))
    assert sorted(np.bincount(yt.numpy())) [0] >= 35   # stratified: every class ≈ 36 test images


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_roundtrip(tmp_path, gz):
    rng = np.random.default_rng(0)
    tr_img = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    tr_lab = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    te_img = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    te_lab = np.array([9, 2], dtype=np.uint8)
    for name, arr in (("train-images-idx3-ubyte", tr_img), ("train-labels-idx1-ubyte", tr_lab),
                      ("t10k-images-idx3-ubyte", te_img), ("t10k-labels-idx1-ubyte", te_lab)):
        data = _idx_bytes(arr)
        if gz:
            with gzip.open(tmp_path / (name + ".gz"), "wb") as fh:
                fh.write(data)
        else:
            (tmp_path / name).write_bytes(data)
    x, y = load_dataset("mnist", path=tmp_path, split="train")
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert y.tolist() == [3, 1, 4, 1, 5] and y.dtype == torch.int64
    assert int(round(float(x[2, 0, 7, 9]) * 255)) == int(tr_img[2, 7, 9])
    xt, yt = load_dataset("mnist", path=tmp_path, split="test")
    assert yt.tolist() == [9, 2] and torch.equal((xt[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(te_img))
    xa, _ = load_dataset("mnist", path=tmp_path, split="all")
    assert xa.shape[0] == 7


def test_mnist_bad_files(tmp_path, monkeypatch):
    with pytest.raises(HwsimError, match="not found"):
        load_dataset("mnist", path=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 28, 28) + b"\x00" * 10)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(HwsimError, match="truncated"):
        load_dataset("mnist", path=tmp_path)
    monkeypatch.delenv("HWSIM_DATA", raising=False)
    with pytest.raises(HwsimError, match="never downloads"):
        load_dataset("mnist", path=None)


def _cifar_batch(path, imgs, labels):
    d = {b"batch_label": b"x", b"labels": list(map(int, labels)), b"data": imgs.reshape(len(labels), 3072),
         b"filenames": [b"a.png"] * len(labels)}
    with open(path, "wb") as fh:
        pickle.dump(d, fh, protocol=2)


def test_cifar10_batches(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    a = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    t = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    _cifar_batch(root / "data_batch_1", a, [0, 1, 2])
    _cifar_batch(root / "data_batch_2", b, [7, 8])
    _cifar_batch(root / "test_batch", t, [5, 5, 6, 9])
    x, y = load_dataset("cifar10", path=tmp_path, split="train")
    assert x.shape == (5, 3, 32, 32) and y.tolist() == [0, 1, 2, 7, 8]
    # channel-major layout: red plane first
    assert int(round(float(x[4, 2, 31, 0]) * 255)) == int(b[1, 2, 31, 0])
    xt, yt = load_dataset("cifar10", path=root, split="test")
    assert yt.tolist() == [5, 5, 6, 9] and xt.dtype == torch.float32 and float(xt.max()) <= 1.0


def test_cifar10_refuses_code_in_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh)
    with pytest.raises(HwsimError, match="not a CIFAR-10"):
        load_dataset("cifar10", path=tmp_path, split="test")


def test_unknown_dataset_and_split():
    with pytest.raises(HwsimError, match="unknown"):
        load_dataset("imagenet")
    with pytest.raises(HwsimError, match="split"):
        load_dataset("digits", split="valid")
