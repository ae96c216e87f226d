"""Declarative, resumable budget what-if sweeps (spec → points → ILP per point → results)."""
from hwsim.sweep.runner import SweepOutcome, run_sweep
from hwsim.sweep.spec import SweepSpec, load_spec

__all__ = ["SweepOutcome", "SweepSpec", "load_spec", "run_sweep"]
