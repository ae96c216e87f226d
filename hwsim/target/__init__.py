"""Device profiles: the only source of hardware numbers in hwsim.

`load_target(name_or_path)` returns a validated `Target` (SI units); `list_targets(kind)` lists
profiles on the search path (repo `targets/` plus `$HWSIM_TARGETS_PATH`). See docs/profiles.md.
"""
from __future__ import annotations

from hwsim.target.loader import TargetEntry, check_profile, find_profile, list_targets, load_target, search_dirs
from hwsim.target.model import (
    FORMATS,
    PLACEMENT_ROLES,
    ComputeUnit,
    Memory,
    Numerics,
    OpCost,
    Placement,
    Power,
    RuntimeEfficiency,
    Target,
)

__all__ = [
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
    "TargetEntry",
    "check_profile",
    "find_profile",
    "list_targets",
    "load_target",
    "search_dirs",
]
