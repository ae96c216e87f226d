"""Benchmark: memory analysis (liveness, peaks, both arena planners) of the ResNet-8 (MLPerf Tiny IC) trace.

Run: python benchmarks/bench_memory.py
Prints the analysis time and its ratio to a baseline measured in the same run: the time the
emulator takes to produce the shapes-only trace being analysed (so "ratio 0.1" means memory
analysis adds 10 % on top of tracing).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "tests" / "data" / "mlperf_tiny" / "pretrainedResnet_quant.tflite"


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main(repeats: int = 20) -> None:
    from hwsim.emulator import Emulator
    from hwsim.memory import analyze
    from hwsim.target import load_target

    target = load_target("stm32l4r5")
    emu = Emulator.from_tflite(MODEL)
    trace = emu.trace_only()
    analyze(trace, target)  # warm-up (imports, caches)
    base_min, base_med = _best_of(lambda: Emulator.from_tflite(MODEL).trace_only(), max(3, repeats // 4))
    mem_min, mem_med = _best_of(lambda: analyze(trace, target), repeats)
    res = analyze(trace, target)
    n_buf = len(res.buffers)
    print(f"ResNet-8 trace: {len(trace.ops())} ops, {n_buf} buffers; arena {res.arena_bytes}")
    print(f"memory analysis (liveness + peaks + greedy_tflm + best_fit): min {mem_min * 1e3:.2f} ms, "
          f"median {mem_med * 1e3:.2f} ms")
    print(f"baseline (load .tflite + shapes-only trace of the same model): min {base_min * 1e3:.2f} ms, median {base_med * 1e3:.2f} ms")
    print(f"ratio analysis/trace (min): {mem_min / base_min:.3f}")


if __name__ == "__main__":
    main()
