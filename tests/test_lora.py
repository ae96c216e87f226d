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


def test_lora_digits_quick(tmp_path, monkeypatch):
    import yaml
    from pathlib import Path
    from hwsim.workloads import get_runner
    monkeypatch.setenv("HWSIM_CACHE", str(tmp_path))
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "workloads" / "zoqo-lora-digits.yaml").read_text())
    run = get_runner("zoqo-lora")(spec, None, {"quick": True})
    v = run.metrics["variants"]
    assert {"sign/fp", "zoqo@b8", "zoqo@b4", "sign/q-post@b8", "sign/q-post@b4"} == set(v)
    assert run.metrics["lora_params"] == 2 * (4 * 32 + 32 * 4)
    flops = run.trace.float_ops_by_phase()
    assert flops["perturb"] == flops["forward_plus"] == flops["forward_minus"] == flops["update"] == 0
    assert flops["compare"] > 0                      # loss: float (the paper's only float op)
    assert run.repeat == {"step": 5}
    assert {e.op for e in run.trace.filter(phase="forward_plus").ops()} >= {"layernorm", "softmax", "fully_connected"}
    assert set(run.metrics["int_float_agreement"]) == {"b8", "b4"}


def test_adapter_trainer_keeps_codes_on_grid():
    from hwsim.algorithms.lora import ZOQOAdapterTrainer
    from hwsim.algorithms.zoqo import ZOQOConfig
    from hwsim.models.transformer import RowTransformer
    m = RowTransformer(seed=1)
    names = m.add_lora(2, 4.0, seed=1)
    tr = ZOQOAdapterTrainer(m, names, ZOQOConfig(bits=4, lr=0.05, mu=0.1))
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    for _ in range(5):
        tr.step(x, y)
    params = dict(m.named_parameters())
    for n in names:
        g = tr.groups[n]
        c = (params[n].detach().double() - g.r_min) / g.scale
        assert torch.equal(c.round(), c.round()) and float((c - c.round()).abs().max()) < 1e-4
        assert float(c.min()) >= -1e-6 and float(c.max()) <= 15 + 1e-6
    assert 0 <= int(tr.flat.min()) and int(tr.flat.max()) <= 15
