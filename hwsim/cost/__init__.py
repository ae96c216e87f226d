"""Costs of a trace on a target: the analytic per-op model and the simpy discrete-event model.

Why: every latency / energy figure in hwsim is priced here from trace events and the Target's
numbers, so reports, Φ tables and sweeps agree. `cost_trace(trace, target, engine=...)` is the
entry point; `engine="des"` adds overlap of weight streaming with compute.
"""
from __future__ import annotations

from hwsim.cost.analytic import CostResult, cost_trace

__all__ = ["CostResult", "cost_trace"]
