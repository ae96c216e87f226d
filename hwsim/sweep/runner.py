"""Run a sweep: expand the spec, skip finished points, evaluate chunks, journal every result.

Why: each point allocates bit widths with the ILP (Φ from that point's target, via the cost
model) and reports the resulting totals. Φ tables are built once per (target, model, bits) in
each worker process and reused; solves inside a chunk warm-start from the neighbouring budget.
A failing point records its error and the sweep goes on.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hwsim.errors import HwsimError, InfeasibleBudget
from hwsim.sweep.executors import chunk_points, run_chunks
from hwsim.sweep.spec import Point, SweepSpec, expand
from hwsim.sweep.store import ResultStore

#: per-process caches (a worker keeps its Φ tables across chunks of the same family)
_PHI_CACHE: dict[tuple, object] = {}
_TARGET_CACHE: dict[tuple[str, str], object] = {}


@dataclass
class SweepOutcome:
    out_dir: Path
    total: int
    skipped: int
    evaluated: int
    failed: int
    wall_s: float


# ---- helpers shared with the CLI ---------------------------------------------------------------
def parse_budget_value(resource: str, value) -> float:
    """`1MiB` → bytes, `20ms` → s, `1mJ` → J, `10x` → ratio; numbers pass through (SI units).

    A compression budget stays a ratio here (it is part of the point's identity); it becomes a
    weight-bit budget once the model's Φ table is known.
    """
    from hwsim.phi import parse_budget, parse_compression_ratio

    if resource == "compression":
        return parse_compression_ratio(value)
    return parse_budget(resource, value)


def profile_digest(target_name: str) -> str:
    """Hash of the fully resolved profile contents, so an edited profile is a new point."""
    from hwsim.target import load_target

    target = load_target(target_name)
    payload = target.model_dump(mode="json") if hasattr(target, "model_dump") else repr(target)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def sensitivity_digest(sensitivity: str) -> str:
    if sensitivity == "uniform":
        return "uniform"
    path = Path(sensitivity)
    if not path.exists():
        raise HwsimError(f"sensitivity: file {sensitivity} not found (or use 'uniform')")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_target(name: str, digest: str):
    """Cached per (name, contents digest): an edited profile is never served stale."""
    key = (name, digest)
    if key not in _TARGET_CACHE:
        from hwsim.target import load_target

        _TARGET_CACHE[key] = load_target(name)
    return _TARGET_CACHE[key]


def _resources(budget_keys) -> tuple[str, ...]:
    return tuple(dict.fromkeys(budget_keys))


def _phi_for(point: Point, resources: tuple[str, ...], digest: str):
    key = (point.target, digest, point.model, point.bits, resources)
    if key not in _PHI_CACHE:
        from hwsim.models.layer_specs import builtin_model
        from hwsim.phi import phi_table

        model = builtin_model(point.model)
        _PHI_CACHE[key] = phi_table(model, _load_target(point.target, digest), bits=point.bits,
                                    resources=resources)
    return _PHI_CACHE[key]


def _sensitivity(spec_sensitivity: str, layers: list[str], fixed=()) -> dict[str, float]:
    if spec_sensitivity == "uniform":
        return {n: 1.0 for n in layers}
    from hwsim.cli.allocate import _read_sensitivity  # one CSV reader for CLI and sweeps

    return _read_sensitivity(Path(spec_sensitivity), layers, fixed=fixed)


def evaluate_chunk(points: list[Point], ctx: dict) -> list[dict]:
    """Evaluate neighbouring points of one family; never raises for a single point's failure."""
    from hwsim.ilp import Allocator
    from hwsim.phi import compression_budget

    resources = _resources(r for r, _ in points[0].budgets)
    rows: list[dict] = []
    try:
        phi = _phi_for(points[0], resources, ctx["digests"][points[0].target])
        allocator = Allocator(phi, _sensitivity(ctx["sensitivity"], list(phi.layers), phi.fixed),
                              objective=ctx["objective"])
    except Exception as err:  # the whole family fails the same way; record it on every point
        msg = err.render() if isinstance(err, HwsimError) else f"{type(err).__name__}: {err}"
        return [_row(p, status="error", error=msg) for p in points]
    # Exact reuse: an optimum x* found under budgets C stays optimal under any C' with
    # totals(x*) ≤ C' ≤ C (the feasible set only shrank and x* is still in it). Visiting the
    # chunk from the loosest budgets down lets most grid points reuse a neighbour's optimum.
    order = sorted(points, key=lambda q: tuple(v for _, v in q.budgets), reverse=True)
    solved: list[tuple[dict[str, float], object]] = []
    infeasible: list[tuple[dict[str, float], int]] = []   # infeasible at C ⇒ at every C' ≤ C
    warm = None
    for p in order:
        t0 = time.perf_counter()
        budgets = {r: (compression_budget(phi, v) if r == "compression" else v) for r, v in p.budgets}
        a = next((a for c, a in solved if _dominates(c, budgets) and _fits(a.totals, budgets)), None)
        reused = a is not None
        tighter_than = next((i for c, i in infeasible if _dominates(c, budgets)), None)
        if tighter_than is not None:
            rows.append(_row(p, status="infeasible", solve_s=time.perf_counter() - t0,
                             error=f"infeasible: every budget is at or below point {tighter_than}'s, "
                                   "which is infeasible"))
            continue
        if a is None:
            try:
                a = allocator.solve(budgets, warm_start=warm, diagnostics=ctx.get("diagnostics", False))
            except InfeasibleBudget as err:
                infeasible.append((budgets, p.index))
                rows.append(_row(p, status="infeasible",
                                 error="\n".join([err.message, *err.problems]),
                                 solve_s=time.perf_counter() - t0))
                continue
            except Exception as err:
                msg = err.render() if isinstance(err, HwsimError) else f"{type(err).__name__}: {err}"
                rows.append(_row(p, status="error", error=msg, solve_s=time.perf_counter() - t0))
                continue
            solved.append((budgets, a))
            warm = a.bits
        row = _row(p, status="ok", objective=a.objective, solve_s=time.perf_counter() - t0,
                   bits=[a.bits[n] for n in phi.layers], layers=list(phi.layers), reused=reused)
        for r, v in a.totals.items():
            row[f"total_{r}"] = v
        for r, c in budgets.items():
            row[f"slack_{r}"] = c - a.totals[r]
        rows.append(row)
    return rows


def _dominates(loose: dict[str, float], tight: dict[str, float]) -> bool:
    return all(loose[r] >= c for r, c in tight.items())


def _fits(totals: dict[str, float], budgets: dict[str, float]) -> bool:
    return all(totals[r] <= c for r, c in budgets.items())


def _row(p: Point, **extra) -> dict:
    row = {"point_id": p.point_id, "point_index": p.index, "target": p.target, "model": p.model,
           "bitset": list(p.bits), "error": ""}
    for r, v in p.budgets:
        row[f"budget_{r}"] = v
    row.update(extra)
    return row


def validate_spec(spec: SweepSpec, where: str = "sweep spec") -> None:
    """Fail fast (HwsimError, exit 2) on a spec whose every point would fail the same way.

    Why: a typo in a target, model or budget resource otherwise runs the whole grid of failing
    points and looks like a result. Checks: every target loads, every model is a built-in layer
    list, every budget resource is one Φ can price on every target (weights, activations,
    latency, energy, compression or a memory level of that target), and the sensitivity file.
    """
    from hwsim.models.layer_specs import BUILTIN_MODELS
    from hwsim.phi import DEFAULT_AGGREGATE
    from hwsim.target import load_target

    problems: list[str] = []
    targets = {}
    for name in spec.targets:
        try:
            targets[name] = load_target(name)
        except HwsimError as err:
            problems.append(f"targets: {name!r}: {err.message}")
    for name in spec.models:
        if name not in BUILTIN_MODELS:
            problems.append(f"models: {name!r} is not a built-in layer list; known: "
                            f"{', '.join(BUILTIN_MODELS)}")
    for res in spec.budgets:
        if res in DEFAULT_AGGREGATE:
            continue
        lacking = [t for t, tgt in targets.items() if res not in (getattr(tgt, "memories", {}) or {})]
        if lacking:
            mems = sorted({m for tgt in targets.values() for m in (getattr(tgt, "memories", {}) or {})})
            problems.append(f"budgets: unknown resource {res!r} (on {', '.join(lacking)}); use "
                            f"{', '.join(DEFAULT_AGGREGATE)} or a memory level ({', '.join(mems)})")
    if spec.sensitivity != "uniform":
        p = Path(spec.sensitivity)
        if p.is_dir():
            problems.append(f"sensitivity: {spec.sensitivity} is a directory, expected a CSV file "
                            "(or 'uniform')")
        elif not p.is_file():
            problems.append(f"sensitivity: file {spec.sensitivity} not found (or use 'uniform')")
    if problems:
        raise HwsimError(f"{where}: {len(problems)} problem(s); fix them before the sweep runs",
                         problems=problems)


# ---- the driver ---------------------------------------------------------------------------------
def run_sweep(spec: SweepSpec, out_dir: Path, *, executor: str = "local", workers: int = 2,
              scheduler: str | None = None, chunk_size: int = 100, progress: bool = True,
              compact_every_s: float = 2.0) -> SweepOutcome:
    t0 = time.perf_counter()
    sens_digest = sensitivity_digest(spec.sensitivity)
    digests = {t: profile_digest(t) for t in spec.targets}
    points = expand(spec, parse_budget_value, digests.__getitem__)
    if sens_digest != "uniform":   # a different sensitivity file is a different point
        points = [Point(p.index, p.target, p.model, p.bits, p.budgets,
                        hashlib.sha256((p.point_id + sens_digest).encode()).hexdigest()[:20])
                  for p in points]
    store = ResultStore(out_dir)
    done = store.done_ids()
    todo = [p for p in points if p.point_id not in done]
    skipped = len(points) - len(todo)
    ctx = {"sensitivity": spec.sensitivity, "objective": spec.objective, "diagnostics": False,
           "digests": digests}
    chunks = chunk_points(todo, chunk_size)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"sweep {spec.name}", unit="pt", file=sys.stderr)
    failed = 0
    last_compact = time.perf_counter()
    try:
        for rows in run_chunks(evaluate_chunk, chunks, ctx, executor=executor, workers=workers,
                               scheduler=scheduler):
            store.append(rows)
            failed += sum(1 for r in rows if r["status"] == "error")
            if bar is not None:
                bar.update(len(rows))
            if time.perf_counter() - last_compact > compact_every_s:
                store.compact()
                last_compact = time.perf_counter()
    finally:
        if bar is not None:
            bar.close()
        store.compact()
        store.close()
    return SweepOutcome(Path(out_dir), len(points), skipped, len(todo), failed,
                        time.perf_counter() - t0)
