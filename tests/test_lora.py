"""LoRA grids: 2× init min/max per tensor, and the zero-initialised B choice."""
from __future__ import annotations

import pytest
import torch

from hwsim.algorithms.lora import lora_groups
from hwsim.errors import HwsimError


def test_lora_ranges_and_zero_b():
    a = torch.tensor([[-0.02, 0.01], [0.015, -0.005]])
    b = torch.zeros(3, 2)
    g = lora_groups({"l0.q.lora_A": a, "l0.q.lora_B": b}, 4)
    assert g["l0.q.lora_A"].r_min == pytest.approx(-0.04) and g["l0.q.lora_A"].r_max == pytest.approx(0.03)
    assert (g["l0.q.lora_B"].r_min, g["l0.q.lora_B"].r_max) == (g["l0.q.lora_A"].r_min, g["l0.q.lora_A"].r_max)
    assert g["l0.q.lora_B"].scale == pytest.approx(0.07 / 15)
    f = lora_groups({"l0.q.lora_A": a, "l0.q.lora_B": b}, 8, zero_range="floor", zero_floor=0.5)
    assert (f["l0.q.lora_B"].r_min, f["l0.q.lora_B"].r_max) == (-0.5, 0.5)
    # zero B on the grid: code of 0.0 dequantizes within half a step of 0
    codes = g["l0.q.lora_B"].quantize(b)
    assert float(g["l0.q.lora_B"].dequantize(codes).abs().max()) <= g["l0.q.lora_B"].scale / 2 + 1e-9


def test_lora_zero_without_pair():
    with pytest.raises(HwsimError, match="paired"):
        lora_groups({"x.lora_B": torch.zeros(2, 2)}, 8)
