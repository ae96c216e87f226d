"""Arena planners: place buffers with known lifetimes at offsets in one arena.

Why: the activation arena a runtime needs is not the peak of live bytes but what its planner
achieves (fragmentation). `greedy_tflm` reproduces TFLite-Micro's GreedyMemoryPlanner (largest
first, first gap that fits among time-overlapping buffers) so hwsim's arena equals the one a TFLM
build reserves; `best_fit` is a tighter portfolio of heuristics; `lower_bound` (max live aligned
bytes at any op) says how far from optimal either can be. Every plan can be checked by
`check_plan`, which knows nothing about how the plan was built.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True, slots=True)
class Request:
    """A buffer to place: size in bytes, live during op steps first..last (inclusive)."""

    name: str
    size: int
    first: int
    last: int
    order: int = 0   # insertion order (TFLM adds buffers in tensor-index order); breaks size ties


@dataclass(slots=True)
class ArenaPlan:
    """Offsets chosen by one planner and the arena size they need."""

    planner: str
    arena_bytes: int
    offsets: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    note: str = ""


def align_up(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment if alignment > 1 else n


def _aligned(requests: Sequence[Request], alignment: int) -> list[Request]:
    return [Request(r.name, align_up(r.size, alignment), r.first, r.last, r.order) for r in requests]


def overlaps_in_time(a: Request, b: Request) -> bool:
    return not (a.first > b.last or b.first > a.last)


def lower_bound(requests: Sequence[Request], alignment: int = 1) -> int:
    """Max over op steps of the summed (aligned) sizes of live buffers: no plan can beat it."""
    events: dict[int, int] = {}
    for r in _aligned(requests, alignment):
        events[r.first] = events.get(r.first, 0) + r.size
        events[r.last + 1] = events.get(r.last + 1, 0) - r.size
    best = cur = 0
    for t in sorted(events):
        cur += events[t]
        best = max(best, cur)
    return best


def check_plan(requests: Sequence[Request], plan: ArenaPlan) -> list[str]:
    """Independent validity check: every buffer placed, in bounds, no two live-overlapping buffers share bytes."""
    problems = []
    reqs = {r.name: r for r in requests}
    for name, r in reqs.items():
        if name not in plan.offsets:
            problems.append(f"{name} not placed")
            continue
        off, size = plan.offsets[name], plan.sizes.get(name, r.size)
        if size < r.size:
            problems.append(f"{name} given {size} B < requested {r.size} B")
        if off < 0 or off + size > plan.arena_bytes:
            problems.append(f"{name} at [{off}, {off + size}) outside arena of {plan.arena_bytes} B")
    names = [n for n in reqs if n in plan.offsets]
    for i, a in enumerate(names):
        ra, oa, sa = reqs[a], plan.offsets[a], plan.sizes.get(a, reqs[a].size)
        for b in names[i + 1:]:
            rb, ob, sb = reqs[b], plan.offsets[b], plan.sizes.get(b, reqs[b].size)
            if overlaps_in_time(ra, rb) and oa < ob + sb and ob < oa + sa:
                problems.append(f"{a} and {b} are live together and overlap in memory")
    return problems


# ---------------------------------------------------------------------------------------------
# TFLite-Micro's GreedyMemoryPlanner


def greedy_tflm(requests: Sequence[Request], alignment: int = 16) -> ArenaPlan:
    """TFLite-Micro's greedy planner, same decisions for the same input.

    TFLM (micro_allocator.cc CreatePlan) rounds every size up to the arena alignment and adds
    buffers in tensor-index order (then scratch buffers); greedy_memory_planner.cc copies the
    online buffers into its sort array *from the tail* (so in reverse insertion order) and sorts
    them by size, largest first, with a stable bubble sort — equal sizes therefore end up in
    *descending* insertion order. Each buffer goes to the lowest offset where the gap before the
    next already-placed, time-overlapping buffer (in offset order) is large enough; otherwise
    after the last such buffer. The arena is the highest end offset. `Request.order` must be
    the insertion order (tensor index) for ties to be broken as TFLM does.
    """
    reqs = _aligned(requests, alignment)
    todo = sorted(reqs, key=lambda r: (-r.size, -r.order))
    plan = ArenaPlan("greedy_tflm", 0)
    placed = _Placed(len(todo))
    for r in todo:
        # time-overlapping placed buffers in offset order; equal offsets keep placement order
        # (TFLM inserts a newcomer after entries with the same offset; the scan result does not
        # depend on that order anyway)
        offs, ends = placed.overlapping(r, sort=True)
        candidate = 0
        for off, e in zip(offs.tolist(), ends.tolist()):
            if off - candidate >= r.size:
                break
            candidate = max(candidate, e)
        plan.offsets[r.name] = candidate
        plan.sizes[r.name] = r.size
        placed.add(r, candidate)
        plan.arena_bytes = max(plan.arena_bytes, candidate + r.size)
    return plan


class _Placed:
    """Placed buffers as numpy columns, so finding the time-overlapping ones is one vector op."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.first = np.empty(capacity, dtype=np.int64)
        self.last = np.empty(capacity, dtype=np.int64)
        self.off = np.empty(capacity, dtype=np.int64)
        self.end = np.empty(capacity, dtype=np.int64)

    def add(self, r: Request, offset: int) -> None:
        i = self.n
        self.first[i], self.last[i], self.off[i], self.end[i] = r.first, r.last, offset, offset + r.size
        self.n += 1

    def overlapping(self, r: Request, sort: bool) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        mask = (self.first[:n] <= r.last) & (self.last[:n] >= r.first)
        offs, ends = self.off[:n][mask], self.end[:n][mask]
        if sort:
            order = np.argsort(offs, kind="stable")
            offs, ends = offs[order], ends[order]
        return offs, ends


# ---------------------------------------------------------------------------------------------
# a tighter planner: several orders x {first fit, best fit}, keep the smallest arena

Order = Callable[[Request], tuple]

#: Placement orders tried by `best_fit` ("size" is exactly greedy_tflm's order, ties included).
ORDERS: dict[str, Order] = {
    "size": lambda r: (-r.size, -r.order),
    "area": lambda r: (-r.size * (r.last - r.first + 1), -r.size, r.order),
    "lifetime": lambda r: (-(r.last - r.first + 1), -r.size, r.order),
    "start": lambda r: (r.first, -r.size, r.order),
}


def _gaps(busy: list[tuple[int, int]]) -> list[tuple[int, int | None]]:
    """Free (start, end) intervals between busy [start, end) intervals; the last one is unbounded."""
    busy.sort()
    gaps: list[tuple[int, int | None]] = []
    cursor = 0
    for s, e in busy:
        if s > cursor:
            gaps.append((cursor, s))
        cursor = max(cursor, e)
    gaps.append((cursor, None))
    return gaps


def _place(todo: Sequence[Request], fit: str) -> tuple[int, dict[str, int]]:
    placed = _Placed(len(todo))
    offsets: dict[str, int] = {}
    arena = 0
    for r in todo:
        offs, ends = placed.overlapping(r, sort=False)
        gaps = _gaps(list(zip(offs.tolist(), ends.tolist())))
        fitting = [(s, e) for s, e in gaps if e is None or e - s >= r.size]
        if fit == "first":
            start = fitting[0][0]
        else:  # best fit: the smallest bounded gap that holds it, else the top
            bounded = [(e - s, s) for s, e in fitting if e is not None]
            start = min(bounded)[1] if bounded else fitting[-1][0]
        offsets[r.name] = start
        placed.add(r, start)
        arena = max(arena, start + r.size)
    return arena, offsets


def best_fit(requests: Sequence[Request], alignment: int = 16) -> ArenaPlan:
    """Smallest arena over a portfolio of placement orders x {first-fit, best-fit}.

    Why a portfolio: no single order wins on every graph (size-first fragments chains whose big
    tensors are far apart in time; start-time order fails on skip connections); trying ~10
    cheap variants and keeping the best is never worse than TFLM's choice (size, first-fit is in
    the portfolio) and often reaches the lower bound. Stops early when it does.
    """
    reqs = _aligned(requests, alignment)
    bound = lower_bound(reqs)
    firsts = np.array([r.first for r in reqs], dtype=np.int64)
    lasts = np.array([r.last for r in reqs], dtype=np.int64)
    degree = {r.name: int(((firsts <= r.last) & (lasts >= r.first)).sum()) for r in reqs}
    orders: dict[str, Order] = {**ORDERS, "conflicts": lambda r: (-degree[r.name], -r.size, r.order)}
    best: ArenaPlan | None = None
    for oname, key in orders.items():
        todo = sorted(reqs, key=key)
        for fit in ("first", "best"):
            arena, offsets = _place(todo, fit)
            if best is None or arena < best.arena_bytes:
                best = ArenaPlan("best_fit", arena, offsets, {r.name: r.size for r in reqs},
                                 note=f"order={oname}, fit={fit}")
            if best.arena_bytes <= bound:
                best.note += " (reaches the lower bound: optimal)"
                return best
    assert best is not None or not reqs
    return best if best is not None else ArenaPlan("best_fit", 0)


# ---------------------------------------------------------------------------------------------
# exact: a small MILP (only when asked; it can take seconds)


def optimal(requests: Sequence[Request], alignment: int = 16, time_limit_s: float = 10.0) -> ArenaPlan:
    """Minimum arena by mixed-integer programming (HiGHS via PuLP), warm-started from `best_fit`.

    One binary per pair of time-overlapping buffers decides which lies below the other
    (big-M = the best heuristic arena). Returns the heuristic plan unchanged when it already
    meets the lower bound; `note` says whether optimality was proven within the time limit.
    """
    import pulp

    heur = best_fit(requests, alignment)
    reqs = _aligned(requests, alignment)
    bound = lower_bound(reqs)
    if heur.arena_bytes <= bound or len(reqs) < 2:
        return ArenaPlan("optimal", heur.arena_bytes, dict(heur.offsets), dict(heur.sizes),
                         note="heuristic meets the lower bound: proven optimal")
    big = heur.arena_bytes
    prob = pulp.LpProblem("arena", pulp.LpMinimize)
    arena = prob.add_variable("arena", lowBound=bound, upBound=big)
    off = {r.name: prob.add_variable(f"o{i}", lowBound=0, upBound=big - r.size) for i, r in enumerate(reqs)}
    prob += arena
    for r in reqs:
        prob += off[r.name] + r.size <= arena
    for i, a in enumerate(reqs):
        for j in range(i + 1, len(reqs)):
            b = reqs[j]
            if overlaps_in_time(a, b):
                below = prob.add_variable(f"z{i}_{j}", cat="Binary")  # 1: a below b
                prob += off[a.name] + a.size <= off[b.name] + big * (1 - below)
                prob += off[b.name] + b.size <= off[a.name] + big * below
    solver = pulp.HiGHS(msg=False, timeLimit=time_limit_s)
    status = prob.solve(solver)
    if pulp.LpStatus.get(status) != "Optimal" or arena.value() is None:
        return ArenaPlan("optimal", heur.arena_bytes, dict(heur.offsets), dict(heur.sizes),
                         note=f"MILP not solved to optimality in {time_limit_s:g} s; best heuristic kept")
    offsets = {r.name: int(round(off[r.name].value())) for r in reqs}
    size = max(offsets[r.name] + r.size for r in reqs)
    plan = ArenaPlan("optimal", size, offsets, {r.name: r.size for r in reqs}, note="MILP optimal")
    if check_plan(reqs, plan) or size > heur.arena_bytes:  # numerical trouble: keep the valid heuristic
        return ArenaPlan("optimal", heur.arena_bytes, dict(heur.offsets), dict(heur.sizes),
                         note="MILP solution failed the plan check; best heuristic kept")
    return plan


PLANNERS: dict[str, Callable[[Sequence[Request], int], ArenaPlan]] = {
    "greedy_tflm": greedy_tflm,
    "best_fit": best_fit,
    "optimal": optimal,
}
