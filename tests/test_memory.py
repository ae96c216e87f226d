"""Memory analysis: liveness, peaks, arena planners, spills, conventions.

Oracles: TFLite-Micro's own planner unit tests (greedy_memory_planner_test.cc, expected offsets
transcribed), brute force over all placement orders for small instances (optimal arena), and
hand-counted traces.
"""
from __future__ import annotations

import itertools
import random

import pytest

from hwsim.memory import Request, analyze, best_fit, check_plan, greedy_tflm, lower_bound
from hwsim.memory.planners import optimal
from hwsim.memory.liveness import storage_bytes
from hwsim.target import load_target
from hwsim.trace import TensorInfo, Trace


# ---------------------------------------------------------------------------------------------
# planners vs TFLite-Micro's own unit tests
# (tensorflow/tflite-micro tensorflow/lite/micro/memory_planner/greedy_memory_planner_test.cc)


def _reqs(specs):
    return [Request(f"b{i}", s, f, l, i) for i, (s, f, l) in enumerate(specs)]


def test_greedy_matches_tflm_basics():
    plan = greedy_tflm(_reqs([(10, 0, 1), (20, 2, 3)]), alignment=1)
    assert plan.arena_bytes == 20
    assert plan.offsets == {"b0": 0, "b1": 0}


def test_greedy_matches_tflm_medium():
    plan = greedy_tflm(_reqs([(10, 0, 1), (20, 1, 2), (30, 2, 3), (40, 3, 4), (50, 0, 1)]), alignment=1)
    assert [plan.offsets[f"b{i}"] for i in range(5)] == [50, 70, 40, 0, 0]
    assert plan.arena_bytes == 90


def test_greedy_matches_tflm_overlap_case():
    plan = greedy_tflm(_reqs([(100, 0, 1), (50, 2, 3), (20, 1, 2)]), alignment=1)
    assert plan.arena_bytes == 120


def test_greedy_aligns_sizes_like_tflm():
    # CreatePlan rounds each size up to 16 before planning: 10 + 20 B live together -> 16 + 32.
    plan = greedy_tflm(_reqs([(10, 0, 1), (20, 1, 2)]), alignment=16)
    assert plan.arena_bytes == 48
    assert sorted(plan.offsets.values()) == [0, 32]


# ---------------------------------------------------------------------------------------------
# planners vs brute force


def _brute_force_optimum(reqs):
    """Minimum arena over every placement order with lowest-feasible-offset placement.

    (For any optimal layout, placing buffers in order of their optimal offsets at the lowest
    feasible offset never ends higher, so the minimum over all orders is the optimum.)
    """
    best = None
    for perm in itertools.permutations(reqs):
        placed = []
        top = 0
        for r in perm:
            off = 0
            moved = True
            while moved:
                moved = False
                for (o, q) in placed:
                    live_together = not (r.first > q.last or q.first > r.last)
                    if live_together and off < o + q.size and o < off + r.size:
                        off = o + q.size
                        moved = True
            placed.append((off, r))
            top = max(top, off + r.size)
        best = top if best is None else min(best, top)
    return best


def _independent_overlap_check(reqs, plan):
    by = {r.name: r for r in reqs}
    for a, b in itertools.combinations(by, 2):
        ra, rb = by[a], by[b]
        if ra.first > rb.last or rb.first > ra.last:
            continue
        oa, ob = plan.offsets[a], plan.offsets[b]
        assert oa + ra.size <= ob or ob + rb.size <= oa, (a, b, plan)
    for r in reqs:
        assert 0 <= plan.offsets[r.name] and plan.offsets[r.name] + r.size <= plan.arena_bytes


@pytest.mark.parametrize("seed", range(25))
def test_planners_valid_and_bounded_by_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 6)
    reqs = []
    for i in range(n):
        f = rng.randint(0, 5)
        reqs.append(Request(f"t{i}", rng.choice([16, 32, 48, 64, 96, 128]), f, f + rng.randint(0, 3), i))
    opt = _brute_force_optimum(reqs)
    lb = lower_bound(reqs, 16)
    g = greedy_tflm(reqs, 16)
    b = best_fit(reqs, 16)
    for plan in (g, b):
        _independent_overlap_check(reqs, plan)
        assert check_plan(reqs, plan) == []
    assert lb <= opt <= b.arena_bytes <= g.arena_bytes
    exact = optimal(reqs, 16)
    _independent_overlap_check(reqs, exact)
    assert exact.arena_bytes == opt


def test_best_fit_beats_greedy_where_size_order_fragments():
    # Found by brute-force search over random instances: largest-first leaves a hole the later
    # 16 B buffers cannot use, so TFLM's greedy needs 112 B where 96 B (the optimum) suffice.
    reqs = _reqs([(64, 5, 8), (64, 0, 0), (32, 0, 2), (16, 4, 7), (16, 2, 5)])
    opt = _brute_force_optimum(reqs)
    assert opt == 96
    assert greedy_tflm(reqs, 16).arena_bytes == 112
    assert best_fit(reqs, 16).arena_bytes == opt


def test_optimal_planner_beats_heuristics_where_they_fall_short():
    # found by brute-force search over random instances
    reqs = _reqs([(16, 4, 6), (128, 5, 5), (64, 2, 4), (64, 2, 2), (16, 1, 4)])
    opt = _brute_force_optimum(reqs)
    assert opt == 144
    assert best_fit(reqs, 16).arena_bytes > opt
    plan = optimal(reqs, 16)
    assert plan.arena_bytes == opt and plan.note == "MILP optimal"
    _independent_overlap_check(reqs, plan)


def test_check_plan_catches_overlap():
    reqs = _reqs([(16, 0, 1), (16, 1, 2)])
    plan = greedy_tflm(reqs, 16)
    plan.offsets["b1"] = plan.offsets["b0"]
    assert check_plan(reqs, plan)


# ---------------------------------------------------------------------------------------------
# liveness and peaks on a hand-counted trace


def _t(name, n, kind="activation", bits=8):
    return TensorInfo(name, (n,), bits, kind, f"int{bits}")


def _chain_trace():
    """x(100) -> op0 -> a(300) -> op1 -> b(200) -> op2 -> y(50); weights w0/w1/w2 in flash."""
    tr = Trace()
    w = [_t(f"w{i}", s, "weight") for i, s in enumerate((1000, 2000, 500))]
    for t in w:
        tr.alloc(t)
    x, a, b, y = _t("x", 100, "input"), _t("a", 300), _t("b", 200), _t("y", 50, "output")
    tr.alloc(x)
    tr.alloc(a)
    tr.op("fc", "op0", [x, w[0]], [a], {("mac", "int8"): 1})
    tr.free(x)
    tr.alloc(b)
    tr.op("fc", "op1", [a, w[1]], [b], {("mac", "int8"): 1})
    tr.free(a)
    tr.alloc(y)
    tr.op("fc", "op2", [b, w[2]], [y], {("mac", "int8"): 1})
    tr.free(b)
    return tr


def test_peaks_and_peak_tensors_by_hand():
    target = load_target("stm32l4r5")
    res = analyze(_chain_trace(), target)
    # live SRAM bytes per op: op0 x+a=400, op1 a+b=500, op2 b+y=250
    assert list(res.timeline["live_sram"]) == [400, 500, 250]
    assert res.peak_bytes["sram"] == 500
    assert res.peak_step["sram"] == 1
    assert [n for n, _, _ in res.peak_tensors["sram"]] == ["a", "b"]
    assert res.peak_bytes["flash"] == 3500
    # arena: sizes aligned to 16 -> 112, 304, 208, 64; greedy: a@0, b@304, x@304, y@0 -> 512
    assert res.arena_bytes["lower_bound"] == 304 + 208
    assert res.arena_bytes["greedy_tflm"] == 512
    assert res.arena_bytes["best_fit"] == 512
    assert res.required_bytes["sram"] == 512
    assert res.fits and res.spills == {}


def test_conventions_cover_every_kind_and_figure():
    res = analyze(_chain_trace(), load_target("stm32l4r5"))
    for key in ("peak_bytes", "arena_bytes", "sub_byte", "input", "output", "weight", "activation",
                "scratch", "gradient", "optimizer", "noise"):
        assert res.conventions[key]
    assert "'flash'" in res.conventions["weight"]
    assert "container" in res.conventions["sub_byte"]


def test_sub_byte_tensors_cost_their_container_without_packing():
    t4 = TensorInfo("q", (1001,), 4, "activation", "int4")
    assert storage_bytes(t4, packing=True, container_bits=8) == 501
    assert storage_bytes(t4, packing=False, container_bits=8) == 1001
    assert storage_bytes(TensorInfo("r", (10,), 12, "activation", "int12"), packing=False, container_bits=8) == 20
    tr = Trace()
    tr.alloc(t4)
    tr.op("relu", "r", [t4], [t4], {("elementwise", "int4"): 1001})
    unpacked = load_target("stm32l4r5")
    packed = unpacked.model_copy(deep=True)
    packed.numerics.packing = True
    assert analyze(tr, unpacked).peak_bytes["sram"] == 1001
    assert analyze(tr, packed).peak_bytes["sram"] == 501


def test_spill_is_flagged_when_arena_exceeds_sram():
    target = load_target("stm32l4r5")
    cap = target.memories["sram"].capacity_bytes
    big_in, big_out = _t("in", cap // 2 + 1, "input"), _t("out", cap // 2 + 1, "output")
    tr = Trace()
    tr.alloc(big_in)
    tr.alloc(big_out)
    tr.op("copy", "c", [big_in], [big_out], {("elementwise", "int8"): 1})
    res = analyze(tr, target)
    assert not res.fits
    assert res.spills["sram"] == res.required_bytes["sram"] - cap > 0
    assert any(f.startswith("spill: sram") for f in res.flags)


def test_sloppy_events_are_flagged_not_fatal():
    tr = _chain_trace()
    tr.free(_t("never", 4))
    res = analyze(tr, load_target("stm32l4r5"))
    assert any("never" in f for f in res.flags)
    assert res.peak_bytes["sram"] == 500


# ---------------------------------------------------------------------------------------------
# liveness vs a naive event-by-event simulation (independent of the difference-array code)


def _naive_peaks(trace, target):
    """Walk events; before each op, sum the bytes of every live tensor per memory; keep the max."""
    live = {}
    peaks = {m: 0 for m in target.memories}
    for ev in trace.events:
        kind = type(ev).__name__
        if kind == "AllocEvent":
            live.setdefault(ev.tensor.name, ev.tensor)
        elif kind == "FreeEvent":
            live.pop(ev.tensor.name, None)
        else:
            # tensors an op uses are live during it even if freed right after
            totals = {m: 0 for m in target.memories}
            for t in live.values():
                totals[target.memory_for(t.kind)] += t.nbytes  # 8-bit tensors only: no container effect
            for m, v in totals.items():
                peaks[m] = max(peaks[m], v)
    return peaks


@pytest.mark.parametrize("seed", range(15))
def test_peaks_equal_naive_simulation(seed):
    rng = random.Random(1000 + seed)
    target = load_target("stm32l4r5")
    tr = Trace()
    kinds = ["activation", "weight", "scratch", "gradient", "optimizer", "input"]
    live = []
    for i in range(rng.randint(1, 30)):
        for _ in range(rng.randint(0, 3)):
            t = TensorInfo(f"t{i}_{len(live)}_{rng.random():.6f}", (rng.randint(1, 500),), 8, rng.choice(kinds), "int8")
            tr.alloc(t)
            live.append(t)
        with tr.phase(rng.choice(["forward", "perturb", "update"])):
            tr.op("x", f"op{i}", live[:1], live[-1:], {("mac", "int8"): 1})
        rng.shuffle(live)
        for _ in range(rng.randint(0, len(live))):
            tr.free(live.pop())
    res = analyze(tr, target)
    naive = _naive_peaks(tr, target)
    assert res.peak_bytes == naive
    # the arena can never be smaller than the live bytes it holds
    assert res.arena_bytes["greedy_tflm"] >= res.arena_bytes["lower_bound"]


def test_training_trace_conventions_and_kinds():
    target = load_target("stm32l4r5")
    tr = Trace()
    w = TensorInfo("w", (100,), 8, "param", "int8")
    m = TensorInfo("m", (100,), 32, "optimizer", "int32")
    tr.alloc(w)
    tr.alloc(m)
    for step in range(2):
        with tr.step(step):
            z = TensorInfo(f"z{step}", (100,), 8, "noise", "int8")
            g = TensorInfo(f"g{step}", (100,), 32, "gradient", "int32")
            with tr.phase("perturb"):
                tr.alloc(z)
                tr.op("rng", "draw", [], [z], {("rng", "int8"): 100})
            with tr.phase("update"):
                tr.alloc(g)
                tr.op("grad", "g", [z, w], [g], {("mac", "int32"): 100})
                tr.free(z)
                tr.op("sgd", "upd", [g, m], [w, m], {("elementwise", "int32"): 200})
                tr.free(g)
    res = analyze(tr, target)
    # params (written by the update), optimizer state, noise, gradients: all training_state -> sram
    assert res.peak_bytes["sram"] == 100 + 400 + 100 + 400
    assert res.peak_by_kind["sram"] == {"param": 100, "optimizer": 400, "noise": 100, "gradient": 400}
    assert set(res.timeline["phase"]) == {"perturb", "update"}
    assert "'sram'" in res.conventions["gradient"] and "'sram'" in res.conventions["optimizer"]


def test_timeline_plot_is_written(tmp_path):
    from hwsim.memory.plot import plot_timeline

    res = analyze(_chain_trace(), load_target("stm32l4r5"))
    fig = plot_timeline(res, tmp_path / "mem.png")
    assert (tmp_path / "mem.png").stat().st_size > 1000
    ax = fig.axes[0]
    assert list(ax.lines[0].get_ydata()) == [400, 500, 250]


@pytest.mark.parametrize("seed", range(40))
def test_best_fit_never_worse_than_tflm_greedy_with_ties(seed):
    # many equal sizes: tie-breaking must not let the portfolio lose to TFLM's order
    rng = random.Random(500 + seed)
    reqs = []
    for i in range(rng.randint(5, 25)):
        f = rng.randint(0, 12)
        reqs.append(Request(f"t{i}", rng.choice([32, 64, 64, 128]), f, f + rng.randint(0, 4), i))
    g, b = greedy_tflm(reqs, 16), best_fit(reqs, 16)
    assert check_plan(reqs, b) == [] and check_plan(reqs, g) == []
    assert lower_bound(reqs, 16) <= b.arena_bytes <= g.arena_bytes
