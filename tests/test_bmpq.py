"""BMPQ primitives: quantizers, bit gradients (vs explicit two's complement), exact layers, events."""
from __future__ import annotations

import itertools

import pytest
import torch

from hwsim.algorithms.bmpq import (QLayer, inference_trace, loss_and_trace, nbg, pact_quantize,
                                   quantize_weight, train_step_trace)
from hwsim.algorithms.bmpq_train import BmpqConfig
from hwsim.models.layer_specs import LayerSpec, digits_cnn, resnet18_cifar, vgg16_cifar
from hwsim.models.resnet import ResNetQNet
from hwsim.models.vgg import bmpq_sequential
from hwsim.trace import Trace


def _twos_complement_bits(code: int, q: int) -> list[int]:
    """b_0..b_{q-1} with code = −2^{q−1} b_{q−1} + Σ_{i<q−1} 2^i b_i (pure Python)."""
    u = code & ((1 << q) - 1)
    return [(u >> i) & 1 for i in range(q)]


@pytest.mark.parametrize("q", [2, 3, 4, 8])
def test_nbg_closed_form_matches_explicit_bit_decomposition(q):
    torch.manual_seed(q)
    w = torch.randn(7, 5, dtype=torch.float64)
    codes, s = quantize_weight(w, q, ternary_at_2=False)
    # explicit: rebuild w^q from bit tensors that require grad, differentiate a loss through them
    bits = torch.tensor([[_twos_complement_bits(int(c), q) for c in row] for row in codes.tolist()],
                        dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([2.0 ** i for i in range(q - 1)] + [-(2.0 ** (q - 1))], dtype=torch.float64)
    wq = (bits * weights).sum(-1) * s
    assert torch.equal(wq.detach(), codes * s)                 # the decomposition is exact
    x = torch.randn(5, 3, dtype=torch.float64)
    loss = torch.tanh(wq @ x).pow(2).sum()
    loss.backward()
    explicit = bits.grad.abs().sum(-1).mean().item()            # row sums of |∂L/∂b|, mean over weights
    # closed form from the gradient wrt w^q
    wq2 = (codes * s).clone().requires_grad_(True)
    torch.tanh(wq2 @ x).pow(2).sum().backward()
    closed = nbg(w, wq2.grad, q)
    assert closed == pytest.approx(explicit, rel=1e-12)


def test_symmetric_quantizer_range_and_scale():
    w = torch.tensor([0.7, -0.35, 0.1, -0.7, 0.0])
    codes, s = quantize_weight(w, 4)
    assert float(s) == pytest.approx(0.1)                      # 0.7 / 7
    assert codes.tolist() == [7, -4, 1, -7, 0]                 # round(-3.5) = -4 (half to even)
    c8, _ = quantize_weight(torch.randn(1000), 8)
    assert c8.abs().max() <= 127


def test_ternary_weights_at_two_bits_hand_example():
    w = torch.tensor([0.1, -0.5, 0.9, -0.05])
    codes, alpha = quantize_weight(w, 2)
    # Δ = 0.7·mean|W| = 0.7·0.3875 = 0.27125 → |W| > Δ at -0.5 and 0.9 → α = 0.7
    assert codes.tolist() == [0, -1, 1, 0]
    assert float(alpha) == pytest.approx(0.7)


def test_pact_forward_and_ste_gradients():
    a = torch.tensor([-1.0, 0.0, 0.4, 1.2, 2.0, 3.5], requires_grad=True)
    alpha = torch.tensor(2.0, requires_grad=True)
    fq, codes, scale = pact_quantize(a, alpha, 2)
    assert codes.tolist() == [0, 0, 1, 2, 3, 3]                # round(clip·3/2)
    assert float(scale) == pytest.approx(2 / 3)
    fq.sum().backward()
    assert a.grad.tolist() == [0, 1, 1, 1, 0, 0]               # 1[0 ≤ a < α]
    assert float(alpha.grad) == 2.0                            # Σ 1[a ≥ α]


def _ref_conv(x, w, stride, pad):
    """Pure-Python integer conv2d (NCHW/OIHW), the oracle for the layer's accumulator."""
    n, c, h, wd = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    o, _, kh, kw = len(w), len(w[0]), len(w[0][0]), len(w[0][0][0])
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = [[[[0] * ow for _ in range(oh)] for _ in range(o)] for _ in range(n)]
    for b, oc, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        acc = 0
        for ic, u, v in itertools.product(range(c), range(kh), range(kw)):
            y, xx = i * stride + u - pad, j * stride + v - pad
            if 0 <= y < h and 0 <= xx < wd:
                acc += x[b][ic][y][xx] * w[oc][ic][u][v]
        out[b][oc][i][j] = acc
    return out


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_layer_accumulator_is_exact_integer_conv(bits):
    torch.manual_seed(bits)
    spec = LayerSpec("c", "conv", 3, 4, (3, 3), (2, 2), (1, 1), (7, 7))
    layer = QLayer(spec, alpha_init=1.5)
    layer.bits = bits
    x = torch.rand(2, 3, 7, 7) * 2
    trace = Trace()
    y, _ = layer(x, trace, [], src=None)
    _, a_codes, a_scale, _ = layer._quantized
    w_codes, w_scale = quantize_weight(layer.weight, bits)
    ref = _ref_conv([[[[int(v) for v in r] for r in ch] for ch in img] for img in a_codes.tolist()],
                    [[[[int(v) for v in r] for r in ch] for ch in oc] for oc in w_codes.tolist()], 2, 1)
    assert layer.last_acc.dtype == torch.int64
    assert layer.last_acc.tolist() == ref
    assert a_codes.max() <= 2 ** bits - 1
    macs = [e for e in trace.ops() if e.op == "conv2d"][0]
    assert macs.work == {("mac", f"int{bits}"): spec.macs * 2}


def test_training_step_events_forward_integer_backward_float():
    spec = digits_cnn()
    net = bmpq_sequential(spec)
    net.set_bits({"conv2": 4, "conv3": 2, "fc1": 2})
    x, y = torch.rand(5, 1, 8, 8), torch.randint(0, 10, (5,))
    trace = train_step_trace(net, x, y)
    fwd = [e for e in trace.filter(phase="forward").ops() if e.op in ("conv2d", "fully_connected")]
    assert {e.layer: next(iter(e.work))[1] for e in fwd} == {
        "conv1": "int16", "conv2": "int4", "conv3": "int2", "fc1": "int2", "fc2": "int16"}
    fwd_macs = sum(e.macs for e in fwd)
    assert fwd_macs == 5 * sum(s.macs for s in spec.layers)
    bwd = trace.filter(phase="backward")
    bwd_macs = bwd.work_totals()[("mac", "fp32")]
    assert bwd_macs == 2 * fwd_macs - 5 * spec.layers[0].macs      # no input gradient for conv1
    assert all(fmt == "fp32" for (_, fmt) in trace.filter(phase="update").work_totals())
    # liveness: every allocated non-state tensor of the step is freed again (except the logits path)
    live = {}
    for e in trace:
        t = getattr(e, "tensor", None)
        if t is None:
            continue
        live[t.name] = live.get(t.name, 0) + (1 if type(e).__name__ == "AllocEvent" else -1)
    leaked = [n for n, c in live.items() if c > 0 and not n.endswith((".fp32", ".momentum", ".bias.q"))]
    assert leaked == []


def test_shapes_only_resnet18_and_vgg16_traces():
    for spec, net_cls in ((resnet18_cifar(10), ResNetQNet), (vgg16_cifar(10), None)):
        with torch.device("meta"):
            net = net_cls(spec, device="meta") if net_cls else bmpq_sequential(spec, device="meta")
        x = torch.empty(2, 3, 32, 32, device="meta")
        trace = train_step_trace(net, x, None, shapes_only=True)
        fwd_macs = sum(e.macs for e in trace.filter(phase="forward").ops())
        assert fwd_macs == 2 * sum(s.macs for s in spec.layers)
        inf = inference_trace(net, torch.empty(1, 3, 32, 32, device="meta"))
        assert sum(e.macs for e in inf.ops()) == sum(s.macs for s in spec.layers)
        assert not any(e.op == "quantize_weight" for e in inf.ops())


def test_interval_boundaries():
    assert BmpqConfig(epochs=20, warmup_epochs=4, interval_epochs=4).boundaries() == [4, 8, 12, 16]
    assert BmpqConfig(epochs=200, warmup_epochs=20, interval_epochs=20).boundaries()[:3] == [20, 40, 60]
    assert BmpqConfig(epochs=10, warmup_epochs=2, interval_epochs=[3, 1]).boundaries() == [2, 5, 6, 7, 8, 9]


@pytest.mark.parametrize("policy", ["wrap", "saturate"])
def test_accumulator_policy_matches_python_reference(policy):
    torch.manual_seed(3)
    spec = LayerSpec("c", "conv", 2, 3, (3, 3), (1, 1), (1, 1), (5, 5))
    layer = QLayer(spec, input_range=1.0)       # raw-input quantizer: codes up to 65535
    layer.bits = 16
    x = torch.rand(2, 2, 5, 5)
    layer(x, Trace(enabled=False), [], src=None)
    exact = [int(v) for v in layer.last_acc.flatten().tolist()]
    layer.accumulator = (24, policy, True)
    trace = Trace()
    layer(x, trace, [], src=None)
    lo, hi = -(2 ** 23), 2 ** 23 - 1
    over = sum(1 for v in exact if v < lo or v > hi)
    assert over > 0
    if policy == "wrap":
        ref = [((v - lo) % 2 ** 24) + lo for v in exact]
    else:
        ref = [min(max(v, lo), hi) for v in exact]
    assert [int(v) for v in layer.last_acc.flatten().tolist()] == ref
    assert [e.saturations for e in trace.ops() if e.op == "conv2d"] == [over]


def test_small_resnet_numeric_step_shortcut_shares_block_input_codes():
    from hwsim.models.layer_specs import ModelSpec
    conv = lambda n, ci, co, hw, k=3, s=1, tie=None, fixed=None: LayerSpec(  # noqa: E731
        n, "conv", ci, co, (k, k), (s, s), (k // 2, k // 2), (hw, hw), tie=tie, fixed_bits=fixed)
    spec = ModelSpec("resnet-mini", (
        conv("conv1", 3, 4, 8, fixed=16),
        conv("layer1.0.conv1", 4, 8, 8, s=2),
        conv("layer1.0.conv2", 8, 8, 4),
        conv("layer1.0.shortcut", 4, 8, 8, k=1, s=2, tie="layer1.0.conv1"),
        LayerSpec("fc", "linear", 8, 10, bias=True, fixed_bits=16)), (3, 8, 8), 10)
    torch.manual_seed(0)
    net = ResNetQNet(spec)
    net.set_bits({"layer1.0.conv1": 4, "layer1.0.conv2": 2, "layer1.0.shortcut": 4})
    x, y = torch.rand(3, 3, 8, 8), torch.randint(0, 10, (3,))
    trace = train_step_trace(net, x, y)
    c1, sc = net.layer("layer1.0.conv1"), net.layer("layer1.0.shortcut")
    assert torch.equal(c1._quantized[1], sc._quantized[1])          # same block-input codes
    w_codes, _ = quantize_weight(sc.weight, 4)
    ref = _ref_conv([[[[int(v) for v in r] for r in ch] for ch in img] for img in c1._quantized[1].tolist()],
                    [[[[int(v) for v in r] for r in ch] for ch in oc] for oc in w_codes.tolist()], 2, 0)
    assert sc.last_acc.tolist() == ref
    loss, _, _ = loss_and_trace(net, x, y, Trace(enabled=False))
    loss.backward()                                                  # float backward (STE)
    assert all(q.weight.grad is not None and q.weight.grad.abs().sum() > 0 for q in net.layers())
    assert all(q._w_fq.grad is not None for q in net.layers())      # ∂L/∂w^q for the NBG
    adds = [e for e in trace.ops() if e.op == "add"]
    assert len(adds) == 1 and adds[0].layer == "layer1.0"
