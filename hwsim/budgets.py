"""Budgets (`sram=256KiB`, `latency=20ms`, `energy=1mJ`) and the compliance check against them.

Why: `hwsim simulate` gates CI, so a budget must parse strictly (units required, wrong dimension
is an error naming the allowed kinds) and every verdict must show its limit, value and margin.
The device's own capacities are always checked, whether or not the user names a budget.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from hwsim.errors import HwsimError
from hwsim.units import UnitError, format_quantity, parse_quantity, parse_size_bytes

#: Non-memory budget kinds and the unit dimension their values carry.
METRIC_KINDS = {"latency": "time", "energy": "energy"}


@dataclass(frozen=True)
class Budget:
    """One limit: `kind` is a memory level name, "latency" or "energy"; `limit` in SI units."""

    kind: str
    limit: float
    text: str = ""
    source: str = "user"     # "user" (--budget / workload) or "device" (capacity)

    @property
    def dim(self) -> str:
        return METRIC_KINDS.get(self.kind, "size")


@dataclass(frozen=True)
class Verdict:
    """A budget checked against a value: margin = limit - value (positive = headroom)."""

    budget: str
    limit: float
    value: float
    margin: float
    passed: bool
    source: str
    unit: str

    def as_dict(self) -> dict:
        d = asdict(self)
        d["pass"] = d.pop("passed")
        d["margin_pct"] = (100.0 * self.margin / self.limit) if self.limit else None
        return d


def allowed_kinds(target) -> list[str]:
    return list(target.memories) + list(METRIC_KINDS)


def parse_budget(text: str, target) -> Budget:
    """Parse `KIND=VALUE` (memory levels take sizes, latency a time, energy an energy)."""
    kinds = allowed_kinds(target)
    if not isinstance(text, str) or "=" not in text:
        raise HwsimError(f"budget {text!r} is not KIND=VALUE; allowed kinds on {target.name}: "
                         f"{', '.join(kinds)} (e.g. sram=256KiB, latency=20ms, energy=1mJ)")
    kind, _, value = (s.strip() for s in text.partition("="))
    if kind not in kinds:
        raise HwsimError(f"budget {text!r}: unknown kind {kind!r}; allowed kinds on {target.name}: "
                         f"{', '.join(kinds)}")
    return _budget(kind, value, text, target)


def _budget(kind: str, value, text: str, target, source: str = "user") -> Budget:
    dim = METRIC_KINDS.get(kind, "size")
    try:
        limit = float(parse_size_bytes(value)) if dim == "size" else parse_quantity(value, dim)
    except UnitError as err:
        raise HwsimError(f"budget {text!r}: {err}; allowed kinds on {target.name}: "
                         f"{', '.join(allowed_kinds(target))}") from None
    return Budget(kind, limit, text, source)


def parse_budgets(texts: Iterable[str], target) -> list[Budget]:
    return [parse_budget(t, target) for t in texts]


def budgets_from_spec(spec_budgets: dict | None, target, where: str = "workload") -> list[Budget]:
    """Budgets written in a workload YAML as a mapping `{sram: 256 KiB, latency: 20 ms}`."""
    out = []
    for kind, value in (spec_budgets or {}).items():
        text = f"{kind}={value}"
        if kind not in allowed_kinds(target):
            raise HwsimError(f"{where}: budgets.{kind}: unknown kind; allowed kinds on {target.name}: "
                             f"{', '.join(allowed_kinds(target))}")
        out.append(_budget(kind, value, text, target, source="workload"))
    return out


def device_budgets(target) -> list[Budget]:
    """Every memory level's capacity, checked always."""
    return [Budget(name, float(m.capacity_bytes), f"{name}={format_quantity(m.capacity_bytes, 'size')}",
                   "device") for name, m in target.memories.items()]


def check(budgets: Iterable[Budget], values: dict[str, float]) -> list[Verdict]:
    """Verdicts for budgets whose kind has a value (memory: bytes the level must hold)."""
    out = []
    for b in budgets:
        if b.kind not in values:
            continue
        v = float(values[b.kind])
        unit = {"size": "B", "time": "s", "energy": "J"}[b.dim]
        label = b.kind if b.source != "device" else f"{b.kind} (capacity)"
        out.append(Verdict(label, b.limit, v, b.limit - v, v <= b.limit, b.source, unit))
    return out


def format_value(v: float, unit: str) -> str:
    dim = {"B": "size", "s": "time", "J": "energy"}[unit]
    if dim == "size":
        return format_quantity(v, "size") if abs(v) >= 1 else f"{v:g} B"
    return format_quantity(v, dim)
