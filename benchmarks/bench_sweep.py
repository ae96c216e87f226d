"""1,000-point budget sweep for ResNet18 (3 bit choices, 2 resources) on one target.

Prints the wall time of `hwsim sweep workloads/sweep-resnet18-budgets.yaml` (whole process,
imports included, fresh output folder) and, as the in-run baseline, the naive approach — rebuild
the Φ table and solve cold for every point — timed on a sample and extrapolated to 1,000 points.
Target: ≤ 10 s on 2 cores.

    python benchmarks/bench_sweep.py [--workers N] [--repeats N]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "workloads" / "sweep-resnet18-budgets.yaml"


def naive_per_point_s(sample: int = 10) -> float:
    from hwsim.ilp import Allocator
    from hwsim.models.layer_specs import builtin_model
    from hwsim.sweep import load_spec
    from hwsim.sweep.runner import parse_budget_value, profile_digest
    from hwsim.sweep.spec import expand
    from hwsim.phi import phi_table
    from hwsim.target import load_target

    spec = load_spec(SPEC)
    points = expand(spec, parse_budget_value, profile_digest)[::97][:sample]
    t0 = time.perf_counter()
    for p in points:
        target = load_target(p.target)
        phi = phi_table(builtin_model(p.model), target, bits=p.bits, resources=[r for r, _ in p.budgets])
        try:
            Allocator(phi, {n: 1.0 for n in phi.layers}).solve(dict(p.budgets), diagnostics=False)
        except Exception:
            pass
    return (time.perf_counter() - t0) / len(points)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cli(args: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the process and its workers, stdout) of one `python -m hwsim` run."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwsim", *args], capture_output=True, text=True,
                          cwd=REPO)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    return wall, cpu, proc.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="fresh sweeps to time (median reported)")
    args = ap.parse_args()
    fresh, resumed = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            fresh.append(run_cli(["sweep", str(SPEC), "--out", tmp, "--workers", str(args.workers),
                                  "--no-progress"]))
            resumed.append(run_cli(["sweep", str(SPEC), "--out", tmp, "--no-progress"]))
    print(fresh[-1][2])
    wall = statistics.median(r[0] for r in fresh)
    cpu = statistics.median(r[1] for r in fresh)
    resume_wall = statistics.median(r[0] for r in resumed)
    resume_cpu = statistics.median(r[1] for r in resumed)
    naive = naive_per_point_s() * 1000
    print(f"1000-point sweep (whole process, workers={args.workers}, median of {args.repeats}): "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU  (target ≤ 10 s; load avg {os.getloadavg()[0]:.1f})")
    print(f"re-run, all points already done:                 {resume_wall:.2f} s wall, {resume_cpu:.2f} s CPU")
    print(f"naive baseline (Φ rebuilt + cold solve per point, extrapolated): {naive:.1f} s")
    print(f"speed-up vs naive: {naive / wall:.1f}x")


if __name__ == "__main__":
    main()
