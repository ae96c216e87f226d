"""Integer transformer kernels (hwsim.fixedpoint.transformer_ops, hwsim.algorithms.lora_forward)
against independent references: pure-Python integer code written here (Python ints, math.isqrt)
and TFLite-Micro / LiteRT-reference for the int8 softmax. Integer equality throughout."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from hwsim.fixedpoint.transformer_ops import (INT8, INT16, LayerNormParams, SoftmaxParams, bit_length,
                                              fixed_point_terms, fused_requant, isqrt_newton, layernorm_int,
                                              softmax_int8)


# ---- pure-Python references ---------------------------------------------------------------------
def ref_requant(terms: list[tuple[int, int]], const: int, shift: int, lo: int, hi: int) -> int:
    """floor((Σ m·t + const + 2^(S−1)) / 2^S), clamped — Python ints (unbounded, floor division)."""
    v = sum(m * t for t, m in terms) + const + (1 << (shift - 1))
    return min(max(v // (1 << shift), lo), hi)


def ref_layernorm_row(h: list[int], g: list[int], b: list[int], r: int, f: int, lo: int, hi: int) -> list[int]:
    d = len(h)
    mean = (sum(h) + d // 2) // d
    c = [v - mean for v in h]
    var = sum(v * v for v in c) // d
    std = max(math.isqrt(var), 1)
    inv = (1 << r) // std
    s = r + f
    return [min(max((ci * inv * gi + (bi << r) + (1 << (s - 1))) >> s, lo), hi) for ci, gi, bi in zip(c, g, b)]


# ---- fused requantization ------------------------------------------------------------------------
def test_fused_requant_matches_python_ints():
    rnd = random.Random(0)
    for case in range(300):
        k = rnd.randint(1, 3)
        shift = rnd.randint(1, 40)
        shape = (rnd.randint(1, 5), 4)
        ts = [torch.randint(-(1 << 31), 1 << 31, shape, dtype=torch.int64) for _ in range(k)]
        ms = [torch.randint(-(1 << 20), 1 << 20, (4,), dtype=torch.int64) for _ in range(k)]   # per channel
        const = rnd.randint(-(1 << 40), 1 << 40)
        lo, hi = (INT8, INT16, (0, 255))[case % 3]
        if case % 7 == 0:            # force exact ties: make the sum ≡ 2^(S−1) − half mod 2^S
            ts = [torch.full(shape, 1, dtype=torch.int64)]
            ms = [torch.full((4,), 1, dtype=torch.int64)]
            const = rnd.choice([-1, 1]) * (rnd.randint(0, 50) << shift) + (1 << (shift - 1)) - 1
        got, sat = fused_requant(list(zip(ts, ms)), const, shift, lo, hi)
        want = [[ref_requant([(int(t[i, j]), int(m[j])) for t, m in zip(ts, ms)], const, shift, lo, hi)
                 for j in range(4)] for i in range(shape[0])]
        assert got.tolist() == want
        raw = [[ref_requant([(int(t[i, j]), int(m[j])) for t, m in zip(ts, ms)], const, shift, -(1 << 80), 1 << 80)
                for j in range(4)] for i in range(shape[0])]
        assert sat == sum(1 for row in raw for v in row if v < lo or v > hi)


def test_fixed_point_terms_fit_and_round():
    rnd = random.Random(1)
    for _ in range(200):
        reals = [rnd.choice([-1, 1]) * 10 ** rnd.uniform(-8, 1) for _ in range(rnd.randint(1, 4))]
        bounds = [rnd.randint(1, 1 << 34) for _ in reals]
        ms, c, s = fixed_point_terms(reals, bounds)
        assert all(abs(m) <= (1 << 31) - 1 for m in ms)
        assert sum(abs(m) * b for m, b in zip(ms, bounds)) + abs(c) + (1 << s) < (1 << 62)
        for m, r in zip(ms, reals):      # m = round_half_away(real·2^S), exactly
            x = abs(r) * 2.0 ** s
            assert abs(m) == math.floor(x + 0.5) or (x % 1 == 0.5 and abs(m) == math.ceil(x))
            assert m == 0 or (m > 0) == (r > 0)


# ---- integer square root, bit length ------------------------------------------------------------
def test_isqrt_and_bit_length_match_python():
    rnd = random.Random(2)
    vals = [0, 1, 2, 3, 4, 5, 8, 9, 15, 16, 17, 24, 25, 26, (1 << 31) - 1, 1 << 31, (1 << 40) - 1, 1 << 40,
            (1 << 62) - 1]
    vals += [k * k + e for k in (7, 255, 46340, 46341, 3037000499) for e in (-1, 0, 1)]
    vals += [rnd.randint(0, 1 << rnd.randint(1, 62)) for _ in range(2000)]
    v = torch.tensor(vals, dtype=torch.int64)
    root, iters = isqrt_newton(v)
    assert root.tolist() == [math.isqrt(x) for x in vals]
    assert bit_length(v).tolist() == [x.bit_length() for x in vals]
    assert int(iters.max()) <= 8                       # quadratic convergence from 2^⌈bits/2⌉


# ---- LayerNorm -----------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [32, 7, 1])
def test_layernorm_matches_python_reference(d):
    gen = torch.Generator().manual_seed(d)
    gamma = torch.rand(d, generator=gen) * 2 - 0.5
    beta = torch.randn(d, generator=gen) * 0.3
    p = LayerNormParams.build(gamma, beta, s_out=0.03)
    h = torch.randint(-(1 << 15), 1 << 15, (60, d), generator=gen)
    h = torch.cat([h, torch.full((1, d), 123), torch.full((1, d), -(1 << 15)),        # constant rows: var 0
                   torch.tensor([[(1 << 15) - 1 if i % 2 else -(1 << 15) for i in range(d)]]),
                   torch.randint(-3, 4, (5, d), generator=gen)])                       # tiny variance
    y, sat, iters = layernorm_int(h, p)
    g, b = p.gamma_q.tolist(), p.beta_q.tolist()
    want = [ref_layernorm_row(row, g, b, p.recip_bits, p.frac_bits, *INT8) for row in h.tolist()]
    assert y.tolist() == want


def test_layernorm_close_to_float_layernorm():
    """Measured property: the integer LayerNorm is within 1 LSB of the float one (ε = 0) on
    residual-like int16 rows (std ≥ 64 LSB), for ≥ 99 % of the outputs."""
    gen = torch.Generator().manual_seed(5)
    d, s_out = 32, 4.0 / 127
    gamma, beta = torch.rand(d, generator=gen) + 0.5, torch.randn(d, generator=gen) * 0.2
    p = LayerNormParams.build(gamma, beta, s_out)
    h = (torch.randn(400, d, generator=gen) * torch.exp(torch.rand(400, 1, generator=gen) * 5) * 200).round()
    h = h.clamp(-(1 << 15), (1 << 15) - 1).to(torch.int64)
    h = h[h.double().std(1, unbiased=False) >= 64]
    y, _, _ = layernorm_int(h, p)
    ref = torch.nn.functional.layer_norm(h.double(), (d,), gamma.double(), beta.double(), eps=0.0) / s_out
    ref = ref.round().clamp(-128, 127)
    diff = (y.double() - ref).abs()
    assert float(diff.max()) <= 2
    assert float((diff <= 1).double().mean()) >= 0.99


# ---- softmax: TFLite-Micro and LiteRT-reference as oracles ---------------------------------------
def _softmax_oracle(tmp_path, s_in: float, rows: np.ndarray) -> dict[str, np.ndarray]:
    from test_tflite_ops import _act, _build, _m, _oracles

    def opts(b):
        S = _m("SoftmaxOptions")
        S.Start(b)
        S.AddBeta(b, 1.0)
        return S.End(b)

    depth = rows.shape[-1]
    tensors = [_act("x", [1, depth], s_in, 0), _act("y", [1, depth], 1 / 256, -128)]
    ops = [{"code": 25, "inputs": [0], "outputs": [1], "options_type": 9, "options": opts}]
    path = tmp_path / f"softmax_{s_in}.tflite"
    path.write_bytes(_build(tensors, ops, [0], [1]))
    return _oracles(path, rows.reshape(-1, 1, depth).astype(np.int8))


@pytest.mark.parametrize("s_in", [0.0905, 0.02, 0.4])
def test_softmax_int8_matches_tflm(tmp_path, s_in):
    rng = np.random.default_rng(int(s_in * 1000))
    rows = rng.integers(-128, 128, (40, 8))
    rows[0] = 5                                   # all equal
    rows[1] = -128
    rows[1, 3] = 127                              # one dominant entry
    rows[2] = 127
    got = softmax_int8(torch.from_numpy(rows), SoftmaxParams.build(s_in)).numpy()
    for runtime, want in _softmax_oracle(tmp_path, s_in, rows).items():
        assert np.array_equal(got, want.reshape(rows.shape).astype(np.int64)), runtime


# ---- attention and the LoRA projection of the integer RowTransformer -----------------------------
@pytest.fixture(scope="module")
def tiny_net():
    from hwsim.algorithms.lora import lora_groups
    from hwsim.algorithms.lora_forward import IntRowTransformer
    from hwsim.models.transformer import RowTransformer

    m = RowTransformer(rows=3, width=4, d=8, heads=2, ffn=8, classes=3, seed=3)
    names = m.add_lora(2, 4.0, seed=3)
    params = dict(m.named_parameters())
    groups = lora_groups({n: params[n].detach() for n in names}, 4)
    codes = {n: groups[n].quantize(params[n].detach()) for n in names}
    net = IntRowTransformer(m, groups, codes, torch.rand(40, 1, 3, 4))
    gen = torch.Generator().manual_seed(9)
    rand_codes = {n: torch.randint(0, 16, c.shape, generator=gen).to(torch.uint8) for n, c in codes.items()}
    return net, rand_codes


def test_attention_matches_reference(tiny_net, tmp_path):
    net, _ = tiny_net
    gen = torch.Generator().manual_seed(4)
    n, T, d, H, dh = 5, net.tokens, net.d, net.heads, net.dh
    q, k, v = (torch.randint(-128, 128, (n, T, d), generator=gen).to(torch.int8) for _ in range(3))
    lg, pr, ctx, _ = net.attention(q, k, v)
    (m_s,), s_s = net.rq_lg.mults, net.rq_lg.shift
    (m_c,), s_c = net.rq_ctx.mults, net.rq_ctx.shift
    Q, K, V = q.tolist(), k.tolist(), v.tolist()
    want_lg = [[[[ref_requant([(sum(Q[b][i][h * dh + e] * K[b][j][h * dh + e] for e in range(dh)), int(m_s))],
                              0, s_s, *INT8) for j in range(T)] for i in range(T)] for h in range(H)] for b in range(n)]
    assert lg.tolist() == want_lg
    want_pr = _softmax_oracle(tmp_path, net.sc.lg, np.array(want_lg).reshape(-1, T))["tflm"].reshape(n, H, T, T)
    assert np.array_equal(pr.numpy(), want_pr.astype(np.int64))
    P = want_pr.astype(int).tolist()
    want_ctx = [[[ref_requant([(sum((P[b][c // dh][i][j] + 128) * V[b][j][c] for j in range(T)), int(m_c))],
                              0, s_c, *INT8) for c in range(d)] for i in range(T)] for b in range(n)]
    assert ctx.tolist() == want_ctx


def test_lora_projection_matches_reference(tiny_net):
    """y = R(M[o]·(a·Wᵀ + b) + m₃·(t·c_Bᵀ) + m₄·Σt), t = R(m₁·(a·c_Aᵀ) + m₂·Σa): Python ints."""
    net, codes = tiny_net
    gen = torch.Generator().manual_seed(6)
    a = torch.randint(-128, 128, (4, net.tokens, net.d), generator=gen).to(torch.int8)
    for p in ("q_proj", "v_proj", "k_proj"):
        y, t, _, _ = net.project(p, a, codes)
        lin = net.proj[p]
        W, bias = lin.w.tolist(), lin.b.tolist()
        rq = net.rq_proj[p]
        M = rq.mults[0].tolist()
        for row_a, row_y, row_t in zip(a.reshape(-1, net.d).tolist(), y.reshape(-1, y.shape[-1]).tolist(),
                                       (t.reshape(-1, t.shape[-1]).tolist() if t is not None else [None] * 12)):
            accs = [sum(x * w for x, w in zip(row_a, W[o])) + bias[o] for o in range(len(W))]
            if p not in net.lora:
                assert row_y == [ref_requant([(acc, M[o])], 0, rq.shift, *INT8) for o, acc in enumerate(accs)]
                continue
            an, bn, _ = net.lora[p]
            CA, CB = codes[an].tolist(), codes[bn].tolist()
            m1, m2 = (int(v) for v in net.rq_t[p].mults)
            t_ref = [ref_requant([(sum(x * c for x, c in zip(row_a, CA[r])), m1), (sum(row_a), m2)], 0,
                                 net.rq_t[p].shift, *INT8) for r in range(len(CA))]
            assert row_t == t_ref
            m3, m4 = int(rq.mults[1]), int(rq.mults[2])
            want = [ref_requant([(accs[o], M[o]), (sum(x * c for x, c in zip(t_ref, CB[o])), m3), (sum(t_ref), m4)],
                                0, rq.shift, *INT8) for o in range(len(W))]
            assert row_y == want
