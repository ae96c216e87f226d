"""A tiny transformer classifier that reads an image row by row (8×8 digits → 8 tokens of 8 pixels),
with optional LoRA adapters on the query/value projections.

Why: the ZOQO LoRA experiment needs a transformer whose adapters can be fine-tuned offline in
seconds; digits rows as tokens ship with scikit-learn.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    """y = W x + b + (α/r)·B A x; A ~ kaiming-uniform(a=√5) (U(±1/√n)), B = 0 (ZO-Bench's init)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, gen: torch.Generator) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        n, o = base.in_features, base.out_features
        self.lora_A = nn.Parameter(torch.empty(rank, n).uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n), generator=gen))
        self.lora_B = nn.Parameter(torch.zeros(o, rank))
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)


class RowTransformer(nn.Module):
    def __init__(self, rows: int = 8, width: int = 8, d: int = 32, heads: int = 2, ffn: int = 64,
                 classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.heads = heads
        self.embed = nn.Linear(width, d)
        self.pos = nn.Parameter(0.02 * torch.randn(rows, d))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = self.embed(x.reshape(n, x.shape[-2], x.shape[-1])) + self.pos
        a = self.ln1(h)
        dh = a.shape[-1] // self.heads
        q, k, v = (p(a).view(n, -1, self.heads, dh).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
        h = h + self.out_proj((att @ v).transpose(1, 2).reshape(n, -1, a.shape[-1]))
        h = h + self.fc2(F.relu(self.fc1(self.ln2(h))))
        return self.head(h.mean(1))

    def add_lora(self, rank: int = 4, alpha: float = 8.0, targets: tuple[str, ...] = ("q_proj", "v_proj"),
                 seed: int = 0) -> list[str]:
        """Freeze everything, wrap the target projections; returns the adapter parameter names."""
        gen = torch.Generator().manual_seed(seed)
        for p in self.parameters():
            p.requires_grad_(False)
        for t in targets:
            setattr(self, t, LoRALinear(getattr(self, t), rank, alpha, gen))
        return [n for n, _ in self.named_parameters() if ".lora_" in n]
