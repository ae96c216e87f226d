"""Workload runners for ZOQO: `zoqo-train`, `zoqo-lora`, `zoqo-memory`.

Why: `hwsim simulate --workload workloads/zoqo-*.yaml` must run the experiment in the emulator and
hand back the trace of ONE representative step (costed `repeat["step"]` times) plus per-variant
metrics. Spec keys other than the reserved ones below are the experiment's fields; a `quick:`
block (applied when options["quick"] or the spec's own `quick: true`) overrides them for tests.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hwsim.errors import WorkloadError
from hwsim.workloads import WorkloadRun, register_runner

RESERVED = {"name", "algorithm", "target", "budgets", "quick", "description", "quick_overrides"}


def _fields(spec: dict, options: dict | None) -> dict:
    """Experiment fields of a spec, with the `quick:` block merged in when a quick run is asked."""
    raw = {k: v for k, v in spec.items() if k not in RESERVED}
    quick = spec.get("quick")
    want_quick = bool((options or {}).get("quick")) or quick is True
    if want_quick and isinstance(quick, dict):
        raw.update(quick)
    elif want_quick and isinstance(spec.get("quick_overrides"), dict):
        raw.update(spec["quick_overrides"])
    if quick is not None and not isinstance(quick, (bool, dict)):
        raise WorkloadError(f"workload field quick: {quick!r} must be true/false or a mapping of overrides")
    return raw


def _write_json(out_dir: Any, name: str, data: dict) -> dict[str, Path]:
    if not out_dir:
        return {}
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    return {name: path}


@register_runner("zoqo-train")
def run_zoqo_train(spec: dict, target: Any, options: dict) -> WorkloadRun:
    from hwsim.algorithms.zoqo_experiment import run_experiment, spec_from_dict
    from hwsim.algorithms.zoqo_report import accuracy_table

    exp = spec_from_dict(_fields(spec, options))
    res = run_experiment(exp, progress=bool(options.get("progress", True)))
    res.trace.meta.update({"workload": spec.get("name", "zoqo-train"), "algorithm": "zoqo-train"})
    metrics = dict(res.metrics)
    metrics["table"] = accuracy_table(metrics)
    metrics["float_ops_by_phase"] = res.trace.float_ops_by_phase()
    artifacts = _write_json(options.get("out_dir"), "zoqo_train_metrics.json", metrics)
    return WorkloadRun(name=str(spec.get("name", "zoqo-train")), trace=res.trace, repeat={"step": exp.steps},
                       metrics=metrics, artifacts=artifacts,
                       conventions={"trace": f"one ZOQO step at b={exp.trace_bits or exp.bits[0]} "
                                             f"(batch {exp.batch}); costed ×{exp.steps} steps"})


@register_runner("zoqo-lora")
def run_zoqo_lora(spec: dict, target: Any, options: dict) -> WorkloadRun:
    from hwsim.algorithms.lora import run_lora_workload

    return run_lora_workload(spec, _fields(spec, options), target, options)


@register_runner("zoqo-memory")
def run_zoqo_memory(spec: dict, target: Any, options: dict) -> WorkloadRun:
    from hwsim.algorithms.zoqo_memory import run_memory_workload

    return run_memory_workload(spec, _fields(spec, options), target, options)
