"""Allocation ILP vs brute force on random small instances (several resources, ties, fixed layers)."""
from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest

from hwsim.errors import HwsimError, InfeasibleBudget
from hwsim.ilp import Allocator, solve_allocation
from hwsim.phi import PhiTable


def _instance(rng: random.Random):
    n = rng.randint(2, 6)
    layers = [f"l{i}" for i in range(n)]
    support = sorted(rng.sample([2, 3, 4, 6, 8, 16], rng.randint(2, 3)))
    cands = {name: tuple(support) for name in layers}
    values = {}
    for name in layers:
        w = rng.randint(1, 40)
        lat = rng.randint(1, 9)
        values[name] = {b: {"weights": float(w * b + rng.randint(0, 3)),
                            "latency": float(lat * (1 + b // 4) + rng.randint(0, 2)),
                            "activations": float(rng.randint(1, 6) * b)} for b in support}
    ties = []
    if n >= 3 and rng.random() < 0.6:
        a, b = rng.sample(layers, 2)
        ties.append((a, b))
    fixed = {}
    if rng.random() < 0.6:
        name = rng.choice(layers)
        fixed[name] = rng.choice(support)
    sens = {name: rng.randint(0, 20) for name in layers}
    phi = PhiTable.from_arrays(layers, cands, values)
    # budgets between the all-min and all-max totals
    budgets = {}
    for r in rng.sample(["weights", "latency", "activations"], rng.randint(1, 3)):
        lo = sum(min(values[m][b][r] for b in support) for m in layers)
        hi = sum(max(values[m][b][r] for b in support) for m in layers)
        if r == "activations":
            lo = min(values[m][support[0]][r] for m in layers)
            hi = max(values[m][support[-1]][r] for m in layers)
        budgets[r] = float(rng.randint(int(lo), int(hi)))
    return phi, sens, ties, fixed, budgets


def _brute_force(phi, sens, ties, fixed, budgets, objective="rank"):
    """Best Σ sens·rank (or Σ sens·bits) over all assignments meeting every constraint (exact)."""
    lists = {n: ((fixed[n],) if n in fixed else tuple(sorted(phi.candidates[n]))) for n in phi.layers}
    best = None
    for combo in itertools.product(*(lists[n] for n in phi.layers)):
        bits = dict(zip(phi.layers, combo))
        if any(bits[a] != bits[b] for a, b in ties):
            continue
        ok = True
        for r, c in budgets.items():
            vals = [phi.values[n][bits[n]][r] for n in phi.layers]
            total = max(vals) if r == "activations" else sum(vals)
            if total > c:
                ok = False
                break
        if not ok:
            continue
        obj = sum(Fraction(sens[n]) * ((lists[n].index(bits[n]) + 1) if objective == "rank" else bits[n])
                  for n in phi.layers)
        if best is None or obj > best:
            best = obj
    return best


def _check(alloc, phi, sens, ties, fixed, budgets, best):
    lists = {n: ((fixed[n],) if n in fixed else tuple(sorted(phi.candidates[n]))) for n in phi.layers}
    bits = alloc.bits
    assert all(bits[a] == bits[b] for a, b in ties)
    assert all(bits[n] == b for n, b in fixed.items())
    for r, c in budgets.items():
        vals = [phi.values[n][bits[n]][r] for n in phi.layers]
        assert (max(vals) if r == "activations" else sum(vals)) <= c
    obj = sum(Fraction(sens[n]) * (lists[n].index(bits[n]) + 1) for n in phi.layers)
    assert obj == best                        # integers: exact
    assert alloc.objective == float(best)


@pytest.mark.parametrize("solver,count", [("highs", 80), ("cbc", 8)])
def test_ilp_matches_brute_force(solver, count):
    rng = random.Random(1234 if solver == "highs" else 99)
    checked = infeasible = 0
    while checked + infeasible < count:
        phi, sens, ties, fixed, budgets = _instance(rng)
        best = _brute_force(phi, sens, ties, fixed, budgets)
        if best is None:
            with pytest.raises(InfeasibleBudget):
                solve_allocation(phi, sens, budgets, ties=ties, fixed=fixed, solver=solver,
                                 diagnostics=False)
            infeasible += 1
            continue
        alloc = solve_allocation(phi, sens, budgets, ties=ties, fixed=fixed, solver=solver,
                                 diagnostics=(checked % 4 == 0))
        _check(alloc, phi, sens, ties, fixed, budgets, best)
        checked += 1
    assert checked >= count // 2


def test_bits_objective_variant_matches_brute_force():
    rng = random.Random(5)
    done = 0
    while done < 25:
        phi, sens, ties, fixed, budgets = _instance(rng)
        best = _brute_force(phi, sens, ties, fixed, budgets, objective="bits")
        if best is None:
            continue
        alloc = solve_allocation(phi, sens, budgets, ties=ties, fixed=fixed, objective="bits",
                                 diagnostics=False)
        assert alloc.objective == float(best)
        assert sum(Fraction(sens[n]) * alloc.bits[n] for n in phi.layers) == best
        done += 1


def test_binding_means_removing_the_budget_helps():
    rng = random.Random(7)
    seen_binding = seen_free = 0
    for _ in range(30):
        phi, sens, ties, fixed, budgets = _instance(rng)
        best = _brute_force(phi, sens, ties, fixed, budgets)
        if best is None:
            continue
        alloc = solve_allocation(phi, sens, budgets, ties=ties, fixed=fixed)
        for r in budgets:
            without = _brute_force(phi, sens, ties, fixed, {k: v for k, v in budgets.items() if k != r})
            assert (r in alloc.binding) == (without > best)
            seen_binding += r in alloc.binding
            seen_free += r not in alloc.binding
            assert alloc.slack[r] == budgets[r] - alloc.totals[r]
    assert seen_binding and seen_free


def test_lp_dual_equals_fractional_knapsack_ratio():
    # Two widths per layer, one budget: the LP relaxation is a fractional knapsack on the upgrades;
    # its price is value/weight of the item that ends up fractional (greedy by ratio).
    sens = {"a": 6.0, "b": 5.0, "c": 1.0}
    extra = {"a": 2.0, "b": 5.0, "c": 4.0}       # Φ(4) − Φ(2); ratios 3, 1, 0.25
    values = {n: {2: {"weights": 10.0}, 4: {"weights": 10.0 + extra[n]}} for n in sens}
    phi = PhiTable.from_arrays(list(sens), {n: (2, 4) for n in sens}, values)
    for solver in ("highs", "cbc"):
        alloc = solve_allocation(phi, sens, {"weights": 30.0 + 2.0 + 2.5}, solver=solver)
        assert alloc.duals["weights"] == pytest.approx(5.0 / 5.0, rel=1e-6)
        assert alloc.bits == {"a": 4, "b": 2, "c": 2}


def test_infeasible_message_gives_smallest_feasible_values():
    values = {n: {2: {"weights": 100.0, "latency": 3.0}, 4: {"weights": 200.0, "latency": 1.0}}
              for n in ("a", "b")}
    phi = PhiTable.from_arrays(["a", "b"], {"a": (2, 4), "b": (2, 4)}, values)
    with pytest.raises(InfeasibleBudget) as info:
        solve_allocation(phi, {"a": 1, "b": 1}, {"weights": 150.0})
    assert info.value.exit_code == 1
    assert "smallest feasible 200 B" in info.value.render()
    with pytest.raises(InfeasibleBudget) as info:
        solve_allocation(phi, {"a": 1, "b": 1}, {"weights": 300.0, "latency": 3.0})
    text = info.value.render()
    # weights ≤ 300 forces at least one 2-bit layer (latency ≥ 4 s): smallest latency 4000 ms
    assert "latency: budget 3000 ms, smallest feasible 2000 ms" in text
    assert "4000 ms under the other budgets" in text


def test_bits_objective_variant_and_reuse():
    values = {n: {b: {"weights": float(b * k)} for b in (2, 4, 8)} for n, k in (("a", 1), ("b", 3))}
    phi = PhiTable.from_arrays(["a", "b"], {"a": (2, 4, 8), "b": (2, 4, 8)}, values)
    alloc = Allocator(phi, {"a": 1.0, "b": 1.0}, objective="bits")
    res = alloc.solve({"weights": 8 + 12})
    assert res.bits == {"a": 8, "b": 4} and res.objective == 12.0
    res2 = alloc.solve({"weights": 2 + 6}, warm_start=res.bits)
    assert res2.bits == {"a": 2, "b": 2}


def test_bad_inputs_are_user_errors():
    values = {"a": {2: {"weights": 1.0}, 4: {"weights": 2.0}}}
    phi = PhiTable.from_arrays(["a"], {"a": (2, 4)}, values)
    with pytest.raises(HwsimError, match="latency"):
        solve_allocation(phi, {"a": 1}, {"latency": 1.0})
    with pytest.raises(HwsimError, match="fixed to 8 bits"):
        solve_allocation(phi, {"a": 1}, {"weights": 1.0}, fixed={"a": 8})
    with pytest.raises(HwsimError, match="unknown layer"):
        solve_allocation(phi, {"zz": 1}, {"weights": 1.0})
