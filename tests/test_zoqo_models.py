"""Float models + cached trainer, and ZOQO on the small CNN (conv path of the integer forward)."""
from __future__ import annotations

import torch

from hwsim.algorithms.zoqo import ZOQOConfig, ZOQOTrainer
from hwsim.algorithms.zoqo_forward import quantize_input
from hwsim.models.cnn import build_cnn
from hwsim.models.float_train import train_float
from hwsim.models.mlp import build_mlp
from hwsim.trace import Trace


def test_train_float_seeded_and_cached(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 8, 8, generator=g), torch.randint(0, 3, (40,), generator=g)
    a = train_float(build_mlp(num_classes=3, hidden=(8,)), (x, y), epochs=2, seed=1, cache_dir=tmp_path)
    files = list(tmp_path.glob("float_*.pt"))
    assert len(files) == 1
    b = train_float(build_mlp(num_classes=3, hidden=(8,)), (x, y), epochs=2, seed=1, cache_dir=tmp_path, use_cache=False)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n           # same seed → same weights, cache or not
    c = train_float(build_mlp(num_classes=3, hidden=(8,)), (x, y), epochs=2, seed=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("float_*.pt"))) == 2
    assert not torch.equal(a[1].weight, c[1].weight)


def test_builders_shapes():
    assert build_mlp((1, 8, 8), 10, hidden=(32,))(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    assert build_cnn((3, 32, 32), 10)(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert torch.equal(build_cnn(seed=4)[0].weight, build_cnn(seed=4)[0].weight)


def test_zoqo_on_cnn_conv_path():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 10, (16,))
    model = build_cnn((1, 8, 8), 10, channels=(4,), seed=0)
    tr = ZOQOTrainer(model, ZOQOConfig(bits=8, lr=0.01, mu=0.02), x)
    xq = quantize_input(x)
    # integer logits ≈ float forward of the dequantized grid weights
    deq = tr.dequantized()
    ref = torch.func.functional_call(model, deq, (xq.float() / 255,))
    got = tr.net.forward(tr.codes, xq).double() * tr.net.logit_scale
    assert float((got - ref.double()).abs().max()) < 0.1 * float(ref.abs().max()) + 0.05
    trace = Trace()
    tr.step(xq, y, trace)
    fl = trace.float_ops_by_phase()
    assert fl["perturb"] == 0 and fl["update"] == 0 and fl["forward_plus"] == 0 and fl["forward_minus"] == 0
    assert any(e.op == "conv2d" for e in trace.filter(phase="forward_minus").ops())
