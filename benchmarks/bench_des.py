"""Benchmark (b): discrete-event model throughput (events/s) and a 20,000-step training simulation.

1. Throughput: a 2,000-op chain with weight streaming (DMA, 4 tiles/op, double buffering) on a
   DMA-equipped variant of stm32l4r5 (written as a YAML profile extending it, marked synthetic).
   Baseline in the same run: a bare simpy loop scheduling the same number of timeouts.
2. Training: one synthetic training step (forward / backward / update over 6 layers) repeated
   20,000 times via `repeat={"step": 20000}`; the DES simulates 3 steps and extrapolates.
   Baseline in the same run: brute-force simulation of 200 steps, scaled to 20,000.
Run: python benchmarks/bench_des.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import simpy

from hwsim.cost.analytic import cost_trace, price_trace
from hwsim.cost.des import _Simulation
from hwsim.target import load_target
from hwsim.trace import TensorInfo, Trace

DMA_VARIANT = """\
name: stm32l4r5-dma-bench
extends: stm32l4r5
description: synthetic benchmark variant of stm32l4r5 with a DMA unit (exercises weight streaming)
compute:
  dma:
    kind: dma
    count: 2
    source: "synthetic: benchmark-only variant, not a real part"
"""


def dma_target():
    d = Path(tempfile.mkdtemp(prefix="bench_des_"))
    (d / "stm32l4r5-dma-bench.yaml").write_text(DMA_VARIANT)
    return load_target(d / "stm32l4r5-dma-bench.yaml")


def chain_trace(n_ops: int, width: int = 64) -> Trace:
    tr = Trace()
    x = TensorInfo("a0", (1, width), 8, "input", "int8")
    for i in range(n_ops):
        w = TensorInfo(f"w{i}", (width, width), 8, "weight", "int8")
        y = TensorInfo(f"a{i + 1}", (1, width), 8, "activation", "int8")
        tr.op("fully_connected", f"fc{i}", [x, w], [y], {("mac", "int8"): width * width})
        x = y
    return tr


def training_step(layers: int = 6, width: int = 128) -> Trace:
    tr = Trace()
    for phase in ("forward", "backward", "update"):
        with tr.phase(phase):
            for i in range(layers):
                w = TensorInfo(f"w{i}", (width, width), 8, "weight", "int8")
                a = TensorInfo(f"a{i}", (32, width), 8, "activation", "int8")
                g = TensorInfo(f"g{i}", (width, width), 32, "gradient", "int32")
                work = {("mac", "int8"): 32 * width * width} if phase != "update" else {("elementwise", "int32"): width * width}
                tr.op("fully_connected" if phase != "update" else "add", f"{phase}{i}",
                      [a, w] if phase != "update" else [w, g], [a if phase == "forward" else g], work)
    return tr


def bare_simpy(n_events: int) -> float:
    env = simpy.Environment()

    def proc():
        for _ in range(n_events):
            yield env.timeout(1e-6)

    t0 = time.perf_counter()
    env.process(proc())
    env.run()
    return time.perf_counter() - t0


def main() -> None:
    target = dma_target()
    tr = chain_trace(2000)
    events, prices, _, _ = price_trace(tr, target, memory={})
    sim = _Simulation(target, prices, 4, 2)
    t0 = time.perf_counter()
    sim.run(list(range(len(events))), 1, 0.0)
    wall = time.perf_counter() - t0
    rate = sim.n_events / wall
    base = bare_simpy(sim.n_events)
    print(f"DES throughput: {sim.n_events} events in {wall:.3f} s = {rate:,.0f} events/s "
          f"(bare simpy timeouts: {sim.n_events / base:,.0f} events/s; ratio {rate / (sim.n_events / base):.2f})")

    step = training_step()
    t0 = time.perf_counter()
    res = cost_trace(step, target, engine="des", repeat={"step": 20000}, memory={})
    wall_20k = time.perf_counter() - t0
    ev_s, pr_s, _, _ = price_trace(step, target, memory={})
    brute = _Simulation(target, pr_s, 4, 2)
    n_brute = 200
    t0 = time.perf_counter()
    t_brute, _ = brute.run(list(range(len(ev_s))), n_brute, target.runtime_efficiency.per_inference_overhead_s)
    wall_brute = time.perf_counter() - t0
    est_brute_20k = wall_brute * 20000 / n_brute
    res_200 = cost_trace(step, target, engine="des", repeat={"step": n_brute}, memory={})
    print(f"20,000-step training run ({len(ev_s)} ops/step): simulated latency {res.latency_s:.3f} s, "
          f"analytic {res.analytic_latency_s:.3f} s (DES gain {100 * res.des['overlap_gain_s'] / res.analytic_latency_s:.1f}%)")
    print(f"  wall time with step extrapolation: {wall_20k * 1e3:.1f} ms "
          f"(brute force: {wall_brute:.2f} s for {n_brute} steps -> ~{est_brute_20k:.0f} s for 20,000; "
          f"speed-up {est_brute_20k / wall_20k:,.0f}x)")
    print(f"  check: extrapolated 200-step latency {res_200.latency_s:.6f} s vs brute force {t_brute:.6f} s "
          f"(rel. diff {abs(res_200.latency_s - t_brute) / t_brute:.1e})")


if __name__ == "__main__":
    main()
