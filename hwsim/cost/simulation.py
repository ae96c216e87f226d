"""One simulation: trace + target + budgets -> costs, memory, compliance (no I/O).

Why: `hwsim simulate`, the benchmarks and library users need the same pipeline (memory analysis,
cost with either engine, device capacities and user budgets checked) without the CLI; the report
writers then only present a `Simulation`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hwsim.budgets import Budget, Verdict, check, device_budgets
from hwsim.cost.analytic import CostResult, cost_trace
from hwsim.trace import Trace


@dataclass
class Simulation:
    """Everything a report shows."""

    name: str
    target: Any
    trace: Trace
    cost: CostResult
    memory: Any                       # hwsim.memory.MemoryResult
    verdicts: list[Verdict]
    metrics: dict[str, Any] = field(default_factory=dict)
    float_ops_by_phase: dict[str, int] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)     # model path / workload file, runtime ...
    conventions: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)


def memory_values(memory, cost: CostResult) -> dict[str, float]:
    """Bytes each level must hold (arena + other tensors), moving spilled bytes to their destination."""
    required = dict(getattr(memory, "required_bytes", None) or memory.peak_bytes)
    for s in cost.spills:
        if s.dest:
            required[s.level] = required.get(s.level, 0) - s.overflow_bytes
            required[s.dest] = required.get(s.dest, 0) + s.overflow_bytes
    return {k: float(v) for k, v in required.items()}


def simulate_trace(trace: Trace, target, *, name: str = "", budgets: list[Budget] | None = None,
                   engine: str = "analytic", repeat: dict[str, int] | None = None,
                   metrics: dict | None = None, source: dict | None = None,
                   conventions: dict | None = None) -> Simulation:
    """Memory analysis, cost and compliance of `trace` on `target`."""
    from hwsim.memory import analyze

    memory = analyze(trace, target)
    cost = cost_trace(trace, target, engine=engine, repeat=repeat, memory=memory)
    # device capacities see spilled bytes moved to their destination level; user budgets see what
    # the model needs in each level (a spill does not make a too-small budget pass)
    after_spill = memory_values(memory, cost)
    needed = {k: float(v) for k, v in (getattr(memory, "required_bytes", None) or memory.peak_bytes).items()}
    for values in (after_spill, needed):
        values["latency"] = cost.latency_s
        values["energy"] = cost.energy_j
    verdicts = check(device_budgets(target), after_spill) + check(budgets or [], needed)
    conv = dict(getattr(memory, "conventions", {}) or {})
    conv.update({f"cost.{k}": v for k, v in cost.conventions.items()})
    conv.update(conventions or {})
    return Simulation(name or trace.meta.get("model", "trace"), target, trace, cost, memory, verdicts,
                      dict(metrics or {}), trace.float_ops_by_phase(), dict(source or {}), conv)
