"""Benchmark (a): cost + memory + report for ResNet-8 (MLPerf Tiny IC) on a target.

Figure: wall time of memory analysis + analytic cost + compliance + table + JSON + report folder
(md, html, csv, json, three PNG plots), excluding the emulation that produced the trace.
Target: <= 0.5 s. Baseline measured in the same run: one bit-accurate emulator inference of the
same model (the work a report is built on), so the ratio says what a report costs relative to
emulating the model once. Run: python benchmarks/bench_cost_report.py [target] [repeats]
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import hwsim

MODEL = hwsim.REPO_ROOT / "tests" / "data" / "mlperf_tiny" / "pretrainedResnet_quant.tflite"


CPU: dict[str, float] = {}
MEDIAN: dict[str, tuple[float, float]] = {}


def best_of(fn, repeats: int, label: str = "") -> float:
    """Best wall time of `repeats` runs (the machine is shared); best CPU time kept in CPU[label],
    (median wall, median CPU) in MEDIAN[label]."""
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU[label] = min(cpu)
    MEDIAN[label] = (statistics.median(times), statistics.median(cpu))
    return min(times)


def main(target_name: str = "stm32l4r5", repeats: int = 5) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (import cost is not part of the figure)

    from hwsim.cost.analytic import cost_trace
    from hwsim.cost.simulation import simulate_trace
    from hwsim.emulator import Emulator
    from hwsim.memory import analyze
    from hwsim.report import render_table, to_json, write_report
    from hwsim.report.plots import write_plots
    from hwsim.target import load_target

    target = load_target(target_name)
    from hwsim.workloads.inference import random_inputs

    em = Emulator.from_tflite(MODEL)
    x = random_inputs(em, 1, 0)
    baseline = best_of(lambda: em.run(x), repeats)
    trace = em.trace_only()
    out = Path(tempfile.mkdtemp(prefix="bench_cost_report_"))
    write_report(simulate_trace(trace, target, name="resnet8"), out / "warm")   # warm caches/fonts

    t_mem = best_of(lambda: analyze(trace, target), repeats)
    mem = analyze(trace, target)
    t_cost = best_of(lambda: cost_trace(trace, target, memory=mem), repeats)
    t_des = best_of(lambda: cost_trace(trace, target, memory=mem, engine="des"), repeats)
    sim = simulate_trace(trace, target, name="resnet8")
    t_sim = best_of(lambda: simulate_trace(trace, target, name="resnet8"), repeats)
    t_text = best_of(lambda: (render_table(sim), to_json(sim)), repeats)
    t_plots = best_of(lambda: write_plots(sim, out), repeats)
    total = best_of(lambda: write_report(simulate_trace(trace, target, name="resnet8"), out / "r"), repeats, "total")

    print(f"ResNet-8 on {target_name}: {len(trace.ops())} ops (best of {repeats})")
    print(f"  baseline: emulator, 1 bit-accurate run {baseline * 1e3:8.1f} ms")
    print(f"  memory.analyze                         {t_mem * 1e3:8.1f} ms")
    print(f"  cost_trace (analytic)                  {t_cost * 1e3:8.1f} ms")
    print(f"  cost_trace (des)                       {t_des * 1e3:8.1f} ms")
    print(f"  simulate_trace (memory+cost+budgets)   {t_sim * 1e3:8.1f} ms")
    print(f"  table + json                           {t_text * 1e3:8.1f} ms")
    print(f"  three PNG plots                        {t_plots * 1e3:8.1f} ms")
    print(f"cost + memory + full report folder:      {total * 1e3:8.1f} ms  "
          f"(target <= 500 ms: {'met' if total <= 0.5 else 'NOT met'}; "
          f"{total / baseline:.1f}x one emulated inference)")
    med_wall, med_cpu = MEDIAN["total"]
    print(f"  (full report: best CPU {CPU['total'] * 1e3:.1f} ms; median wall {med_wall * 1e3:.1f} ms, "
          f"median CPU {med_cpu * 1e3:.1f} ms; load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"cost + memory + table/json (no files):   {(t_sim + t_text) * 1e3:8.1f} ms  "
          f"({(t_sim + t_text) / baseline:.1f}x one emulated inference)")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["stm32l4r5"]), *(int(a) for a in sys.argv[2:3]))
