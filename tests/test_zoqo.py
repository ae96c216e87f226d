"""ZOQO: integer noise sampler, update rule, integer forward, zero-float phases, LUT loss, runner."""
from __future__ import annotations

import math
from decimal import Decimal, getcontext

import pytest
import torch
import torch.nn as nn

from hwsim.algorithms.zoqo import ZOQOConfig, ZOQOTrainer
from hwsim.algorithms.zoqo_forward import quantize_input
from hwsim.algorithms.zoqo_loss import LutLoss, float_ce
from hwsim.algorithms.zoqo_noise import cdf_table, sample_steps, uniform32
from hwsim.trace import Trace
from zoqo_refs import M32, ref_h, ref_inverse_cdf, ref_keys


# ---- pure-Python references (written from the spec, independent of the code under test) --------
def ref_table(k: int, sigma: float) -> list[int]:
    getcontext().prec = 60
    w = [(-(Decimal(j) ** 2) / (2 * Decimal(sigma) ** 2)).exp() for j in range(-k, k + 1)]
    tot = sum(w)
    out, acc = [], Decimal(0)
    for v in w:
        acc += v / tot
        out.append(int((acc * (1 << 32) + Decimal("0.5")).to_integral_value(rounding="ROUND_FLOOR")))
    out[-1] = 1 << 32
    return out


def ref_uniform(seed: int, step: int, n: int) -> list[int]:
    k1 = ref_keys(seed, step, 0)
    return [ref_h(ref_h(i) ^ k1) for i in range(n)]


# ---- noise sampler ---------------------------------------------------------------------------
@pytest.mark.parametrize("k,sigma", [(1, 1.0), (2, 1.3), (3, 0.7), (5, 4.0), (1, 0.38)])
def test_cdf_table_matches_reference(k, sigma):
    assert cdf_table(k, sigma).tolist() == ref_table(k, sigma)


def test_cdf_table_uniform_and_doc_example():
    t = cdf_table(1, 1.0).tolist()
    # §1.4: k = 1, σ = s → p ≈ (0.27, 0.45, 0.27)
    assert abs(t[0] / 2 ** 32 - 0.274) < 1e-3 and abs((t[1] - t[0]) / 2 ** 32 - 0.452) < 1e-3
    u = cdf_table(2, 1.0, "uniform").tolist()
    assert u == [int(math.floor(i * 2 ** 32 / 5 + 0.5)) for i in range(1, 5)] + [2 ** 32]


def test_inverse_cdf_exact_on_fixed_draws():
    k, table = 2, cdf_table(2, 1.3)
    tl = table.tolist()
    rs = [0, 1, tl[0] - 1, tl[0], tl[0] + 1, tl[1] - 1, tl[1], tl[2] - 1, tl[2], tl[3] - 1, tl[3], M32]
    got = sample_steps(table, torch.tensor(rs, dtype=torch.int64), k).tolist()
    assert got == [ref_inverse_cdf(tl, r, k) for r in rs]
    assert got[0] == -2 and got[-1] == 2 and got[3] == -1


def test_prng_matches_pure_python():
    r = uniform32(7, 123, 0, 50).tolist()
    assert r == ref_uniform(7, 123, 50)
    assert all(0 <= v <= M32 for v in r) and len(set(r)) == 50
    assert uniform32(7, 124, 0, 50).tolist() != r


# ---- update rule on hand-made codes ----------------------------------------------------------
def tiny_trainer(cfg: ZOQOConfig, codes_w: list[list[int]], codes_b: list[int]) -> ZOQOTrainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-1.0, 0.5, 1.0], [0.2, -0.4, 0.9]]))
        model[0].bias.copy_(torch.tensor([-0.5, 0.5]))
    tr = ZOQOTrainer(model, cfg, torch.rand(8, 3))
    flat = torch.tensor([v for row in codes_w for v in row] + codes_b, dtype=tr.flat.dtype)
    tr.flat = flat
    tr.codes = tr._views(flat)
    return tr


@pytest.mark.parametrize("lr_steps", [1, 3])
def test_update_rule_hand_made_codes(lr_steps):
    cfg0 = ZOQOConfig(bits=8, lr=1.0, mu=1.0, sigma_steps=1.0, seed=3)
    probe = tiny_trainer(cfg0, [[0, 0, 0], [0, 0, 0]], [0, 0])
    s_w, s_b = probe.groups["0.weight"].scale, probe.groups["0.bias"].scale
    # η chosen so m = lr_steps on both groups; μ so k = 2
    lr = lr_steps * max(s_w, s_b) + 1e-12
    cfg = ZOQOConfig(bits=8, lr=lr, mu=2.0 * max(s_w, s_b) + 1e-12, sigma_steps=1.0, seed=3)
    codes_w, codes_b = [[0, 255, 128], [1, 254, 7]], [2, 253]
    tr = tiny_trainer(cfg, codes_w, codes_b)
    m = {n: max(int(math.floor(lr / g.scale)), 1) for n, g in tr.groups.items()}
    assert m["0.weight"] == lr_steps or m["0.weight"] > lr_steps   # bias scale is the larger step
    ks = {n: st.k for n, st in tr.state.items()}
    tables = {n: ref_table(ks[n], 1.0) for n in tr.state}
    r = ref_uniform(3, 0, 8)
    order = ["0.weight"] * 6 + ["0.bias"] * 2
    j = [ref_inverse_cdf(tables[n], ri, ks[n]) for n, ri in zip(order, r)]
    before = [v for row in codes_w for v in row] + codes_b
    out = tr.step(quantize_input(torch.rand(4, 3)), torch.tensor([0, 1, 0, 1]))
    sigma = out["sigma"]
    assert sigma in (1, -1) and (sigma == 1) == (out["loss_plus"] > out["loss_minus"])
    sign = [(v > 0) - (v < 0) for v in j]
    expect = [min(255, max(0, c - m[n] * sigma * sg)) for c, n, sg in zip(before, order, sign)]
    assert tr.flat.tolist() == expect
    assert tr.flat.dtype == torch.uint8


def test_tie_rule_binary_vs_zero():
    for tie, want in (("binary", -1), ("zero", 0)):
        # σ_steps tiny → every j = 0 → θ+ = θ− → equal losses
        tr = tiny_trainer(ZOQOConfig(bits=4, lr=1e-6, mu=1e-6, sigma_steps=1e-3, tie=tie), [[1, 2, 3], [4, 5, 6]], [7, 8])
        before = tr.flat.clone()
        out = tr.step(quantize_input(torch.rand(4, 3)), torch.tensor([0, 1, 0, 1]))
        assert out["loss_plus"] == out["loss_minus"] and out["sigma"] == want
        assert torch.equal(tr.flat, before)


# ---- integer forward ---------------------------------------------------------------------------
def test_integer_forward_matches_python_reference():
    tr = tiny_trainer(ZOQOConfig(bits=8), [[10, 200, 37], [255, 0, 128]], [17, 240])
    lay = tr.net.layers[0]
    xq = torch.tensor([[0, 255, 17], [100, 3, 250]], dtype=torch.uint8)
    got = tr.net.forward(tr.codes, xq).tolist()
    m1, m2, m3, m0 = lay.mult
    w = [[10, 200, 37], [255, 0, 128]]
    b = [17, 240]
    want = []
    for row in xq.tolist():
        out = []
        for o in range(2):
            t = m1 * sum(a * c for a, c in zip(row, w[o])) + m2 * sum(row) + m3 * b[o] + m0
            v = (t + (1 << (lay.shift - 1))) >> lay.shift
            out.append(min(32767, max(-32768, v)))
        want.append(out)
    assert got == want
    # and the integer logits approximate the float layer on the dequantized grid values
    wf = tr.groups["0.weight"].dequantize(tr.codes["0.weight"])
    bf = tr.groups["0.bias"].dequantize(tr.codes["0.bias"])
    ref = (xq.double() / 255) @ wf.double().T + bf.double()
    assert torch.allclose(torch.tensor(got, dtype=torch.float64) * tr.net.logit_scale, ref, atol=4 * tr.net.logit_scale)


# ---- zero float ops, trace phases ------------------------------------------------------------
def _digits_trainer(loss: str, **kw) -> tuple[ZOQOTrainer, torch.Tensor, torch.Tensor]:
    from hwsim.data import load_dataset
    from hwsim.models.mlp import build_mlp
    x, y = load_dataset("digits")
    tr = ZOQOTrainer(build_mlp(hidden=(16,)), ZOQOConfig(bits=4, loss=loss, lr=0.01, mu=0.05, **kw), x[:64])
    return tr, quantize_input(x[:32]), y[:32]


@pytest.mark.parametrize("regen", [False, True])
def test_zero_float_ops_in_perturb_and_update(regen):
    tr, xq, y = _digits_trainer("float", regenerate_noise=regen)
    trace = Trace()
    tr.step(xq, y, trace)
    fl = trace.float_ops_by_phase()
    assert {"perturb", "forward_plus", "forward_minus", "compare", "update"} <= set(fl)
    assert fl["perturb"] == 0 and fl["update"] == 0
    assert fl["forward_plus"] == 0 and fl["forward_minus"] == 0
    assert fl["compare"] > 0                       # the loss is the only float work
    work = trace.filter(phase="perturb").work_totals()
    assert work[("rng", "int32")] == tr.num_params()
    assert trace.filter(phase="forward_plus").ops() and all(
        e.macs > 0 for e in trace.filter(phase="forward_plus").ops())


def test_lut_loss_zero_float_ops_everywhere():
    tr, xq, y = _digits_trainer("lut")
    trace = Trace()
    tr.step(xq, y, trace)
    fl = trace.float_ops_by_phase()
    assert set(fl) >= {"perturb", "forward_plus", "forward_minus", "compare", "update"}
    assert all(v == 0 for v in fl.values()), fl
    assert sum(e.float_ops for e in trace.ops()) == 0


def test_lut_loss_orders_like_cross_entropy():
    g = torch.Generator().manual_seed(0)
    scale = 0.01
    lut = LutLoss.build(scale)
    agree = n = 0
    for _ in range(200):
        y = torch.randint(0, 10, (16,), generator=g)
        a = torch.randint(-800, 800, (16, 10), generator=g)
        b = a + torch.randint(-60, 60, (16, 10), generator=g)
        fa, fb = float_ce(a, y, scale), float_ce(b, y, scale)
        if abs(fa - fb) < 1e-2:
            continue
        n += 1
        agree += (lut(a, y) > lut(b, y)) == (fa > fb)
    assert n > 100 and agree / n > 0.97
    # absolute value: Σ CE in 2^-16 nats within 1 % of the float CE
    y = torch.randint(0, 10, (16,), generator=g)
    a = torch.randint(-800, 800, (16, 10), generator=g)
    assert abs(lut(a, y) / 2 ** 16 / 16 - float_ce(a, y, scale)) < 0.01 * float_ce(a, y, scale) + 0.01


def test_trainer_learns_on_digits_quickly():
    from hwsim.data import load_dataset
    from hwsim.models.mlp import build_mlp
    x, y = load_dataset("digits")
    tr = ZOQOTrainer(build_mlp(hidden=(16,), seed=1), ZOQOConfig(bits=8, lr=0.004, mu=0.02), x[:128])
    xq = quantize_input(x)
    start = tr.accuracy(xq, y)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, x.shape[0], (64,), generator=g)
        tr.step(xq[idx], y[idx])
    assert tr.accuracy(xq, y) > start + 0.05    # from a random init, ZO moves the needle
