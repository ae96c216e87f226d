"""Bit-width allocation ILP (BMPQ eqs. 8–9 in the general form of algorithms.md §4.4).

Why: one choice per layer from its candidate widths, any number of resource budgets at once,
tied layers (ResNet downsample convs share their input layer's width), fixed layers (16-bit first
and last). Tied layers are merged into one group before modelling, so the MILP has one binary per
(group, width). HiGHS runs in-process (highspy) and an `Allocator` keeps the model built, so a
budget sweep only changes row bounds (a solve is ~1 ms); PuLP+CBC (bundled with PuLP 3.x) is the
fallback solver. Both are tested against brute force.

Objective (paper): maximize Σ_l ENBG_l · Ω_l, Ω_l the 1-based rank of the chosen width in the
layer's ascending candidate list (≡ minimize Σ g_l Ω_l with g = −ENBG). Variant `objective="bits"`:
maximize Σ_l ENBG_l · q_l (flagged; not the paper's).

Resources aggregated by "max" (a peak, e.g. activation memory) are exact per-layer filters:
max_l Φ ≤ C  ⇔  every chosen option has Φ ≤ C.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Mapping

from hwsim.errors import HwsimError, InfeasibleBudget
from hwsim.phi import PhiTable

_REL_TOL = 1e-9


@dataclass
class Allocation:
    """The chosen widths and the diagnostics a user needs to trust them."""

    bits: dict[str, int]
    objective: float                         # Σ sensitivity × Ω (or × bits for the variant)
    totals: dict[str, float]                 # Φ totals per budgeted resource (all table resources)
    budgets: dict[str, float]
    slack: dict[str, float]                  # budget − total
    binding: list[str]                       # budgets whose removal would improve the objective
    duals: dict[str, float | None]           # LP-relaxation price: objective gained per unit
    status: str
    solver: str
    objective_kind: str = "rank"
    solve_time_s: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)


class _Groups:
    """Union-find over ties; each group gets one width."""

    def __init__(self, layers: list[str], ties: list[tuple[str, str]]):
        parent = {n: n for n in layers}

        def find(a: str) -> str:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for a, b in ties:
            for n in (a, b):
                if n not in parent:
                    raise HwsimError(f"ilp: tie names unknown layer {n!r}; layers: {', '.join(layers)}")
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[rb] = ra
        order: dict[str, list[str]] = {}
        for n in layers:
            order.setdefault(find(n), []).append(n)
        self.members: list[list[str]] = list(order.values())


class Allocator:
    """A prebuilt allocation problem; `solve(budgets)` re-solves with new budgets only.

    sensitivity: layer -> value (ENBG, ≥ 0 typically). Layers missing from it count 0.
    """

    def __init__(self, phi: PhiTable, sensitivity: Mapping[str, float], *,
                 ties: list[tuple[str, str]] | None = None, fixed: Mapping[str, int] | None = None,
                 objective: str = "rank", solver: str = "highs"):
        if objective not in ("rank", "bits"):
            raise HwsimError(f"ilp: objective must be 'rank' (paper) or 'bits', got {objective!r}")
        if solver not in ("highs", "cbc"):
            raise HwsimError(f"ilp: solver must be 'highs' or 'cbc', got {solver!r}")
        unknown = [n for n in sensitivity if n not in phi.values]
        if unknown:
            raise HwsimError(f"ilp: sensitivity names unknown layer(s) {', '.join(unknown)}")
        self.phi, self.objective_kind, self.solver = phi, objective, solver
        self.sens = {n: float(sensitivity.get(n, 0.0)) for n in phi.layers}
        ties = list(phi.ties if ties is None else ties)
        fixed = dict(phi.fixed if fixed is None else fixed)
        # candidate lists (ascending); a fixed layer keeps only its width
        self.cands: dict[str, tuple[int, ...]] = {}
        for n in phi.layers:
            c = tuple(sorted(phi.candidates[n]))
            if n in fixed:
                if fixed[n] not in c:
                    raise HwsimError(f"ilp: layer {n} is fixed to {fixed[n]} bits but its Φ table "
                                     f"only has {list(c)}; rebuild the table with that width")
                c = (int(fixed[n]),)
            self.cands[n] = c
        self.groups = _Groups(phi.layers, ties).members
        # options per group: widths allowed for every member
        self.options: list[tuple[int, ...]] = []
        for members in self.groups:
            common = set(self.cands[members[0]])
            for m in members[1:]:
                common &= set(self.cands[m])
            if not common:
                raise HwsimError(f"ilp: tied layers {', '.join(members)} share no candidate width "
                                 f"({'; '.join(f'{m}: {list(self.cands[m])}' for m in members)})")
            self.options.append(tuple(sorted(common)))
        self.sum_res = [r for r in phi.resources if phi.aggregate.get(r, "sum") == "sum"]
        self.max_res = [r for r in phi.resources if phi.aggregate.get(r, "sum") == "max"]
        # per (group, option): cost and Φ
        self.cost: list[list[float]] = []
        self.gphi: list[list[dict[str, float]]] = []
        for members, opts in zip(self.groups, self.options):
            crow, prow = [], []
            for b in opts:
                crow.append(-sum(self.sens[m] * self._value(m, b) for m in members))
                d = {r: sum(phi.values[m][b][r] for m in members) for r in self.sum_res}
                d.update({r: max(phi.values[m][b][r] for m in members) for r in self.max_res})
                prow.append(d)
            self.cost.append(crow)
            self.gphi.append(prow)
        self._highs = None
        self._rows: dict[str, int] = {}

    def _value(self, layer: str, bits: int) -> float:
        return float(self.cands[layer].index(bits) + 1) if self.objective_kind == "rank" else float(bits)

    # ---- helpers ---------------------------------------------------------------------------
    def objective_of(self, bits: Mapping[str, int]) -> float:
        return float(sum(self.sens[n] * self._value(n, bits[n]) for n in self.phi.layers))

    def totals_of(self, bits: Mapping[str, int]) -> dict[str, float]:
        return {r: self.phi.total(dict(bits), r) for r in self.phi.resources}

    def _check_budgets(self, budgets: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for r, c in budgets.items():
            if r not in self.phi.resources:
                raise HwsimError(f"ilp: budget on {r!r} but the Φ table has only "
                                 f"{', '.join(self.phi.resources)}; build it with that resource")
            c = float(c)
            if not math.isfinite(c) or c < 0:
                raise HwsimError(f"ilp: budget {r}={c} must be a finite non-negative number")
            out[r] = c
        return out

    def _effective(self, budgets: Mapping[str, float]) -> dict[str, float]:
        """Budgets left for the layers once per-model constants (per-inference overhead) are paid."""
        return {r: c - self.phi.offsets.get(r, 0.0) for r, c in budgets.items()}

    def _allowed(self, budgets: Mapping[str, float]) -> list[list[bool]]:
        allowed = []
        for prow in self.gphi:
            allowed.append([all(d[r] <= budgets[r] * (1 + _REL_TOL) + 1e-300
                                for r in self.max_res if r in budgets) for d in prow])
        return allowed

    def minimum_totals(self, budgets: Mapping[str, float] | None = None) -> dict[str, float]:
        """Smallest achievable total of each resource under ties/fixed only (each alone)."""
        out = {}
        for r in self.phi.resources:
            per_group = [min(d[r] for d in prow) for prow in self.gphi]
            out[r] = (max(per_group) if r in self.max_res else float(sum(per_group))) \
                + self.phi.offsets.get(r, 0.0)
        return out

    # ---- solving ---------------------------------------------------------------------------
    def solve(self, budgets: Mapping[str, float], *, warm_start: Mapping[str, int] | None = None,
              diagnostics: bool = True) -> Allocation:
        t0 = time.perf_counter()
        budgets = self._check_budgets(budgets)
        eff = self._effective(budgets)
        choice, status = self._solve_mip(eff, warm_start)
        if choice is None:
            raise self._infeasible(budgets)
        bits = {m: opts[j] for members, opts, j in zip(self.groups, self.options, choice)
                for m in members}
        totals = self.totals_of(bits)
        for r, c in budgets.items():   # exact post-check (solver tolerances never leak out)
            if totals[r] > c * (1 + _REL_TOL) + 1e-300:
                raise HwsimError(f"ilp: solver returned an assignment over budget on {r} "
                                 f"({totals[r]} > {c}); please report")
        obj = self.objective_of(bits)
        slack = {r: c - totals[r] for r, c in budgets.items()}
        binding: list[str] = []
        duals: dict[str, float | None] = {r: None for r in budgets}
        if diagnostics:
            for r in budgets:
                relaxed = {k: v for k, v in eff.items() if k != r}
                if self.solver == "highs" and not self._lp_may_improve(relaxed, obj):
                    continue          # the LP bound without r already equals the optimum: not binding
                other, _ = self._solve_mip(relaxed, bits)     # current optimum as incumbent
                if other is not None:
                    other_bits = {m: opts[j] for members, opts, j in
                                  zip(self.groups, self.options, other) for m in members}
                    if self.objective_of(other_bits) > obj + 1e-12 * max(1.0, abs(obj)):
                        binding.append(r)
            duals = self._lp_duals(eff)
        return Allocation(bits, obj, totals, dict(budgets), slack, binding, duals, status,
                          self.solver, self.objective_kind, time.perf_counter() - t0,
                          {n: self.cands[n].index(bits[n]) + 1 for n in self.phi.layers})

    def _solve_mip(self, budgets: dict[str, float], warm_start):
        allowed = self._allowed(budgets)
        if any(not any(a) for a in allowed):
            return None, "infeasible"
        if self.solver == "highs":
            return self._solve_highs(budgets, allowed, warm_start, integer=True)
        return self._solve_cbc(budgets, allowed)

    def _scale(self) -> float:
        m = max((abs(c) for row in self.cost for c in row), default=1.0)
        return m if m > 0 else 1.0

    def _build_highs(self):
        import highspy
        import numpy as np
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 1e-12)
        h.setOptionValue("primal_feasibility_tolerance", 1e-9)
        h.setOptionValue("mip_feasibility_tolerance", 1e-9)
        h.setOptionValue("threads", 1)
        # primal heuristics only find incumbents; on these small multiple-choice knapsacks the
        # feasibility-jump pass costs ~3x the whole tree search (measured in bench_ilp.py)
        h.setOptionValue("mip_heuristic_run_feasibility_jump", False)
        h.setOptionValue("mip_heuristic_effort", 0.0)
        scale = self._scale()
        cols_cost, starts, index, value = [], [], [], []
        self._col_of: list[list[int]] = []
        n_groups = len(self.groups)
        self._rows = {r: n_groups + i for i, r in enumerate(self.sum_res)}
        k = 0
        for g, (crow, prow) in enumerate(zip(self.cost, self.gphi)):
            cols = []
            for c, d in zip(crow, prow):
                cols_cost.append(c / scale)
                starts.append(len(index))
                index.append(g)
                value.append(1.0)
                for r in self.sum_res:
                    if d[r] != 0.0:
                        index.append(self._rows[r])
                        value.append(d[r])
                cols.append(k)
                k += 1
            self._col_of.append(cols)
        lp = highspy.HighsLp()
        lp.num_col_ = k
        lp.num_row_ = n_groups + len(self.sum_res)
        lp.col_cost_ = np.array(cols_cost, dtype=float)
        lp.col_lower_ = np.zeros(k)
        lp.col_upper_ = np.ones(k)
        inf = highspy.kHighsInf
        lp.row_lower_ = np.array([1.0] * n_groups + [-inf] * len(self.sum_res))
        lp.row_upper_ = np.array([1.0] * n_groups + [inf] * len(self.sum_res))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.array(starts + [len(index)], dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(value, dtype=float)
        lp.a_matrix_.num_col_ = k
        lp.a_matrix_.num_row_ = lp.num_row_
        h.passModel(lp)
        self._highs, self._ncols, self._cost_scale = h, k, scale
        self._int = np.array([highspy.HighsVarType.kInteger] * k)
        self._cont = np.array([highspy.HighsVarType.kContinuous] * k)
        self._np = np

    def _solve_highs(self, budgets, allowed, warm_start, *, integer: bool):
        import highspy
        if self._highs is None:
            self._build_highs()
        h, np = self._highs, self._np
        inf = highspy.kHighsInf
        h.clearSolver()
        for r, row in self._rows.items():
            h.changeRowBounds(row, -inf, budgets[r] if r in budgets else inf)
        upper = np.array([1.0 if a else 0.0 for row in allowed for a in row])
        idx = np.arange(self._ncols, dtype=np.int32)
        h.changeColsBounds(self._ncols, idx, np.zeros(self._ncols), upper)
        h.changeColsIntegrality(self._ncols, idx, self._int if integer else self._cont)
        if integer and warm_start:
            sol = np.zeros(self._ncols)
            ok = True
            for members, opts, cols in zip(self.groups, self.options, self._col_of):
                b = warm_start.get(members[0])
                if b not in opts:
                    ok = False
                    break
                sol[cols[opts.index(b)]] = 1.0
            if ok:
                hs = highspy.HighsSolution()
                hs.col_value = list(sol)
                hs.value_valid = True
                h.setSolution(hs)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            if status == highspy.HighsModelStatus.kInfeasible:
                return None, "infeasible"
            raise HwsimError(f"ilp: HiGHS stopped with status {h.modelStatusToString(status)}")
        if not integer:
            return h.getSolution(), "optimal"
        x = h.getSolution().col_value
        choice = [max(range(len(cols)), key=lambda j: x[cols[j]]) for cols in self._col_of]
        return choice, "optimal"

    def _lp_may_improve(self, budgets: dict[str, float], obj: float) -> bool:
        """True unless the LP relaxation under `budgets` proves no assignment beats `obj`."""
        sol, _ = self._solve_highs(budgets, self._allowed(budgets), None, integer=False)
        if sol is None:
            return True
        lp_max = -self._highs.getInfo().objective_function_value * self._cost_scale
        return lp_max > obj + 1e-9 * max(1.0, abs(obj))

    def _lp_duals(self, budgets: dict[str, float]) -> dict[str, float | None]:
        """Objective (Σ sensitivity×Ω) gained per unit of extra budget, from the LP relaxation."""
        out: dict[str, float | None] = {r: None for r in budgets}
        allowed = self._allowed(budgets)
        if self.solver == "highs":
            sol, _ = self._solve_highs(budgets, allowed, None, integer=False)
            if sol is None:
                return out
            for r in budgets:
                if r in self._rows:
                    out[r] = -sol.row_dual[self._rows[r]] * self._cost_scale
            return out
        return self._cbc_duals(budgets, allowed)

    # ---- CBC through PuLP (fallback) ---------------------------------------------------------
    def _pulp_problem(self, budgets, allowed, *, relax: bool):
        import pulp
        prob = pulp.LpProblem("bit_allocation", pulp.LpMinimize)
        cat = "Continuous" if relax else "Integer"   # Binary would override a 0 upper bound
        x = []
        for g, (crow, opts) in enumerate(zip(self.cost, self.options)):
            x.append([pulp.LpVariable(f"x_{g}_{j}", 0, 1 if allowed[g][j] else 0, cat=cat)
                      for j in range(len(opts))])
        scale = self._scale()
        prob += pulp.lpSum(self.cost[g][j] / scale * x[g][j]
                           for g in range(len(x)) for j in range(len(x[g])))
        for g in range(len(x)):
            prob += pulp.lpSum(x[g]) == 1, f"one_{g}"
        for r in self.sum_res:
            if r in budgets:
                prob += pulp.lpSum(self.gphi[g][j][r] * x[g][j] for g in range(len(x))
                                   for j in range(len(x[g]))) <= budgets[r], f"res_{r}"
        return prob, x, scale

    def _solve_cbc(self, budgets, allowed):
        import pulp
        with warnings.catch_warnings():   # PuLP 3.3 announces its 4.0 API; 3.x is pinned
            warnings.simplefilter("ignore", DeprecationWarning)
            prob, x, _ = self._pulp_problem(budgets, allowed, relax=False)
            prob.solve(pulp.PULP_CBC_CMD(msg=False, gapRel=0, gapAbs=0))
        if pulp.LpStatus[prob.status] != "Optimal":
            if pulp.LpStatus[prob.status] == "Infeasible":
                return None, "infeasible"
            raise HwsimError(f"ilp: CBC stopped with status {pulp.LpStatus[prob.status]}")
        return [max(range(len(row)), key=lambda j: row[j].value() or 0.0) for row in x], "optimal"

    def _cbc_duals(self, budgets, allowed):
        import pulp
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            prob, _, scale = self._pulp_problem(budgets, allowed, relax=True)
            prob.solve(pulp.PULP_CBC_CMD(msg=False))
            constraints = dict(prob.constraints)
        out: dict[str, float | None] = {r: None for r in budgets}
        if pulp.LpStatus[prob.status] != "Optimal":
            return out
        for r in budgets:
            con = constraints.get(f"res_{r}")
            if con is not None and con.pi is not None:
                out[r] = -con.pi * scale
        return out

    # ---- infeasibility -----------------------------------------------------------------------
    def _infeasible(self, budgets: dict[str, float]) -> InfeasibleBudget:
        mins = self.minimum_totals()
        units = self.phi.units
        lines = []
        for r, c in budgets.items():
            given_others = None
            others = {k: v for k, v in budgets.items() if k != r}
            if others and r in self.sum_res:
                given_others = self._min_resource_given(r, self._effective(others))
                if given_others is not None:
                    given_others += self.phi.offsets.get(r, 0.0)
            show = self._show(r)
            msg = (f"{r}: budget {show(c)}, smallest feasible {show(mins[r])} "
                   "(ties and fixed layers only)")
            if given_others is not None:
                msg += f", {show(given_others)} under the other budgets"
            elif others and r in self.sum_res:
                msg += ", none under the other budgets"
            lines.append(msg)
        return InfeasibleBudget("no bit-width assignment meets the budget; smallest feasible value "
                                "of each resource:", problems=lines)

    def _show(self, r: str):
        """Formatter for messages; the compression resource reads as the ratio r^32 it implies."""
        unit = self.phi.units.get(r, "")
        if r == "compression" and self.phi.param_counts:
            p = 32.0 * sum(self.phi.param_counts[n] for n in self.phi.layers)
            return lambda v: f"{p / v:.4g}x ({v:.6g} weight bits)" if v > 0 else "∞x"
        return lambda v: _fmt(v, unit)

    def _min_resource_given(self, r: str, others: dict[str, float]) -> float | None:
        """min Σ Φ_r subject to the other budgets (an auxiliary MILP, solved with the same solver)."""
        aux = Allocator.__new__(Allocator)
        aux.__dict__.update(self.__dict__)
        aux._highs = None
        aux.cost = [[d[r] for d in prow] for prow in self.gphi]
        choice, _ = aux._solve_mip(others, None)
        if choice is None:
            return None
        return float(sum(self.gphi[g][j][r] for g, j in enumerate(choice)))


def _fmt(value: float, unit: str) -> str:
    if unit == "B":
        for u, s in (("MiB", 2 ** 20), ("KiB", 2 ** 10)):
            if value >= s:
                return f"{value / s:.4g} {u}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value * 1e3:.4g} ms"
    if unit == "J":
        return f"{value * 1e3:.4g} mJ"
    return f"{value:.6g} {unit}".strip()


def solve_allocation(phi: PhiTable, sensitivity: Mapping[str, float],
                     budgets: Mapping[str, float], *, ties: list[tuple[str, str]] | None = None,
                     fixed: Mapping[str, int] | None = None, warm_start: Mapping[str, int] | None = None,
                     objective: str = "rank", solver: str = "highs",
                     diagnostics: bool = True) -> Allocation:
    """One-shot convenience wrapper around `Allocator` (use the class for repeated solves)."""
    alloc = Allocator(phi, sensitivity, ties=ties, fixed=fixed, objective=objective, solver=solver)
    return alloc.solve(budgets, warm_start=warm_start, diagnostics=diagnostics)


def format_value(value: float, unit: str) -> str:
    """Human-readable Φ value (bytes as KiB/MiB, seconds as ms, joules as mJ)."""
    return _fmt(value, unit)
