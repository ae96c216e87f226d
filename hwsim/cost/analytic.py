"""Analytic (roofline-per-op) cost of a trace on a target.

Why: the cheapest model that still sees every op: per op, latency = max(compute, memory) +
fixed overhead, energy = work × energy/op + bytes × energy/byte + static power × time. It is the
reference the discrete-event model is compared against, and what Φ tables and sweeps use.

Conventions (also in `CostResult.conventions`):
- compute_s = Σ over the op's (class, format) work of count / (unit.count × per_cycle ×
  runtime_efficiency.compute[class] × unit clock); formats the unit lacks are promoted (flagged).
- memory_s = Σ over memory levels touched of (read_bytes/read_bw + write_bytes/write_bw) /
  runtime_efficiency.memory[level] + latency (one shared memory interface: levels do not overlap
  each other in this model).
- stall_s: the memory time of levels marked `stalls_compute` (flash wait states on an MCU core):
  the core waits for those reads itself, so their time is added to compute_s (and left out of
  memory_s) instead of overlapping it.
- overhead_s = unit.launch_overhead + runtime_efficiency.per_op_overhead; plus
  per_inference_overhead once per trace step.
- `repeat`: {"step": N} repeats the whole trace N times; {phase: k} runs that phase k times per step.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hwsim.cost.pricing import OpPrice, Pricer
from hwsim.cost.spill import Spill, plan_spills
from hwsim.errors import HwsimError
from hwsim.trace import OpEvent, Trace

ENGINES = ("analytic", "des")

CONVENTIONS = {
    "latency": "per op max(compute, memory) + launch/per-op overhead, summed in trace order, "
               "+ per-inference overhead once per step; repeats multiply",
    "compute": "work / (units x ops-per-cycle x runtime efficiency x clock), promoted format when native is absent",
    "memory": "bytes per level (placement by tensor kind, spills moved to the next level) / (bandwidth x "
              "runtime memory efficiency) + latency, levels summed (one memory interface)",
    "stall": "on a cpu unit, the memory time of levels with stalls_compute (wait states) is part of compute_s "
             "(column stall_s), not of memory_s",
    "energy": "work x energy/op + bytes x energy/byte + static power x latency",
    "bytes": "tensor bytes as stored on the target (sub-byte values cost a container when packing is false)",
}


@dataclass
class CostResult:
    """Latency/energy of a trace on a target, per op and aggregated."""

    target: str
    engine: str
    latency_s: float
    energy_j: float
    ops: pd.DataFrame
    by_phase: pd.DataFrame
    by_layer: pd.DataFrame
    flags: list[dict]
    repeat: dict[str, int] = field(default_factory=dict)
    overhead_s: float = 0.0                # per-inference overhead included in latency_s
    spills: list[Spill] = field(default_factory=list)
    analytic_latency_s: float | None = None   # set by the DES engine for comparison
    analytic_energy_j: float | None = None
    des: dict[str, Any] = field(default_factory=dict)   # DES statistics (events, overlap, ...)
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))

    @property
    def flag_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.flags:
            out[f["kind"]] = out.get(f["kind"], 0) + 1
        return out

    def bytes_by_level(self) -> dict[str, float]:
        """Total bytes moved per memory level (repeats included)."""
        out = {}
        for col in self.ops.columns:
            if col.startswith("bytes_"):
                out[col[len("bytes_"):]] = float((self.ops[col] * self.ops["repeat"]).sum())
        return out


def _multiplier(ev: OpEvent, repeat: dict[str, int]) -> int:
    return int(repeat.get(ev.phase, 1)) * int(repeat.get("step", 1))


def _peaks_from_memory(trace: Trace, target, memory) -> dict[str, int] | None:
    """Bytes each level must hold: the MemoryResult's `required_bytes` (arena + other tensors)."""
    if memory is None:
        try:
            from hwsim.memory import analyze
        except ImportError:
            return None
        memory = analyze(trace, target)
    if isinstance(memory, dict):
        return dict(memory)
    return dict(getattr(memory, "required_bytes", None) or memory.peak_bytes)


def price_trace(trace: Trace, target, *, memory=None) -> tuple[list[OpEvent], list[OpPrice], Pricer, list[Spill]]:
    """Price every op (shared by both engines)."""
    peaks = _peaks_from_memory(trace, target, memory)
    spills = plan_spills(target, peaks) if peaks is not None else []
    pricer = Pricer(target, {s.level: (s.dest, s.fraction) for s in spills if s.dest}, meta=trace.meta)
    for s in spills:
        pricer.flags.append({"kind": "spill" if s.dest else "overflow", "key": s.level, "message": s.message()})
    if not target.runtime_efficiency.fitted_on and not target.runtime_efficiency.compute:
        pricer.flags.append({"kind": "uncalibrated", "key": target.name,
                             "message": f"{target.name} is not calibrated: kernels are assumed to reach the "
                                        "profile's peak throughput (on NPUs with `blocks`: peak per used "
                                        "MAC-array micro-block), so latency is an optimistic lower bound; "
                                        "use a profile from targets/calibrated/ "
                                        "or `hwsim calibrate` for predictions"})
    if peaks is None:
        pricer.flags.append({"kind": "note", "key": "memory",
                             "message": "hwsim.memory is not available: spills were not checked"})
    events = trace.ops()
    return events, [pricer.price(ev) for ev in events], pricer, spills


def op_rows(events: list[OpEvent], prices: list[OpPrice], target, repeat: dict[str, int],
            latencies: list[float] | None = None) -> pd.DataFrame:
    """The per-op table; `latencies` overrides the analytic per-op latency (DES)."""
    static_w = target.power.static_W
    levels = list(target.memories)
    rows = []
    for i, (ev, p) in enumerate(zip(events, prices)):
        lat = max(p.compute_s, p.memory_s) + p.overhead_s if latencies is None else latencies[i]
        static_e = static_w * lat
        row = {
            "op": ev.op, "name": ev.name, "layer": ev.layer, "phase": ev.phase, "step": ev.step,
            "unit": p.unit, "fmt": ",".join(sorted({part.run_fmt for part in p.parts})),
            "macs": ev.macs, "work": p.work, "float_ops": ev.float_ops,
            "compute_s": p.compute_s, "memory_s": p.memory_s, "stall_s": p.stall_s, "overhead_s": p.overhead_s,
            "latency_s": lat, "bound": "compute" if p.compute_s >= p.memory_s else "memory",
            "compute_energy_j": p.compute_energy_j, "memory_energy_j": p.memory_energy_j,
            "static_energy_j": static_e, "energy_j": p.compute_energy_j + p.memory_energy_j + static_e,
            "repeat": _multiplier(ev, repeat), "flags": "; ".join(dict.fromkeys(p.flags)),
        }
        for lvl in levels:
            r, w = p.read_bytes.get(lvl, 0.0), p.write_bytes.get(lvl, 0.0)
            row[f"read_bytes_{lvl}"] = r
            row[f"write_bytes_{lvl}"] = w
            row[f"bytes_{lvl}"] = r + w
        rows.append(row)
    cols = ["op", "name", "layer", "phase", "step", "unit", "fmt", "macs", "work", "float_ops",
            "compute_s", "memory_s", "stall_s", "overhead_s", "latency_s", "bound", "compute_energy_j",
            "memory_energy_j", "static_energy_j", "energy_j", "repeat", "flags"]
    cols += [f"{k}_{lvl}" for lvl in levels for k in ("read_bytes", "write_bytes", "bytes")]
    return pd.DataFrame(rows, columns=cols)


def aggregate(ops: pd.DataFrame, key: str) -> pd.DataFrame:
    """Totals per phase or layer, repeats included (seconds, joules, bytes, op counts)."""
    if ops.empty:
        return pd.DataFrame(columns=["latency_s", "energy_j", "compute_s", "memory_s", "overhead_s",
                                     "macs", "float_ops", "n_ops"])
    rep = ops["repeat"]
    value_cols = ["latency_s", "energy_j", "compute_s", "memory_s", "overhead_s", "macs", "float_ops"]
    value_cols += [c for c in ops.columns if c.startswith("bytes_")]
    weighted = ops[value_cols].mul(rep, axis=0)
    weighted[key] = ops[key]
    weighted["n_ops"] = rep
    out = weighted.groupby(key, sort=False).sum()
    return out


def n_inferences(events: list[OpEvent], repeat: dict[str, int]) -> int:
    """How many times the per-inference overhead is paid: once per distinct step × step repeats."""
    steps = {ev.step for ev in events} or {0}
    return len(steps) * int(repeat.get("step", 1))


def cost_trace(trace: Trace, target, *, engine: str = "analytic", repeat: dict[str, int] | None = None,
               memory=None, des_options: dict | None = None) -> CostResult:
    """Cost `trace` on `target`.

    `repeat`: WorkloadRun.repeat ({"step": N} and/or {phase: k}). `memory`: a MemoryResult (or a
    {level: peak_bytes} dict) to check spills against; computed with hwsim.memory when omitted.
    `engine="des"` runs the discrete-event model (hwsim.cost.des) and keeps the analytic figure
    in `analytic_latency_s` for comparison.
    """
    if engine not in ENGINES:
        raise HwsimError(f"unknown cost engine {engine!r}; use one of {', '.join(ENGINES)}")
    repeat = {k: int(v) for k, v in (repeat or {}).items()}
    bad = {k: v for k, v in repeat.items() if v < 1}
    if bad:
        raise HwsimError(f"repeat counts must be >= 1, got {bad}")
    events, prices, pricer, spills = price_trace(trace, target, memory=memory)
    ops = op_rows(events, prices, target, repeat)
    per_inf = target.runtime_efficiency.per_inference_overhead_s
    overhead = per_inf * n_inferences(events, repeat)
    latency = float((ops["latency_s"] * ops["repeat"]).sum()) + overhead if len(ops) else overhead
    energy = float((ops["energy_j"] * ops["repeat"]).sum()) if len(ops) else 0.0
    energy += target.power.static_W * overhead
    result = CostResult(target.name, "analytic", latency, energy, ops, aggregate(ops, "phase"),
                        aggregate(ops, "layer"), pricer.flags, repeat, overhead, spills)
    if engine == "des":
        from hwsim.cost.des import simulate
        return simulate(trace, target, analytic=result, events=events, prices=prices,
                        **(des_options or {}))
    return result
