"""Sweep specs: which axes, how they combine, and the points they expand to.

Why: "what if the budget (or the device) changes?" is answered declaratively. A spec names the
axes — targets, models, support bit sets, budgets per resource (lists or ranges) — and how they
combine (cartesian product or zip). Every point gets a content hash of its *full* configuration
(the resolved profile contents, not just the target's name) so results survive renames and edits.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwsim.errors import WorkloadError

SPEC_VERSION = 1


class RangeAxis(BaseModel):
    """`{start: 1MiB, stop: 6MiB, num: 50, scale: linear|log}` (both ends included)."""

    model_config = ConfigDict(extra="forbid")
    start: Any
    stop: Any
    num: int = Field(gt=0)
    scale: Literal["linear", "log"] = "linear"


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "sweep"
    description: str = ""
    combine: Literal["product", "zip"] = "product"
    targets: list[str] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    bits: list[list[int]] = Field(default_factory=lambda: [[2, 4, 8]], min_length=1)
    budgets: dict[str, list[Any] | RangeAxis] = Field(min_length=1)
    sensitivity: str = "uniform"
    objective: Literal["rank", "bits"] = "rank"
    metrics: list[str] = Field(default_factory=lambda: ["objective"])
    fixed_bits: int | None = 16

    @field_validator("bits")
    @classmethod
    def _bits_sorted(cls, v: list[list[int]]) -> list[list[int]]:
        for bitset in v:
            if not bitset or any(b < 1 or b > 32 for b in bitset):
                raise ValueError(f"bit set {bitset} must list widths between 1 and 32")
        return [sorted(set(b)) for b in v]


@dataclass(frozen=True)
class Point:
    """One sweep point: everything needed to evaluate it, plus its content hash."""

    index: int
    target: str
    model: str
    bits: tuple[int, ...]
    budgets: tuple[tuple[str, float], ...]   # resource -> limit in SI units (bytes, s, J) or ratio
    point_id: str = field(default="", compare=False)

    @property
    def family(self) -> tuple:
        """Points sharing a family share one Φ table."""
        return (self.target, self.model, self.bits)


def load_spec(path: Path) -> SweepSpec:
    path = Path(path)
    if path.is_dir():
        raise WorkloadError(f"{path}: is a directory, expected a file (a sweep spec YAML)")
    if not path.exists():
        raise WorkloadError(f"{path}: sweep spec not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise WorkloadError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise WorkloadError(f"{path}: a sweep spec is a mapping with targets, models, budgets")
    data.pop("algorithm", None)
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as err:
        problems = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                    for e in err.errors()]
        raise WorkloadError(f"{path}: invalid sweep spec", problems=problems) from None


def _axis_values(resource: str, axis: list[Any] | RangeAxis, parse) -> list[float]:
    if isinstance(axis, RangeAxis):
        lo, hi = parse(resource, axis.start), parse(resource, axis.stop)
        if axis.scale == "log":
            if lo <= 0 or hi <= 0:
                raise WorkloadError(f"budgets.{resource}: a log range needs positive ends")
            values = np.geomspace(lo, hi, axis.num)
        else:
            values = np.linspace(lo, hi, axis.num)
        return [float(v) for v in values]
    return [parse(resource, v) for v in axis]


def expand(spec: SweepSpec, parse_budget, profile_digest) -> list[Point]:
    """All points of the spec, each with its content-hash `point_id`.

    `parse_budget(resource, value) -> float` converts `1MiB`/`20ms`/`10x` to SI floats;
    `profile_digest(target) -> str` hashes the resolved profile contents.
    """
    resources = list(spec.budgets)
    budget_axes = [_axis_values(r, spec.budgets[r], parse_budget) for r in resources]
    axes = [spec.targets, spec.models, [tuple(b) for b in spec.bits], *budget_axes]
    if spec.combine == "product":
        combos = itertools.product(*axes)
    else:
        lengths = {len(a) for a in axes if len(a) > 1}
        if len(lengths) > 1:
            raise WorkloadError(f"combine: zip needs axes of equal length (or length 1); got lengths "
                                f"{sorted(len(a) for a in axes)}")
        n = max((len(a) for a in axes), default=1)
        combos = zip(*[a * n if len(a) == 1 else a for a in axes])
    digests: dict[str, str] = {}
    points = []
    for i, combo in enumerate(combos):
        target, model, bits, *limits = combo
        if target not in digests:
            digests[target] = profile_digest(target)
        budgets = tuple(zip(resources, (float(v) for v in limits)))
        config = {"v": SPEC_VERSION, "profile": digests[target], "model": model, "bits": list(bits),
                  "budgets": budgets, "sensitivity": spec.sensitivity, "objective": spec.objective,
                  "fixed_bits": spec.fixed_bits}
        pid = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]
        points.append(Point(i, target, model, tuple(bits), budgets, pid))
    return points
