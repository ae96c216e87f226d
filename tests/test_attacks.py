"""Black-box attacks (docs/algorithms.md §1.11, §2): schedule, projection, grid, accounting, runner.

Oracles are written here independently: a literal transcription of the §2.2 SignHunter
pseudo-code on plain Python lists, hand-computed projections and grid codes, and hand-counted
successes/failures/queries on crafted linear models.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from hwsim.algorithms.attack_envs import EnvSettings, run_environment, zoqo_params
from hwsim.algorithms.attack_grid import (grid_step, quantize_codes, recode, snap_steps)
from hwsim.algorithms.attacks import AttackParams, Box, run_attack
from hwsim.errors import WorkloadError

# ---- SignHunter schedule vs the §2.2 pseudo-code -------------------------------------------------


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny matrices: one intra-op thread is ~40x faster than two on a busy 2-core box (measured)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)



def reference_signhunter(x0: list[float], eps: float, loss, steps: int, lb: float, ub: float):
    """§2.2 pseudo-code, literally, for one example. Returns (iterates, signs, charges)."""
    n = len(x0)
    xo = list(x0)
    xs = list(x0)
    h = i = 0
    s: list[int] = []
    best = base = 0.0
    iterates, signs, charges = [], [], []

    def point(anchor, sg):
        return [a + eps * g for a, g in zip(anchor, sg)]

    def proj(p):
        return [min(max(min(max(v, a - eps), a + eps), lb), ub) for v, a in zip(p, x0)]

    for _ in range(steps):
        add = 0
        if h == 0 and i == 0:
            s = [1] * n
            base = loss(xo)
            best = (loss(point(xo, s)) - base) / eps
            add = 3
        length = math.ceil(n / 2 ** h)
        start, end = i * length, min(n, (i + 1) * length)
        for j in range(start, end):
            s[j] = -s[j]
        d = (loss(point(xo, s)) - base) / eps
        if d < best:
            for j in range(start, end):
                s[j] = -s[j]
        else:
            best = d
        new = proj(point(xo, s))
        i += 1
        if i == 2 ** h or end == n:
            h += 1
            i = 0
            if h == math.ceil(math.log2(n)) + 1:
                xo = list(xs)
                h = 0
        xs = new
        iterates.append(new)
        signs.append(list(s))
        charges.append(1 + add)
    return iterates, signs, charges


def _separable_loss(w: list[float]):
    return lambda x: sum(wi * xi for wi, xi in zip(w, x))


@pytest.mark.parametrize("n", [5, 8])
def test_signhunter_schedule_matches_pseudocode(n):
    torch.manual_seed(0)
    weights = [[(-1) ** (j * (k + 1)) * (j + 1) * 0.1 for j in range(n)] for k in range(2)]
    x0 = [[0.5] * n, [0.2 + 0.05 * j for j in range(n)]]
    eps, steps = 0.1, 3 * (2 ** math.ceil(math.log2(n)))   # covers several restarts
    refs = [reference_signhunter(x0[k], eps, _separable_loss(weights[k]), steps, 0.0, 1.0) for k in range(2)]
    budget = sum(refs[0][2])            # restarts re-charge the 3 start-up queries
    seen: list[torch.Tensor] = []

    def loss(pts, rows):
        w = torch.tensor(weights, dtype=torch.float64)[rows]
        return (pts.reshape(pts.shape[0], -1).to(torch.float64) * w).sum(1)

    def crit(pts, rows):                      # never misclassified: run to the budget
        seen.append(pts.clone())
        return torch.zeros(len(rows), dtype=torch.bool)

    x = torch.tensor(x0, dtype=torch.float64)
    res = run_attack(x, loss, crit, AttackParams("signhunter", eps=eps, max_loss_queries=budget),
                     lb=0.0, ub=1.0)
    assert res.iterations == steps
    for k in range(2):
        it, sg, ch = refs[k]
        assert sum(ch) == int(res.queries[k]) == budget
        got = torch.stack([s[k] for s in seen[1:]])   # seen[0]: the start-of-attack check on x0
        assert torch.allclose(got, torch.tensor(it, dtype=torch.float64), atol=1e-12, rtol=0)
        # after the first full pass the signs of a separable (linear) loss are recovered exactly
        full_pass = sum(math.ceil(n / math.ceil(n / 2 ** h)) for h in range(math.ceil(math.log2(n)) + 1))
        expected = [1 if wi >= 0 else -1 for wi in weights[k]]
        assert sg[full_pass - 1] == expected


def test_signhunter_on_integer_codes_matches_pseudocode():
    """ZOQO: the same schedule on int64 codes with ε = 3 steps, all arithmetic integer."""
    n, eps, steps = 6, 3, 20
    w = [0.3, -0.2, 0.1, -0.5, 0.4, 0.05]
    x0 = [10, 0, 14, 2, 7, 15]
    seen = []

    def loss(pts, rows):
        assert pts.dtype == torch.int64
        return (pts.to(torch.float64) * torch.tensor(w, dtype=torch.float64)).sum(1)

    def crit(pts, rows):
        seen.append(pts.clone())
        return torch.zeros(len(rows), dtype=torch.bool)

    it, _, charges = reference_signhunter(x0, eps, _separable_loss(w), steps, 0, 15)
    res = run_attack(torch.tensor([x0]), loss, crit,
                     AttackParams("signhunter", eps=eps, max_loss_queries=sum(charges)), lb=0, ub=15)
    got = torch.cat(seen[1:])          # seen[0] is the start-of-attack check on x0
    assert got.dtype == torch.int64
    assert got.tolist() == [[int(v) for v in row] for row in it]


# ---- projection, clamp and grid snapping -----------------------------------------------------------


def test_projection_then_clamp_float_and_codes():
    box = Box(torch.tensor([0.1, 0.5, 0.95]), 0.3, 0.0, 1.0)
    assert torch.allclose(box.project(torch.tensor([-0.5, 0.9, 1.4])), torch.tensor([0.0, 0.8, 1.0]))
    assert torch.allclose(box.project(torch.tensor([0.3, 0.45, 0.7])), torch.tensor([0.3, 0.45, 0.7]))
    cbox = Box(torch.tensor([2, 8, 15, 0]), 4, 0, 15)
    out = cbox.project(torch.tensor([-5, 14, 20, 3]))
    assert out.dtype == torch.int64 and out.tolist() == [0, 12, 15, 3]


def test_grid_snapping_exact_codes():
    assert grid_step(0.0, 1.0, 8) == 1 / 255
    assert snap_steps(0.3, 1 / 255) == 76          # 0.3·255 = 76.5 → 76 steps
    assert snap_steps(0.3, 1 / 15) == 4            # 4.5 → 4
    assert snap_steps(0.2, 1 / 15) == 3            # exactly 3 steps despite float error
    assert snap_steps(12.0, 255 / 255) == 12       # CIFAR 0–255 at b = 8
    assert snap_steps(0.01, 1 / 15) == 1           # ε < s: one step (default)
    assert snap_steps(0.01, 1 / 15, "floor") == 0
    with pytest.raises(WorkloadError):
        snap_steps(0.1, 0.1, "nearest")
    # half away from zero (torch.round would give 0, 2, 2)
    assert quantize_codes(torch.tensor([0.5, 1.5, 2.5, 14.6, 99.0, -3.0]), 0.0, 15.0, 4).tolist() == \
        [1, 2, 3, 15, 15, 0]
    assert recode(torch.arange(16), 4, 8).tolist() == [17 * c for c in range(16)]
    assert recode(torch.tensor([0, 1, 2, 3]), 2, 3).tolist() == [0, 2, 5, 7]   # round(c·7/3), half up
    params, rec = zoqo_params(AttackParams("simple", eps=0.3, delta=0.1), EnvSettings(bits=4))
    assert (params.eps, params.delta, params.project_queries) == (4, 1, True)
    assert rec["eps_q"] == pytest.approx(4 / 15)


def test_zoqo_iterates_stay_on_grid_inside_ball():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    from hwsim.algorithms.attack_qmodel import IntegerClassifier
    x = torch.rand(12, 1, 4, 4)
    y = torch.randint(0, 3, (12,))
    q = IntegerClassifier(model, x, bits=4, lb=0.0, ub=1.0)
    for method in ("signhunter", "randsign", "simple"):
        res = run_environment("zoqo", AttackParams(method, eps=0.3, delta=0.1, max_loss_queries=60), model,
                              q, x, y, EnvSettings(bits=4))
        codes, c0 = res.extra["codes"], quantize_codes(x, 0.0, 1.0, 4)
        assert codes.dtype == torch.int64
        assert int((codes - c0).abs().max()) <= 4 and int(codes.min()) >= 0 and int(codes.max()) <= 15


# ---- failure-rate accounting on a crafted model ------------------------------------------------------


def _threshold_model(threshold: float) -> nn.Module:
    """Class 1 iff sum(x) > threshold (logit1 = sum(x) − T, logit0 = 0)."""
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([[0.0] * 4, [1.0] * 4]))
        m[1].bias.copy_(torch.tensor([0.0, -threshold]))
    return m


def test_failure_rate_accounting_signhunter():
    model = _threshold_model(2.0)
    # per-coordinate value v, sum 4v; ε = 0.1 moves the sum by at most 0.4
    v = torch.tensor([0.45, 0.30, 0.60, 0.48, 0.20])
    x = v.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    y = torch.zeros(5, dtype=torch.int64)
    res = run_environment("fp", AttackParams("signhunter", eps=0.1, max_loss_queries=20), model, None, x, y,
                          EnvSettings())
    # 0.60 is misclassified at the start (excluded); 0.45, 0.48 reach 2.2/2.32 > 2 → success at the
    # first step (all-+1 probe, 4 queries); 0.30, 0.20 can reach only 1.6/1.2 → failure
    assert res.correct0.tolist() == [True, True, False, True, True]
    assert (res.successes, res.failures) == (2, 2)
    assert res.failure_rate == 0.5
    assert res.avg_queries == 4.0
    assert res.queries[[1, 4]].tolist() == [20, 20]


def test_simple_query_counting_emulator_vs_repo():
    # a flat model: neither +δ nor −δ ever increases the loss, the example is never fooled
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        m[1].weight.zero_()
        m[1].bias.copy_(torch.tensor([1.0, 0.0]))
    x, y = torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, dtype=torch.int64)
    emu = run_environment("fp", AttackParams("simple", eps=0.3, delta=0.1, max_loss_queries=11), m, None, x, y,
                          EnvSettings())
    repo = run_environment("fp", AttackParams("simple", eps=0.3, delta=0.1, max_loss_queries=11,
                                              simple_query_count="repo"), m, None, x, y, EnvSettings())
    # emulator: 1 (initial loss) + 2, then 2 per step: 3, 5, 7, 9, 11 → 5 steps
    assert (emu.iterations, int(emu.queries[0]), emu.failures) == (5, 11, 1)
    # repo: 1 + 1 + [right accepted] = 2, then 1 per step → 10 steps for the same budget
    assert (repo.iterations, int(repo.queries[0]), repo.failures) == (10, 11, 1)
    # each run also reports its queries counted the other way (same trajectory)
    assert int(emu.extra["queries_repo_count"][0]) == 2 + 4 * 1
    assert int(repo.extra["queries_emulator_count"][0]) == 3 + 9 * 2


def test_simple_success_counts_by_hand():
    model = _threshold_model(2.0)
    # label 1 (sum 2.32 > 2): the loss grows as the sum falls, so +δ fails and −δ succeeds on every
    # coordinate; 4 moves of −0.1 give 1.92 < 2 → fooled after 4 steps: 3 + 2 + 2 + 2 = 9 queries
    x = torch.full((1, 1, 2, 2), 0.58)
    y = torch.ones(1, dtype=torch.int64)
    res = run_environment("fp", AttackParams("simple", eps=0.1, delta=0.1, max_loss_queries=100), model, None,
                          x, y, EnvSettings())
    assert (res.successes, res.failures, int(res.queries[0]), res.iterations) == (1, 0, 9, 4)


def test_bad_parameters_raise():
    with pytest.raises(WorkloadError):
        AttackParams("zoo", eps=0.1).check()
    with pytest.raises(WorkloadError):
        AttackParams("simple", eps=0.1).check()
