"""The plain-data summary of a simulation (what `--format json` prints and summary.json holds)."""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd


def _plain(x: Any) -> Any:
    """JSON-safe values: numpy scalars to Python, NaN/inf to None, paths to str."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def _frame(df: pd.DataFrame, index_name: str) -> list[dict]:
    return df.reset_index().rename(columns={"index": index_name}).to_dict(orient="records")


def summary_dict(sim, *, include_ops: bool = True) -> dict[str, Any]:
    """One JSON object: target, latency, energy, memory, compliance, per-op rows, metrics."""
    cost, mem = sim.cost, sim.memory
    out: dict[str, Any] = {
        "name": sim.name,
        "target": sim.target.name,
        "target_kind": sim.target.kind,
        "engine": cost.engine,
        "latency_s": cost.latency_s,
        "energy_j": cost.energy_j,
        "repeat": cost.repeat,
        "peak_bytes": dict(mem.peak_bytes),
        "required_bytes": dict(getattr(mem, "required_bytes", {}) or {}),
        "capacity_bytes": {n: m.capacity_bytes for n, m in sim.target.memories.items()},
        "arena_memory": getattr(mem, "arena_memory", None),
        "arena_bytes": dict(getattr(mem, "arena_bytes", {}) or {}),
        "peak_tensors": {m: [list(t) for t in ts] for m, ts in (getattr(mem, "peak_tensors", {}) or {}).items()},
        "bytes_moved": cost.bytes_by_level(),
        "spills": [{"level": s.level, "dest": s.dest, "overflow_bytes": s.overflow_bytes,
                    "message": s.message()} for s in cost.spills],
        "compliance": [v.as_dict() for v in sim.verdicts],
        "pass": sim.passed,
        "flags": list(cost.flags) + [{"kind": "memory", "key": "", "message": f}
                                     for f in (getattr(mem, "flags", []) or [])],
        "by_phase": _frame(cost.by_phase, "phase"),
        "by_layer": _frame(cost.by_layer, "layer"),
        "metrics": sim.metrics,
        "float_ops_by_phase": sim.float_ops_by_phase,
        "source": sim.source,
        "conventions": sim.conventions,
    }
    if cost.engine == "des":
        out["analytic_latency_s"] = cost.analytic_latency_s
        out["analytic_energy_j"] = cost.analytic_energy_j
        out["des"] = dict(cost.des)
    if include_ops:
        out["ops"] = cost.ops.to_dict(orient="records")
    return _plain(out)


def to_json(sim, *, indent: int | None = None) -> str:
    return json.dumps(summary_dict(sim), indent=indent)
