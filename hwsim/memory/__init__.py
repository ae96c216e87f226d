"""Memory analysis from a trace: tensor liveness, peak per memory level, arena planners, spills.

Entry point: `analyze(trace, target) -> MemoryResult` (see `hwsim.memory.analysis`); TFLite-Micro's
persistent arena tail: `tflm_persistent(trace, build)`.
"""
from __future__ import annotations

from hwsim.memory.analysis import MemoryResult, analyze, arena_requests
from hwsim.memory.liveness import Lifetime, lifetimes, live_bytes, storage_bytes
from hwsim.memory.tflm_persistent import TflmPersistent, tflm_persistent
from hwsim.memory.planners import (
    PLANNERS,
    ArenaPlan,
    Request,
    best_fit,
    check_plan,
    greedy_tflm,
    lower_bound,
    optimal,
)

__all__ = [
    "MemoryResult", "analyze", "arena_requests", "Lifetime", "lifetimes", "live_bytes",
    "storage_bytes", "PLANNERS", "ArenaPlan", "Request", "best_fit", "check_plan", "greedy_tflm",
    "lower_bound", "optimal", "TflmPersistent", "tflm_persistent",
]
