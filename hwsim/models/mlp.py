"""A small fully-connected classifier (Flatten → [Linear → ReLU]* → Linear).

Why this shape: the ZOQO emulator walks `nn.Sequential` children and runs each Linear as an
integer GEMM on grid codes, so the model is kept to layers it knows (Flatten, Linear, ReLU).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn


def build_mlp(in_shape: Sequence[int] = (1, 8, 8), num_classes: int = 10,
              hidden: Sequence[int] = (32,), seed: int = 0) -> nn.Sequential:
    """Seeded MLP; PyTorch's default Linear init drawn from a private generator (global RNG untouched)."""
    gen = torch.Generator().manual_seed(int(seed))
    dims = [math.prod(in_shape), *[int(h) for h in hidden], int(num_classes)]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        lin = nn.Linear(a, b)
        bound = 1.0 / math.sqrt(a)   # = kaiming_uniform(a=√5) bound, PyTorch's default
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=gen)
            lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
