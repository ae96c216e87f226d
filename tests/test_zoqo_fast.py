"""The untraced fast ZOQO step (hwsim/algorithms/zoqo_fast.py) gives the general path's integers."""
from __future__ import annotations

import copy

import pytest
import torch

from hwsim.algorithms.zoqo import ZOQOConfig, ZOQOTrainer, batches
from hwsim.algorithms.zoqo_fast import bucket_tables
from hwsim.algorithms.zoqo_forward import quantize_input
from hwsim.algorithms.zoqo_loss import float_ce, pair_ce
from hwsim.algorithms.zoqo_noise import cdf_table
from hwsim.data import load_dataset
from hwsim.models.mlp import build_mlp
from hwsim.trace import Trace
from zoqo_refs import ref_h, ref_inverse_cdf, ref_keys

@pytest.fixture(scope="module")
def digits():
    x, y = load_dataset("digits")
    return x, y, quantize_input(x)


CASES = [((32,), dict(bits=8)), ((32,), dict(bits=4, loss="lut")), ((16, 16), dict(bits=4, tie="zero")),
         ((32,), dict(bits=6, range_mode="2x_minmax", noise="uniform", regenerate_noise=True))]


@pytest.mark.parametrize("hidden,kw", CASES)
def test_fast_step_equals_general_step(digits, hidden, kw):
    x, y, xq = digits
    cfg = ZOQOConfig(**{"lr": 0.003, "mu": 0.015, **kw})
    model = build_mlp(hidden=hidden)
    ref = ZOQOTrainer(copy.deepcopy(model), cfg, x[:128])
    ref._fast = None                                  # the general (traceable) path
    fast = ZOQOTrainer(copy.deepcopy(model), cfg, x[:128])
    assert fast._fast is not None
    for idx in batches(len(y), 64, 0, 60):
        assert ref.step(xq[idx], y[idx]) == fast.step(xq[idx], y[idx])
        assert torch.equal(ref.flat, fast.flat) and ref.flat.dtype == fast.flat.dtype
    assert all(torch.equal(ref.codes[n], fast.codes[n]) for n in ref.codes)


def test_fast_noise_matches_pure_python(digits):
    x, _, _ = digits
    tr = ZOQOTrainer(build_mlp(hidden=(8,)), ZOQOConfig(bits=8, lr=0.003, mu=0.015, seed=3), x[:64])
    step = 7
    k1 = ref_keys(3, step, 0)
    j = tr._fast.noise(step).tolist()
    off = 0
    for name, st in tr.state.items():
        table = st.table.tolist()
        n = tr.codes[name].numel()
        want = [ref_inverse_cdf(table, ref_h(ref_h(i) ^ k1), st.k) for i in range(off, off + n)]
        assert j[off:off + n] == want, name
        off += n


def test_bucket_tables_refuse_two_thresholds_in_a_bucket(digits):
    # thresholds 5 and 10 both lie inside the first 2^20-wide bucket
    assert bucket_tables(torch.tensor([5, 10, 1 << 32]), 1) is None
    # σ = 0.6 steps, k = 4: T = [1, 10626, ...] — two thresholds inside the first bucket
    assert cdf_table(4, 0.6).tolist()[:2] == [1, 10626] and bucket_tables(cdf_table(4, 0.6), 4) is None
    x, y, xq = digits
    tr = ZOQOTrainer(build_mlp(hidden=(8,)), ZOQOConfig(bits=8, lr=0.003, mu=0.015, sigma_steps=0.6), x[:64])
    assert tr._fast is None                           # falls back to the general path
    tr.step(xq[:64], y[:64])


def test_traced_and_untraced_steps_agree(digits):
    x, y, xq = digits
    cfg = ZOQOConfig(bits=8, lr=0.003, mu=0.015)
    model = build_mlp(hidden=(16,))
    a, b = ZOQOTrainer(copy.deepcopy(model), cfg, x[:64]), ZOQOTrainer(copy.deepcopy(model), cfg, x[:64])
    for idx in batches(len(y), 64, 1, 5):
        ra, rb = a.step(xq[idx], y[idx], Trace()), b.step(xq[idx], y[idx])
        assert ra == rb and torch.equal(a.flat, b.flat)


def test_pair_ce_equals_float_ce_per_query():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        logits = torch.randint(-32768, 32767, (2, 32, 10), generator=g) // int(torch.randint(1, 300, (1,), generator=g))
        y = torch.randint(0, 10, (32,), generator=g)
        s = float(torch.rand(1, generator=g)) * 1e-3 + 1e-5
        assert pair_ce(logits, y, s) == [float_ce(logits[0], y, s), float_ce(logits[1], y, s)]


def test_lut_pair_equals_lut_per_query():
    from hwsim.algorithms.zoqo_loss import LutLoss
    g = torch.Generator().manual_seed(1)
    lut = LutLoss.build(0.002)
    for _ in range(50):
        logits = torch.randint(-32768, 32767, (2, 16, 10), generator=g) // int(torch.randint(1, 300, (1,), generator=g))
        y = torch.randint(0, 10, (16,), generator=g)
        assert lut.pair(logits, y) == [lut(logits[0], y), lut(logits[1], y)]
