"""A small CNN classifier: [Conv3×3 → ReLU → MaxPool2]* → Flatten → Linear.

Why this shape: small enough to train in seconds on digits/MNIST on a laptop, and made of layers
the integer emulator runs (Conv2d, ReLU, MaxPool2d, Flatten, Linear).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn


def _init(layer: nn.Module, fan_in: int, gen: torch.Generator) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.uniform_(-bound, bound, generator=gen)


def build_cnn(in_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10,
              channels: Sequence[int] = (16, 32), seed: int = 0) -> nn.Sequential:
    """Seeded CNN; each conv block halves H and W (floor), so 8×8 digits allow up to 3 blocks."""
    gen = torch.Generator().manual_seed(int(seed))
    c, h, w = (int(v) for v in in_shape)
    layers: list[nn.Module] = []
    for out_c in channels:
        conv = nn.Conv2d(c, int(out_c), 3, padding=1)
        _init(conv, c * 9, gen)
        layers += [conv, nn.ReLU(), nn.MaxPool2d(2)]
        c, h, w = int(out_c), h // 2, w // 2
    head = nn.Linear(c * h * w, int(num_classes))
    _init(head, c * h * w, gen)
    layers += [nn.Flatten(), head]
    return nn.Sequential(*layers)
