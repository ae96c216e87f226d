"""Φ tables: what each layer costs on a target at each candidate bit width, from the cost model.

Why: BMPQ's ILP constraint Σ_l Φ(q_l) ≤ C must price layers as *the device* does (packing or byte
containers, memory placement, per-op throughput and energy). So Φ is never a formula here: for each
layer and bit width we build a small shapes-only trace of that layer (weights allocated as the
target stores them, one forward op at that width) and read Φ off `hwsim.cost.analytic.cost_trace`
and `hwsim.memory.analyze`. The only closed form is the paper's compression-ratio resource
(eqs. 10–12 count p_l·q_l bits by definition, independent of any device).

Resources (names accepted by `phi_table(resources=...)` and by budgets):
  weights       bytes of weights+biases in the weight memory, as the target stores them   (sum)
  <memory name> peak bytes of the layer's trace in that memory (e.g. flash, sram)        (sum for
                the weight memory, max otherwise: a peak is not additive across layers)
  activations   peak bytes of one layer's input+output activations in the activation memory (max)
  latency       seconds of one forward op of the layer                                    (sum)
  energy        joules of one forward op of the layer                                     (sum)
  compression   p_l·q_l weight bits (eqs. 10–12); budget given as a ratio r → 32·Σp/r    (sum)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from hwsim.errors import HwsimError
from hwsim.trace import TensorInfo, Trace

#: How each resource combines over layers: "sum" (additive) or "max" (a peak).
DEFAULT_AGGREGATE = {"weights": "sum", "latency": "sum", "energy": "sum", "compression": "sum",
                     "activations": "max"}
UNITS = {"weights": "B", "activations": "B", "latency": "s", "energy": "J", "compression": "bit"}


@dataclass
class PhiTable:
    """Φ_r(layer, bits) for every layer, candidate width and resource; reusable across solves.

    values[layer][bits][resource] -> float. `candidates[layer]` is ascending. `ties` and `fixed`
    carry the model's structural constraints (downsample ties, 16-bit first/last layers).
    """

    layers: list[str]
    candidates: dict[str, tuple[int, ...]]
    values: dict[str, dict[int, dict[str, float]]]
    resources: tuple[str, ...]
    aggregate: dict[str, str]
    units: dict[str, str]
    ties: list[tuple[str, str]] = field(default_factory=list)
    fixed: dict[str, int] = field(default_factory=dict)
    param_counts: dict[str, int] = field(default_factory=dict)
    target: str = ""
    build_time_s: float = 0.0
    offsets: dict[str, float] = field(default_factory=dict)   # per-model constants (per-inference overhead)

    def phi(self, layer: str, bits: int, resource: str) -> float:
        return self.values[layer][bits][resource]

    def total(self, bits: dict[str, int], resource: str) -> float:
        """The model's total of a resource: Σ (or max for peaks) over layers, plus its offset."""
        vals = [self.values[name][bits[name]][resource] for name in self.layers]
        agg = max(vals) if self.aggregate[resource] == "max" else float(sum(vals))
        return agg + self.offsets.get(resource, 0.0)

    def to_frame(self):
        import pandas as pd
        rows = [{"layer": n, "bits": b, **self.values[n][b]}
                for n in self.layers for b in self.candidates[n]]
        return pd.DataFrame(rows)

    @classmethod
    def from_arrays(cls, layers: Sequence[str], candidates: dict[str, Sequence[int]],
                    values: dict[str, dict[int, dict[str, float]]],
                    aggregate: dict[str, str] | None = None, **kw) -> "PhiTable":
        """Build a table from given numbers (tests, external profiling)."""
        resources = tuple(next(iter(next(iter(values.values())).values())).keys())
        agg = {r: (aggregate or {}).get(r, DEFAULT_AGGREGATE.get(r, "sum")) for r in resources}
        return cls(list(layers), {k: tuple(sorted(v)) for k, v in candidates.items()}, values,
                   resources, agg, {r: UNITS.get(r, "") for r in resources}, **kw)


# ---- per-layer shapes-only traces --------------------------------------------------------------
def _fmt(bits: int) -> str:
    return f"int{bits}"


def phi_key(name: str, bits: int) -> str:
    """Layer label of one (layer, width) op inside the Φ trace."""
    return f"{name}@{bits}"


def emit_layer_op(trace: Trace, spec, bits: int, batch: int = 1, *, label: str | None = None) -> None:
    """One inference op of the layer at `bits`, with its own tensors live only around it.

    Weights and input activations at `bits` (BMPQ quantizes a layer's input with its weight width);
    the output is requantized in the op (TFLite-style fused requantization) to the same width.
    """
    label = label or spec.name
    w = TensorInfo(f"{label}.weight", spec.weight_shape, bits, "weight", _fmt(bits))
    x = TensorInfo(f"{label}.input", spec.input_shape(batch), bits, "activation", _fmt(bits))
    y = TensorInfo(f"{label}.output", spec.output_shape(batch), bits, "activation", _fmt(bits))
    tensors = [w]
    if spec.bias:
        tensors.append(TensorInfo(f"{label}.bias", (spec.out_channels,), 32, "bias", "int32"))
    tensors += [x, y]
    for t in tensors:
        trace.alloc(t)
    op = "conv2d" if spec.kind == "conv" else "fully_connected"
    depthwise = spec.kind == "conv" and spec.groups > 1 and spec.groups == spec.in_channels
    trace.op("depthwise_conv2d" if depthwise else op, label, [x] + tensors[:-2], [y],
             {("dw_mac" if depthwise else "mac", _fmt(bits)): spec.macs * batch}, layer=label,
             bits=bits)
    for t in tensors:
        trace.free(t)


def layer_forward_trace(spec, bits: int, batch: int = 1) -> Trace:
    """The trace of one layer alone at `bits` (for inspection and tests)."""
    trace = Trace()
    trace.meta.update(layer=spec.name, bits=bits, purpose="phi")
    emit_layer_op(trace, spec, bits, batch)
    return trace


def phi_trace(specs, candidates: dict[str, tuple[int, ...]], batch: int = 1) -> Trace:
    """All (layer, width) ops, each in its own step with only its own tensors live.

    One trace → one `memory.analyze` and one `cost_trace` call for the whole table, instead of one
    per entry (the cost model builds a DataFrame per call; ~10 ms each).
    """
    trace = Trace()
    trace.meta.update(purpose="phi")
    k = 0
    for spec in specs:
        for b in candidates[spec.name]:
            with trace.step(k):
                emit_layer_op(trace, spec, b, batch, label=phi_key(spec.name, b))
            k += 1
    return trace


def phi_table(model_layers, target, bits: Iterable[int] = (2, 4, 8),
              resources: Iterable[str] = ("weights", "latency"), *, fixed: dict[str, int] | None = None,
              ties: list[tuple[str, str]] | None = None, use_model_fixed: bool = True,
              batch: int = 1, engine: str = "analytic") -> PhiTable:
    """Cost every layer at every candidate width on `target` for the requested resources.

    `model_layers`: a ModelSpec or a list of LayerSpec. Layers with a fixed width (the model's
    `fixed_bits` when `use_model_fixed`, or `fixed=`) get only that width. Values come from the
    memory model (bytes per kind/level live at the layer's op, as the target stores them) and the
    cost model (latency/energy of the op); the per-inference overhead is a constant offset.
    Spills are those of the largest candidate layer (the trace's peak), as in a full inference.
    """
    t0 = time.perf_counter()
    specs = list(getattr(model_layers, "layers", model_layers))
    resources = tuple(dict.fromkeys(resources))
    support = tuple(sorted(set(int(b) for b in bits)))
    if not support or min(support) < 1:
        raise HwsimError(f"phi: bit widths must be positive integers, got {bits}")
    fixed_all = {s.name: s.fixed_bits for s in specs if use_model_fixed and s.fixed_bits}
    fixed_all.update(fixed or {})
    tie_list = list(ties) if ties is not None else [(s.name, s.tie) for s in specs if s.tie]
    memories = set(getattr(target, "memories", {}) or {})
    weight_mem = target.placement.weights if target is not None else None
    for r in resources:
        if r not in DEFAULT_AGGREGATE and r not in memories:
            raise HwsimError(f"phi: unknown resource {r!r}; use weights, activations, latency, energy, "
                             f"compression or a memory of target {getattr(target, 'name', '?')}: "
                             f"{', '.join(sorted(memories)) or '(no target given)'}")
        if r != "compression" and target is None:
            raise HwsimError(f"phi: resource {r!r} needs a target (only compression works without one)")
    aggregate = {r: DEFAULT_AGGREGATE.get(r, "sum" if r == weight_mem else "max") for r in resources}
    units = {r: UNITS.get(r, "B") for r in resources}
    candidates = {s.name: ((int(fixed_all[s.name]),) if s.name in fixed_all else support) for s in specs}
    values: dict[str, dict[int, dict[str, float]]] = {s.name: {b: {} for b in candidates[s.name]}
                                                      for s in specs}
    offsets: dict[str, float] = {}
    hw = [r for r in resources if r != "compression"]
    if hw:
        trace = phi_trace(specs, candidates, batch)
        from hwsim.memory import analyze
        mem = analyze(trace, target, planners=())      # peaks and buffers only; no arena plans
        # bytes live at each op step, by kind and by memory level (as the target stores them)
        n = len(trace.ops())
        by_kind: dict[str, list[int]] = {}
        by_level: dict[str, list[int]] = {}
        for buf in mem.buffers:
            for step in range(buf.first, buf.last + 1):
                by_kind.setdefault(buf.kind, [0] * n)[step] += buf.nbytes
                by_level.setdefault(buf.memory, [0] * n)[step] += buf.nbytes
        cost = None
        if any(r in ("latency", "energy") for r in hw):
            from hwsim.cost.analytic import cost_trace
            cost = cost_trace(trace, target, engine=engine, memory=mem)
            per_layer = {c: dict(zip(cost.ops["layer"], cost.ops[c] * cost.ops["repeat"]))
                         for c in ("latency_s", "energy_j")}
            overhead = target.runtime_efficiency.per_inference_overhead_s
            offsets = {"latency": overhead, "energy": target.power.static_W * overhead}
        k = 0
        for spec in specs:
            for b in candidates[spec.name]:
                row = values[spec.name][b]
                for r in hw:
                    if r == "weights":
                        row[r] = float(by_kind.get("weight", [0] * n)[k] + by_kind.get("bias", [0] * n)[k])
                    elif r == "activations":
                        row[r] = float(by_kind.get("activation", [0] * n)[k])
                    elif r in ("latency", "energy"):
                        col = "latency_s" if r == "latency" else "energy_j"
                        row[r] = float(per_layer[col][phi_key(spec.name, b)])
                    else:
                        row[r] = float(by_level.get(r, [0] * n)[k])
                k += 1
        offsets = {r: v for r, v in offsets.items() if r in resources}
    for spec in specs:
        for b in candidates[spec.name]:
            if "compression" in resources:
                values[spec.name][b]["compression"] = float(spec.weight_count * b)
            values[spec.name][b] = {r: values[spec.name][b][r] for r in resources}
    return PhiTable([s.name for s in specs], candidates, values, resources, aggregate, units,
                    ties=tie_list, fixed=fixed_all,
                    param_counts={s.name: s.weight_count for s in specs},
                    target=getattr(target, "name", "") if target is not None else "",
                    build_time_s=time.perf_counter() - t0, offsets=offsets)


def compression_budget(phi: PhiTable, ratio: float) -> float:
    """Budget on the `compression` resource for r^32 ≥ ratio (eqs. 10–12, weights only)."""
    if ratio <= 0:
        raise HwsimError(f"compression budget must be a positive ratio like 10x, got {ratio}")
    return 32.0 * sum(phi.param_counts[n] for n in phi.layers) / float(ratio)


_DIM_OF_UNIT = {"B": "size", "s": "time", "J": "energy"}


def parse_compression_ratio(value) -> float:
    """`10x` / `10` → 10.0 (the r^32 target of eqs. 10–12); must be a positive number."""
    text = str(value).strip().lower().removesuffix("x").strip()
    try:
        ratio = float(text)
    except ValueError:
        raise HwsimError(f"budget compression={value!r}: write a ratio such as 10x") from None
    if not ratio > 0:
        raise HwsimError(f"budget compression={value!r}: the ratio must be positive, e.g. 10x")
    return ratio


def parse_budget(resource: str, value, phi: PhiTable | None = None, *, units: dict[str, str] | None = None
                 ) -> float:
    """One budget in the table's units: `1MiB`/`512 KiB` (memory), `20ms`, `1mJ`, `10x` (ratio).

    `compression=10x` becomes the weight-bit budget of eqs. 10–12 (needs `phi`). Plain numbers are
    taken in SI units (bytes, seconds, joules).
    """
    from hwsim.units import UnitError, parse_quantity
    unit = (units or (phi.units if phi else {})).get(resource, UNITS.get(resource, "B"))
    if resource == "compression":
        ratio = parse_compression_ratio(value)
        if phi is None:
            raise HwsimError("budget compression=…x needs the model's parameter counts")
        return compression_budget(phi, ratio)
    if isinstance(value, (int, float)):
        if value < 0:
            raise HwsimError(f"budget {resource}={value}: must be ≥ 0")
        return float(value)
    dim = _DIM_OF_UNIT.get(unit, "size")
    try:
        return float(parse_quantity(str(value), dim, minimum="nonnegative"))
    except UnitError as err:
        raise HwsimError(f"budget {resource}={value!r}: {err}") from None


def parse_budget_items(items: Iterable[str]) -> dict[str, str]:
    """`["weights=1MiB", "latency=20ms"]` → {"weights": "1MiB", ...} (values parsed later)."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise HwsimError(f"--budget {item!r}: write KIND=VALUE, e.g. weights=1MiB, latency=20ms, "
                             "energy=1mJ or compression=10x")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k or not v.strip():
            raise HwsimError(f"--budget {item!r}: write KIND=VALUE, e.g. weights=1MiB")
        out[k] = v.strip()
    return out
