"""The integer RowTransformer (ZOQO-LoRA emulator forward) as a model: measured agreement with the
float model on the digits test set, a consistent trace, and the CLI workload with no float op."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits_base(tmp_path_factory):
    from hwsim.data import load_dataset
    from hwsim.models.float_train import train_float
    from hwsim.models.transformer import RowTransformer

    x, y = load_dataset("digits", split="train", seed=0)
    xt, yt = load_dataset("digits", split="test", seed=0)
    base = train_float(RowTransformer(seed=0), (x, y), epochs=3, seed=0, lr=3e-3,
                       cache_dir=tmp_path_factory.mktemp("cache"))
    return base, x, y, xt, yt


@pytest.mark.parametrize("bits", [8, 4])
def test_integer_forward_agrees_with_float(digits_base, bits):
    """Measured: ≥ 97 % same argmax as the float model (adapters at their grid values) on the 360
    test digits and accuracy within 1 point — at the initial codes and after the codes drifted by a
    random walk (B far from zero, the LoRA path fully active)."""
    from hwsim.algorithms.lora_zoqo import IntLoRATrainer
    from hwsim.algorithms.zoqo import ZOQOConfig
    from hwsim.algorithms.zoqo_forward import quantize_input

    base, x, _, xt, yt = digits_base
    m = copy.deepcopy(base)
    names = m.add_lora(4, 8.0, seed=0)
    tr = IntLoRATrainer(m, names, ZOQOConfig(bits=bits, lr=0.006, mu=0.03), x[:256])
    xtq = quantize_input(xt)
    gen = torch.Generator().manual_seed(bits)
    span = 20 if bits == 8 else 2
    for trial in range(2):
        if trial:
            j = torch.randint(-span, span + 1, tr.flat.shape, generator=gen).to(torch.int32)
            tr.flat = torch.minimum((tr.flat + j).clamp(min=0), tr.q_vec)
        tr.load_into(m)
        with torch.no_grad():
            pf = m(xt).argmax(1)
        pi = tr.predict(xtq)
        agree = float((pi == pf).double().mean())
        acc_i, acc_f = float((pi == yt).double().mean()), float((pf == yt).double().mean())
        assert agree >= 0.97, (trial, agree)
        assert abs(acc_i - acc_f) <= 0.01, (trial, acc_i, acc_f)
        assert acc_f > 0.5                       # the float model itself learned the task


@pytest.mark.parametrize("loss", ["float", "lut"])
def test_traced_step_is_consistent_and_integer(loss):
    """Every alloc is freed once, every op touches live tensors, float work only in compare (none
    with the LUT loss), and a traced step gives the same update as an untraced one."""
    from hwsim.algorithms.lora_zoqo import IntLoRATrainer
    from hwsim.algorithms.zoqo import ZOQOConfig
    from hwsim.algorithms.zoqo_forward import quantize_input
    from hwsim.models.transformer import RowTransformer
    from hwsim.trace import AllocEvent, FreeEvent, Trace

    m = RowTransformer(seed=2)
    names = m.add_lora(4, 8.0, seed=2)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(24, 1, 8, 8, generator=gen), torch.randint(0, 10, (24,), generator=gen)
    cfg = ZOQOConfig(bits=8, lr=0.006, mu=0.03, loss=loss)
    a, b = IntLoRATrainer(m, names, cfg, x), IntLoRATrainer(m, names, cfg, x)
    trace = Trace()
    xq = quantize_input(x[:16])
    ra, rb = a.step(xq, y[:16], trace), b.step(xq, y[:16])
    assert ra == rb and torch.equal(a.flat, b.flat)
    live: dict[str, str] = {}
    for e in trace.events:
        if isinstance(e, AllocEvent):
            assert e.tensor.name not in live
            live[e.tensor.name] = e.tensor.kind
        elif isinstance(e, FreeEvent):
            assert live.pop(e.tensor.name, None) is not None, e.tensor.name
        else:
            for t in e.reads + e.writes:
                assert t.kind == "input" or t.name in live or t.name.startswith(("loss", "sigma")), (e.name, t.name)
    assert {k for k, kind in live.items() if kind not in ("weight", "bias", "param", "state", "input")} == set()
    flops = trace.float_ops_by_phase()
    assert set(flops) == {"perturb", "forward_plus", "forward_minus", "compare", "update"}
    assert flops["perturb"] == flops["forward_plus"] == flops["forward_minus"] == flops["update"] == 0
    assert (flops["compare"] == 0) == (loss == "lut")
    ops = {e.op for e in trace.filter(phase="forward_plus").ops()}
    assert {"fully_connected", "layernorm", "softmax", "batch_matmul", "mean_pool"} <= ops
    macs = sum(e.macs for e in trace.filter(phase="forward_minus").ops())
    # 16 images × 8 tokens: embed 8·32, q/k/v/out 4·32·32, LoRA q,v 2·2·32·4, fc1+fc2 2·32·64;
    # attention 2 heads × 8×8 × 16 ×2; head 32·10 per image
    want = 16 * 8 * (8 * 32 + 4 * 32 * 32 + 2 * 2 * 32 * 4 + 2 * 32 * 64) + 16 * 2 * 8 * 8 * 16 * 2 + 16 * 32 * 10
    assert macs == want


def test_cli_quick_lut_has_no_float_op(tmp_path):
    """`hwsim simulate --workload zoqo-lora-digits --quick` with the LUT loss: every phase of the
    costed step is integer, and the step is costed on stm32h743."""
    spec = yaml.safe_load((REPO / "workloads" / "zoqo-lora-digits.yaml").read_text())
    spec.update(loss="lut", cache_dir=str(tmp_path / "cache"))
    spec["quick"] = dict(spec["quick"], bits_list=[8], steps=2, max_train=128)
    wl = tmp_path / "lut.yaml"
    wl.write_text(yaml.safe_dump(spec))
    out = subprocess.run([sys.executable, "-m", "hwsim", "simulate", "--workload", str(wl), "--quick",
                          "--format", "json", "--no-report"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    d = json.loads(out.stdout)
    assert d["target"] == "stm32h743"
    assert d["float_ops_by_phase"] == {p: 0 for p in ("perturb", "forward_plus", "forward_minus", "compare",
                                                       "update")}
    phases = {p["phase"]: p for p in d["by_phase"]}
    assert phases["forward_plus"]["macs"] > 0 and phases["forward_plus"]["latency_s"] > 0
    assert d["latency_s"] > 0 and d["energy_j"] > 0
    assert set(d["metrics"]["variants"]) >= {"zoqo@b8", "sign/fp", "sign/q-post@b8"}
