"""A readable terminal table: summary, memory, top layers, flags and the PASS/FAIL compliance."""
from __future__ import annotations

import re

from hwsim.budgets import format_value
from hwsim.units import format_quantity


def _grid(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(headers), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def _t(x: float) -> str:
    return format_quantity(x, "time")


def _e(x: float) -> str:
    return format_quantity(x, "energy")


def _b(x: float) -> str:
    return format_quantity(x, "size") if x >= 1 else "0 B"


def short_name(name: str, width: int = 40) -> str:
    """TFLite tensor names join fused ops with ';' — show the last one, trimmed to `width`."""
    tail = str(name).split(";")[-1]
    return tail if len(tail) <= width else "..." + tail[-(width - 3):]


#: Path components that name what TF did inside a layer, not which layer it is; dropped from the
#: end of a TFLite tensor name (`model/depthwise_conv2d_3/BiasAdd/ReadVariableOp/resource1`).
_GENERIC_PART = re.compile(
    r"^(BiasAdd|ReadVariableOp|resource\d*|Conv2D\d*|depthwise\d*|MatMul\d*|Relu6?|Relu\d*|"
    r"FusedBatchNormV3|BatchNorm\d*|Add\d*|Identity\d*|Squeeze|Reshape\d*|AvgPool|MaxPool|Mean)$")


def distinctive_name(name: str) -> str:
    """The part of a layer name that says which layer it is.

    TFLite output tensor names join every fused op with ';' and end in TF's generic op
    suffixes (13 depthwise layers of VWW all end in `BiasAdd/ReadVariableOp/resource1`), so the
    last path component is not distinctive; the layer scope (`depthwise_conv2d_3`) is. ZOQO's
    forward passes prefix layers with `+`/`-` (the θ+εz and θ−εz queries): shown as `l20 (θ−)`.
    """
    name = str(name)
    if len(name) > 1 and name[0] in "+-" and name[1] not in "+-":
        return f"{name[1:]} (θ{'+' if name[0] == '+' else '−'})"
    if len(name) > 1 and name[-1] in "+-" and name[-2] not in "+-":
        return f"{name[:-1]} (θ{'+' if name[-1] == '+' else '−'})"
    parts = [p for p in name.split(";")[-1].split("/") if p]
    if not parts:
        return name
    while len(parts) > 1 and _GENERIC_PART.match(parts[-1]):
        parts.pop()
    if len(parts) > 1:
        parts = parts[1:]       # the model scope (`model`, `functional_1`) is the same everywhere
    return "/".join(parts)


def layer_labels(ops, width: int = 40) -> dict[str, str]:
    """Layer name -> unique readable label `#<first op index> <op kind> <distinctive part>`.

    The kind is omitted where the distinctive part already starts with it (`#3 depthwise_conv2d_1`).

    Why: plots and tables need one short line per layer; the full name stays in ops.csv and
    summary.json. The first op index makes labels unique by construction (two layers never
    start at the same op) and lets the reader find the rows in ops.csv. A layer made of
    several op kinds (a transformer block) shows its op count instead of one kind.
    `width` bounds the label length (the distinctive part is trimmed from the left).
    """
    if ops is None or len(ops) == 0:
        return {}
    layers = ops["layer"].tolist()
    kinds = ops["op"].tolist() if "op" in ops.columns else [""] * len(layers)
    first: dict[str, int] = {}
    kinds_of: dict[str, dict[str, None]] = {}
    count: dict[str, int] = {}
    for i, (layer, kind) in enumerate(zip(layers, kinds)):
        first.setdefault(layer, i)
        kinds_of.setdefault(layer, {})[str(kind)] = None
        count[layer] = count.get(layer, 0) + 1
    out = {}
    for layer, i in first.items():
        ks = list(kinds_of[layer])
        part = distinctive_name(layer)
        # the kind is left out where the name already starts with it (`depthwise_conv2d_3`)
        named = len(ks) == 1 and ks[0] and not part.startswith(ks[0])
        head = f"#{i} {ks[0]} " if named else f"#{i} "
        tail = "" if len(ks) == 1 else f", {count[layer]} ops"
        room = max(width - len(head) - len(tail), 8)
        if len(part) > room:
            part = "…" + part[-(room - 1):]
        out[layer] = head + part + tail
    return out


def render_table(sim, *, top: int = 12) -> str:
    cost, mem, t = sim.cost, sim.memory, sim.target
    lines = [f"hwsim simulate: {sim.name} on {t.name} ({t.kind}, engine: {cost.engine})", ""]
    lines.append(f"latency  {_t(cost.latency_s)}")
    lines.append(f"energy   {_e(cost.energy_j)}")
    if cost.repeat:
        lines.append(f"repeat   {cost.repeat}")
    if cost.engine == "des" and cost.analytic_latency_s is not None:
        gain = cost.des.get("overlap_gain_s", 0.0)
        pct = 100 * gain / cost.analytic_latency_s if cost.analytic_latency_s else 0.0
        if abs(pct) < 1e-6:
            what = "no overlap (equal to analytic)"
        else:
            what = (f"overlap gain {_t(gain)} ({pct:.1f}%)" if gain > 0
                    else f"contention loss {_t(-gain)} ({-pct:.1f}%)")
        why = "" if cost.des.get("dma_channels") else "; the target declares no dma unit, so no weight streaming"
        lines.append(f"analytic {_t(cost.analytic_latency_s)}  -> DES {what}"
                     f"  [{cost.des.get('events', 0)} events, {cost.des.get('dma_channels', 0)} DMA channels{why}]")
    if len(cost.by_phase) > 1 or (len(cost.by_phase) == 1 and cost.by_phase.index[0] != "forward"):
        lines += ["", "per phase"]
        rows = [[p, _t(r.latency_s), _e(r.energy_j), f"{int(r.n_ops)}", f"{int(sim.float_ops_by_phase.get(p, 0))}"]
                for p, r in cost.by_phase.iterrows()]
        lines += _grid(["phase", "latency", "energy", "ops run", "float ops"], rows, {1, 2, 3, 4})
    lines += ["", "memory"]
    required = getattr(mem, "required_bytes", {}) or {}
    rows = []
    for name, m in t.memories.items():
        need = required.get(name, mem.peak_bytes.get(name, 0))
        rows.append([name, _b(mem.peak_bytes.get(name, 0)), _b(need), _b(m.capacity_bytes),
                     f"{100 * need / m.capacity_bytes:.1f}%"])
    lines += _grid(["level", "peak live", "required", "capacity", "used"], rows, {1, 2, 3, 4})
    arena = getattr(mem, "arena_bytes", {}) or {}
    if arena:
        lines.append("arena (" + str(getattr(mem, "arena_memory", "")) + "): " +
                     ", ".join(f"{k} {_b(v)}" for k, v in arena.items()))
    ops = cost.ops
    if len(ops):
        by_layer = cost.by_layer.sort_values("latency_s", ascending=False).head(top)
        total = cost.latency_s or 1.0
        lines += ["", f"top {min(top, len(by_layer))} layers by latency"]
        units = ops.groupby("layer")["unit"].agg(lambda s: ",".join(dict.fromkeys(s)))
        bound = ops.groupby("layer")["bound"].agg(lambda s: ",".join(dict.fromkeys(s)))
        labels = layer_labels(ops)
        rows = [[labels.get(name, short_name(name)), units.get(name, ""), bound.get(name, ""), _t(r.latency_s), f"{100 * r.latency_s / total:.1f}%",
                 _e(r.energy_j), f"{int(r.macs)}"] for name, r in by_layer.iterrows()]
        lines += _grid(["layer", "unit", "bound", "latency", "share", "energy", "MACs"], rows, {3, 4, 5, 6})
    flags = list(cost.flags) + [{"kind": "memory", "message": f} for f in (getattr(mem, "flags", []) or [])]
    flags += [{"kind": "workload", "message": str(f)} for f in ((sim.metrics or {}).get("flags") or [])]
    if flags:
        lines += ["", "flags"]
        lines += [f"  [{f['kind']}] {f['message']}" for f in flags[:20]]
        if len(flags) > 20:
            lines.append(f"  ... {len(flags) - 20} more (see summary.json)")
    if sim.metrics:
        lines += ["", "metrics"]
        for k, v in sim.metrics.items():
            lines += _metric_lines(k, v)
    lines += ["", "compliance"]
    rows = [[("PASS" if v.passed else "FAIL"), v.budget, format_value(v.limit, v.unit),
             format_value(v.value, v.unit), format_value(v.margin, v.unit),
             f"{100 * v.margin / v.limit:+.1f}%" if v.limit else "", v.source] for v in sim.verdicts]
    lines += _grid(["", "budget", "limit", "value", "margin", "margin %", "from"], rows, {2, 3, 4, 5})
    lines.append("")
    lines.append("RESULT: " + ("PASS" if sim.passed else "FAIL (" + ", ".join(
        v.budget for v in sim.verdicts if not v.passed) + ")"))
    return "\n".join(lines)


def _metric_lines(key: str, value) -> list[str]:
    """A metric for the terminal: tables (multi-line text) in full, short values inline, long
    structures summarised (they are complete in summary.json)."""
    if isinstance(value, str) and "\n" in value:
        return [f"  {key}:"] + [f"    {line}" for line in value.splitlines()]
    if isinstance(value, float):
        return [f"  {key}: {value:.6g}"]
    text = f"{value}"
    if len(text) <= 100:
        return [f"  {key}: {text}"]
    size = f"{len(value)} entries" if isinstance(value, (dict, list, tuple)) else f"{len(text)} characters"
    return [f"  {key}: {size} (see summary.json)"]
