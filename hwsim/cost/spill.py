"""Decide where runtime tensors go when their memory level is too small (a spill).

Why: an activation arena larger than its SRAM does not make a model impossible on a part with a
bigger (slower) level behind it; it makes it slower. We price the overflowing share of that
level's runtime traffic at the next writable level and say so. The peak comes from the memory
engineer's `hwsim.memory.analyze` (the one liveness planner), never from a second formula here.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Order of memory kinds from fastest/closest to slowest/farthest (a ranking, not a hardware number).
LEVEL_ORDER = ("tcm", "cache", "sram", "dram", "hbm", "flash")


@dataclass(frozen=True)
class Spill:
    """`level` overflows by `overflow_bytes`; that share of its runtime traffic moves to `dest`.

    `peak_bytes` is what the level must hold (MemoryResult.required_bytes: arena + other tensors).
    """

    level: str
    dest: str | None
    peak_bytes: int
    capacity_bytes: int

    @property
    def overflow_bytes(self) -> int:
        return self.peak_bytes - self.capacity_bytes

    @property
    def fraction(self) -> float:
        return self.overflow_bytes / self.peak_bytes if self.peak_bytes else 0.0

    def message(self) -> str:
        where = f"spills {self.overflow_bytes} B ({self.fraction:.0%} of its runtime traffic) to {self.dest}" \
            if self.dest else "has no writable level to spill to; it does not fit"
        return f"{self.level} needs {self.peak_bytes} B > capacity {self.capacity_bytes} B: {where}"


def _runtime_levels(target) -> set[str]:
    from hwsim.target.model import WRITTEN_ROLES
    return {getattr(target.placement, role) for role in WRITTEN_ROLES}


def next_level(target, level: str) -> str | None:
    """The writable level after `level` in LEVEL_ORDER (same or slower kind, largest first)."""
    rank = LEVEL_ORDER.index(target.memories[level].kind)
    cands = [(LEVEL_ORDER.index(m.kind), -m.capacity_bytes, n) for n, m in target.memories.items()
             if n != level and m.kind != "flash" and LEVEL_ORDER.index(m.kind) >= rank]
    return min(cands)[2] if cands else None


def plan_spills(target, peak_bytes: dict[str, int]) -> list[Spill]:
    """One Spill per runtime-written level whose peak exceeds its capacity."""
    out = []
    for level in sorted(_runtime_levels(target)):
        peak = int(peak_bytes.get(level, 0))
        cap = target.memories[level].capacity_bytes
        if peak > cap:
            out.append(Spill(level, next_level(target, level), peak, cap))
    return out
