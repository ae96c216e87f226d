"""Device profiles: the only source of hardware numbers in hwsim.

`load_target(name_or_path)` returns a validated `Target` (SI units); `list_targets(kind)` lists
profiles on the search path (repo `targets/` plus `$HWSIM_TARGETS_PATH`). See docs/profiles.md.
"""
from __future__ import annotations

from hwsim.target.loader import TargetEntry, check_profile, find_profile, list_targets, load_target, search_dirs
_MODEL_NAMES = (
    "FORMATS",
    "PLACEMENT_ROLES",
    "ComputeUnit",
    "Memory",
    "Numerics",
    "OpCost",
    "Placement",
    "Power",
    "RuntimeEfficiency",
    "Target",
)


def __getattr__(name: str):
    """The schema classes load on first use: importing them builds the pydantic models (~0.2 s with
    pydantic itself), which `hwsim targets list` and `--help` never need."""
    if name in _MODEL_NAMES:
        from hwsim.target import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_MODEL_NAMES,
    "TargetEntry",
    "check_profile",
    "find_profile",
    "list_targets",
    "load_target",
    "search_dirs",
]
