"""Benchmark: Φ table + ILP for ResNet18 (CIFAR-10 shapes), 3 widths {2,4,8}, 2 resources.

Prints (1) Φ construction + one solve, first call and repeated (target ≤ 50 ms after the first),
(2) 200 successive solves at increasing budgets with a prebuilt `Allocator` (HiGHS in-process),
and the ratio to a baseline measured in the same run: the same solves through PuLP + CBC
(the fallback solver; a subprocess per solve). Run: python benchmarks/bench_ilp.py [target]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from hwsim.ilp import Allocator, solve_allocation
from hwsim.models.layer_specs import resnet18_cifar
from hwsim.phi import phi_table
from hwsim.target import list_targets, load_target

RESOURCES = ("weights", "latency")


def packed_variant(base: str, folder: Path) -> Path:
    """A profile that only flips `numerics.packing` on `base` (the shipped MCUs store 2/4-bit
    weights in byte containers, which makes every width cost the same and the ILP trivial)."""
    path = folder / f"{base}-packed.yaml"
    path.write_text(f"name: {base}-packed\nextends: {base}\ndescription: {base} with densely packed "
                    "sub-byte tensors (benchmark variant)\nnumerics:\n  packing: true\n")
    return path


def main() -> None:
    tmp = tempfile.TemporaryDirectory()
    name = sys.argv[1] if len(sys.argv) > 1 else str(packed_variant("stm32h743", Path(tmp.name)))
    target = load_target(name)
    model = resnet18_cifar(10)
    sens = {s.name: 1.0 + (i * 37 % 11) / 10 for i, s in enumerate(model.layers)}   # fixed pseudo-ENBG

    def budgets_at(phi, lam: float) -> dict[str, float]:
        out = {}
        for r in RESOURCES:
            lo = sum(min(phi.values[n][b][r] for b in phi.candidates[n]) for n in phi.layers)
            hi = sum(max(phi.values[n][b][r] for b in phi.candidates[n]) for n in phi.layers)
            out[r] = lo + lam * (hi - lo) + phi.offsets.get(r, 0.0)
        return out

    times = []
    for i in range(6):
        t0 = time.perf_counter()
        phi = phi_table(model, target, bits=(2, 4, 8), resources=RESOURCES)
        alloc = solve_allocation(phi, sens, budgets_at(phi, 0.5))
        times.append(time.perf_counter() - t0)
    print(f"target {target.name}; ResNet18-CIFAR10: {len(phi.layers)} layers, widths 2/4/8, "
          f"resources {', '.join(RESOURCES)}")
    print(f"Φ table + one solve (with diagnostics): first {times[0] * 1e3:.1f} ms, then median "
          f"{statistics.median(times[1:]) * 1e3:.1f} ms (target ≤ 50 ms); Φ build alone "
          f"{phi.build_time_s * 1e3:.1f} ms")
    print(f"  bits: {[alloc.bits[n] for n in phi.layers]}; binding {alloc.binding}")

    n = 200
    lams = [i / (n - 1) for i in range(n)]
    for diag in (False, True):
        allocator = Allocator(phi, sens)
        t0 = time.perf_counter()
        prev = None
        for lam in lams:
            prev = allocator.solve(budgets_at(phi, lam), warm_start=prev.bits if prev else None,
                                   diagnostics=diag)
        total = time.perf_counter() - t0
        print(f"{n} successive solves, HiGHS, diagnostics={'on' if diag else 'off'}: total "
              f"{total * 1e3:.1f} ms, {total / n * 1e3:.2f} ms per solve")
        if not diag:
            highs_per = total / n

    m = 10
    cbc = Allocator(phi, sens, solver="cbc")
    t0 = time.perf_counter()
    for lam in lams[:: n // m]:
        cbc.solve(budgets_at(phi, lam), diagnostics=False)
    cbc_per = (time.perf_counter() - t0) / m
    print(f"baseline PuLP+CBC: {cbc_per * 1e3:.1f} ms per solve ({m} solves) -> HiGHS in-process is "
          f"{cbc_per / highs_per:.1f}x faster")
    other = [e.name for e in list_targets()]
    print(f"(targets available: {', '.join(other)})")


if __name__ == "__main__":
    main()
