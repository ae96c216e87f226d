"""Workload registry: `hwsim simulate --workload W.yaml` dispatches on the spec's `algorithm`.

Why: the simulate command, the cost model and the report know nothing about ZOQO or BMPQ; an
algorithm module registers a runner that executes the workload in the emulator and returns its
trace and metrics. Costs are then computed from that trace like for any model.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwsim.errors import WorkloadError
from hwsim.trace import Trace


@dataclass
class WorkloadRun:
    """What a runner hands back to `hwsim simulate`."""

    name: str
    trace: Trace                       # events of one representative step (training) or one inference
    repeat: dict[str, int] = field(default_factory=dict)   # phase-or-"step" -> how many times it repeats
    metrics: dict[str, Any] = field(default_factory=dict)  # per-variant metrics, accuracy, etc.
    conventions: dict[str, str] = field(default_factory=dict)  # what each memory figure counts
    artifacts: dict[str, Path] = field(default_factory=dict)   # extra files (plots, tables) written


#: A runner gets (spec dict, target, options dict with e.g. out_dir, quick) and returns a WorkloadRun.
Runner = Callable[[dict, Any, dict], WorkloadRun]

_RUNNERS: dict[str, Runner] = {}
#: modules imported lazily to populate the registry (each calls `register_runner`).
_PROVIDERS = ("hwsim.algorithms.zoqo_workloads", "hwsim.algorithms.bmpq_workloads",
              "hwsim.workloads.inference", "hwsim.algorithms.attack_workloads")


def register_runner(algorithm: str) -> Callable[[Runner], Runner]:
    def deco(fn: Runner) -> Runner:
        _RUNNERS[algorithm] = fn
        return fn
    return deco


def get_runner(algorithm: str) -> Runner:
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise
    if algorithm not in _RUNNERS:
        known = ", ".join(sorted(_RUNNERS)) or "(none)"
        raise WorkloadError(f"unknown workload algorithm {algorithm!r}; known: {known}")
    return _RUNNERS[algorithm]
