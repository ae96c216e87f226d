"""The three report plots: per-layer breakdown, memory over time, roofline.

Why: the questions "which layer costs what", "when is memory at its peak and who holds it" and
"is this op compute- or bandwidth-bound on this part" are each answered faster by one picture.
Every value plotted comes from the Simulation; roofs come from the Target.
"""
from __future__ import annotations

import gc
from pathlib import Path

MAX_LAYERS = 40
#: Fixed title position (axes fraction): without it matplotlib measures every tick label of the
#: top axis on each draw just to place the title, which costs more than drawing the plot.
TITLE_Y = 1.0

from hwsim.report.table import distinctive_name, layer_labels, short_name  # noqa: E402
from hwsim.units import format_quantity  # noqa: E402

#: Display units per dimension, largest first: (name, size of one unit in SI base units).
AXIS_UNITS = {
    "time": (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)),
    "energy": (("MJ", 1e6), ("kJ", 1e3), ("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9)),
    "size": (("TiB", 2.0 ** 40), ("GiB", 2.0 ** 30), ("MiB", 2.0 ** 20), ("KiB", 2.0 ** 10), ("B", 1.0)),
}
#: Head room right of the longest bar (fraction of the axis) so no bar touches the frame.
BAR_MARGIN = 0.06


def axis_unit(max_abs: float, dim: str) -> tuple[str, float]:
    """The unit an axis showing values up to `max_abs` (SI base units) should use.

    Why: one fixed unit gives `4000 ms` or a `1e9` offset on a data-centre run and `0.0001`
    on a microcontroller; the largest unit in which the maximum is still >= 1 keeps tick
    labels between 1 and 1000 (1024 for sizes). Zero / NaN fall back to the base unit.
    """
    units = AXIS_UNITS[dim]
    m = abs(float(max_abs)) if max_abs == max_abs else 0.0
    if m == 0.0:
        return next((u for u in units if u[1] == 1.0))
    for name, scale in units:
        if m >= scale:
            return name, scale
    return units[-1]


def _plain_ticks(ax, axis: str) -> None:
    """Tick labels as plain numbers: no `1e9` offset text, no scientific notation."""
    ax.ticklabel_format(axis=axis, style="plain", useOffset=False)


class _Figures:
    """pyplot-free figure factory (Agg canvas only): no figure manager, no global state."""

    @staticmethod
    def subplots(*args, **kw):
        from matplotlib.figure import Figure

        figsize = kw.pop("figsize", None)
        fig = Figure(figsize=figsize)
        axes = fig.subplots(*args, **kw)
        return fig, axes

    @staticmethod
    def close(fig) -> None:
        """Nothing to release: without pyplot no global registry holds the figure."""


def _plt():
    return _Figures


def _save(fig, path: Path, dpi: int = 80) -> None:
    """Render one report PNG. Why these settings: the report's cost is almost all Agg text
    layout and PNG encoding. Unhinted glyphs (`text.hinting: none`) render ~17 % faster on the
    three report plots (measured, matplotlib 3.11) and read the same at 80 dpi; zlib level 1
    trades a few KB of file size for encoding time."""
    import matplotlib

    with matplotlib.rc_context({"text.hinting": "none"}):
        fig.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 1})


def _hbars(ax, y, width, left, color: str, label: str, height: float = 0.8):
    """Horizontal bars as one PolyCollection (what `barh` draws, without one Rectangle artist per bar)."""
    import numpy as np
    from matplotlib.collections import PolyCollection

    y = np.asarray(y, dtype=float)
    x0 = np.asarray(left, dtype=float) * np.ones_like(y)
    x1 = x0 + np.asarray(width, dtype=float)
    y0, y1 = y - height / 2, y + height / 2
    verts = np.stack([np.stack([x0, y0], 1), np.stack([x0, y1], 1), np.stack([x1, y1], 1),
                      np.stack([x1, y0], 1)], 1)
    coll = PolyCollection(verts, facecolors=color, edgecolors="none", linewidths=0, label=label)
    coll.sticky_edges.x[:] = list(x0)            # like barh: the value axis starts at the bars' base
    ax.add_collection(coll, autolim=True)
    ax.autoscale_view()
    return coll


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def _unicode_log_label(label: str) -> str:
    """`$\\mathdefault{2\\times10^{-3}}$` -> `2×10⁻³`: same text without a mathtext parse per label.

    Anything this does not recognise is returned unchanged (matplotlib then renders it as before).
    """
    if not (label.startswith("$\\mathdefault{") and label.endswith("}$")):
        return label
    body = label[len("$\\mathdefault{"):-2].replace("\\times", "×")
    head, sep, exp = body.partition("^{")
    if sep:
        if not exp.endswith("}") or not exp[:-1].lstrip("-").isdigit():
            return label
        body = head + exp[:-1].translate(_SUPERSCRIPT)
    if any(c in body for c in "\\{}^$_"):
        return label
    return body.replace("-", "\u2212")  # mathtext draws a leading '-' as a minus sign


def _unicode_formatter(inner):
    """Wrap a (log) tick formatter so its mathtext labels come out as plain unicode text."""
    from matplotlib.ticker import Formatter

    class UnicodeLabels(Formatter):
        def set_axis(self, axis):
            super().set_axis(axis)
            inner.set_axis(axis)

        def set_locs(self, locs):
            super().set_locs(locs)
            inner.set_locs(locs)

        def __call__(self, x, pos=None):
            return _unicode_log_label(inner(x, pos))

    return UnicodeLabels()


def _light_log_axes(ax) -> None:
    """Log-axis decorations at a fraction of matplotlib's cost, looking the same.

    Call after the limits and layout are final. Minor ticks: matplotlib makes a full Tick (two
    lines, two texts, a grid line) per minor tick, ~60 of them per log-log plot, which was most
    of the roofline's time; when no minor tick carries a label (the axis spans a few decades) the
    same locations (`get_minorticklocs`: overlaps with major ticks removed) are drawn as one
    LineCollection with the rc size/width/colour/direction. Labels: plain unicode (`10⁻¹`)
    instead of one mathtext parse per label.
    """
    import matplotlib as mpl
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import NullLocator

    pos = ax.get_position()
    w_in, h_in = ax.figure.get_size_inches()
    rc = mpl.rcParams
    for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
        if axis.get_scale() != "log":
            continue
        axis.set_major_formatter(_unicode_formatter(axis.get_major_formatter()))
        lo, hi = sorted(axis.get_view_interval())
        locs = np.asarray(axis.get_minorticklocs(), dtype=float)
        locs = locs[(locs >= lo * (1 - 1e-10)) & (locs <= hi * (1 + 1e-10))]
        minor_fmt = axis.get_minor_formatter()
        if any(minor_fmt.format_ticks(list(locs))):   # labelled minor ticks: keep matplotlib's
            axis.set_minor_formatter(_unicode_formatter(minor_fmt))
            continue
        axis.set_minor_locator(NullLocator())
        size_pt, width = rc[f"{name}tick.minor.size"], rc[f"{name}tick.minor.width"]
        extent_in = pos.height * h_in if name == "x" else pos.width * w_in
        length = size_pt / 72.0 / extent_in                  # tick length in axes fraction
        inner, outer = {"out": (0.0, length), "in": (-length, 0.0)}.get(
            rc[f"{name}tick.direction"], (-length, length))
        if name == "x":
            segs = [((x, -outer), (x, -inner)) for x in locs]
            transform = ax.get_xaxis_transform()
        else:
            segs = [((-outer, y), (-inner, y)) for y in locs]
            transform = ax.get_yaxis_transform()
        ax.add_collection(LineCollection(segs, colors=rc[f"{name}tick.color"], linewidths=width,
                                         transform=transform, clip_on=False), autolim=False)


def layer_breakdown(sim, path: Path) -> Path:
    """Horizontal bars: latency per layer split by bound part/overhead, energy split by source."""
    plt = _plt()
    ops = sim.cost.ops
    if ops.empty:
        return _empty(path, "no ops")
    w = ops.assign(
        busy=ops[["compute_s", "memory_s"]].max(axis=1) * ops["repeat"],
        over=ops["overhead_s"] * ops["repeat"],
        ce=ops["compute_energy_j"] * ops["repeat"], me=ops["memory_energy_j"] * ops["repeat"],
        se=ops["static_energy_j"] * ops["repeat"])
    g = w.groupby("layer", sort=False)[["busy", "over", "ce", "me", "se"]].sum()
    if len(g) > MAX_LAYERS:
        g = g.loc[(g.busy + g.over).sort_values(ascending=False).index[:MAX_LAYERS]]
    g = g.iloc[::-1]
    height = max(2.5, 0.22 * len(g) + 1.2)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, height))
    y = range(len(g))
    t_unit, t_scale = axis_unit((g.busy + g.over).max(), "time")
    e_unit, e_scale = axis_unit((g.ce + g.me + g.se).max(), "energy")
    busy, over = g.busy.to_numpy() / t_scale, g.over.to_numpy() / t_scale
    ce, me, se = g.ce.to_numpy() / e_scale, g.me.to_numpy() / e_scale, g.se.to_numpy() / e_scale
    labels = layer_labels(ops, 36)
    _hbars(a1, y, busy, 0.0, "#4C72B0", "max(compute, memory)")
    _hbars(a1, y, over, busy, "#DD8452", "overhead")
    a1.set_xlabel(f"latency ({t_unit})")
    a1.set_yticks(list(y), [labels.get(n, short_name(n, 32)) for n in g.index], fontsize=7)
    a1.legend(fontsize=7, loc="lower right")
    _hbars(a2, y, ce, 0.0, "#55A868", "compute")
    _hbars(a2, y, me, ce, "#C44E52", "memory")
    _hbars(a2, y, se, ce + me, "#8172B3", "static")
    a2.set_xlabel(f"energy ({e_unit})")
    for ax, top in ((a1, (busy + over).max()), (a2, (ce + me + se).max())):
        if top > 0:
            ax.set_xlim(0.0, top * (1 + BAR_MARGIN))
        _plain_ticks(ax, "x")
    a2.set_yticks([])
    a2.set_ylim(a1.get_ylim())
    a2.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{sim.name} on {sim.target.name}: per-layer latency and energy ({sim.cost.engine})", fontsize=9)
    fig.subplots_adjust(left=0.22, right=0.98, bottom=0.8 / height, top=1 - 0.45 / height, wspace=0.05)
    _save(fig, path)
    plt.close(fig)
    return path


def memory_timeline(sim, path: Path) -> Path:
    """Live bytes per memory level over op index, capacities dashed, the peak and its tensors marked."""
    plt = _plt()
    mem = sim.memory
    tl = getattr(mem, "timeline", None)
    if tl is None or tl.empty:
        return _empty(path, "no memory timeline")
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(tl))
    drawn = []                                  # (name, column, capacity drawn?)
    for name in sim.target.memories:
        col = f"live_{name}"
        if col not in tl or not tl[col].any():
            continue
        cap = sim.target.memories[name].capacity_bytes
        drawn.append((name, col, cap <= 4 * max(float(tl[col].max()), 1024.0)))
    top = max([float(tl[c].max()) for _, c, _ in drawn]
              + [float(sim.target.memories[n].capacity_bytes) for n, _, d in drawn if d] + [0.0])
    unit, scale = axis_unit(top, "size")
    peaks = []
    for name, col, show_cap in drawn:
        line, = ax.plot(x, tl[col] / scale, label=f"{name} live", lw=1.5)
        if show_cap:
            ax.axhline(sim.target.memories[name].capacity_bytes / scale, ls="--", lw=1,
                       color=line.get_color(), label=f"{name} capacity")
        at = (getattr(mem, "peak_step", {}) or {}).get(name)
        if at is not None and at < len(tl):
            ax.plot([at], [tl[col].iloc[at] / scale], "o", color=line.get_color())
            tensors = (getattr(mem, "peak_tensors", {}) or {}).get(name, [])[:3]
            label = "\n".join(f"{_tensor_label(t[0])} ({format_quantity(float(t[2]), 'size')})"
                              for t in tensors)
            text = f"peak {format_quantity(float(tl[col].iloc[at]), 'size')}\n{label}".rstrip()
            peaks.append((at, tl[col].iloc[at] / scale, text))
    _annotate_inside(ax, peaks, len(tl))
    _plain_ticks(ax, "y")
    ax.set_xlabel("op index")
    ax.set_ylabel(unit)
    ax.legend(fontsize=7)
    ax.set_title(f"{sim.name} on {sim.target.name}: memory over time", fontsize=9, y=TITLE_Y)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.12, top=0.92)
    _save(fig, path)
    plt.close(fig)
    return path


def _tensor_label(name: str, width: int = 36) -> str:
    """A tensor for a peak annotation: fused TFLite names (';'-joined, ending in generic TF
    suffixes) and ZOQO's +/- query tensors read like the layer labels; others are trimmed."""
    name = str(name)
    if ";" in name or (len(name) > 1 and name[0] in "+-"):
        name = distinctive_name(name)
    return short_name(name, width)


def _annotate_inside(ax, peaks: list[tuple[float, float, str]], n: int) -> None:
    """Peak labels that stay inside the axes: text goes left of a point in the right half and
    below a point in the upper half (so it neither leaves the frame nor meets the axis label),
    and is clipped to the axes as a last resort."""
    if not peaks:
        return
    lo, hi = ax.get_ylim()                     # final: every line is drawn
    for at, yv, text in peaks:
        right = at > (n - 1) / 2
        upper = (yv - lo) > (hi - lo) / 2
        ax.annotate(text, (at, yv), textcoords="offset points",
                    xytext=(-6 if right else 6, -6 if upper else 6), fontsize=6,
                    ha="right" if right else "left", va="top" if upper else "bottom",
                    annotation_clip=True, clip_on=True,
                    bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})


def _unit_peaks(unit, target) -> list[tuple[float, str]]:
    """Compute roofs of a unit: best mac rate, and the best rate of any class when it is higher."""
    rates = []
    for cls, by_fmt in unit.ops.items():
        for fmt, c in by_fmt.items():
            rate = unit.count * c.per_cycle * target.runtime_efficiency.factor(cls) * unit.clock_hz
            rates.append((rate, f"{cls} {fmt}"))
    if not rates:
        return []
    macs = [r for r in rates if r[1].startswith("mac ")]
    best = max(rates)
    out = [max(macs)] if macs else []
    if not out or best[0] > out[0][0]:
        out.append(best)
    return out


def roofline(sim, path: Path) -> Path:
    """Ops per second vs ops per byte for every op, with each unit's compute roof and memory roofs."""
    import numpy as np

    plt = _plt()
    t = sim.target
    ops = sim.cost.ops
    byte_cols = [c for c in ops.columns if c.startswith("bytes_")]
    if ops.empty:
        return _empty(path, "no ops")
    nbytes = ops[byte_cols].sum(axis=1)
    sel = (ops["work"] > 0) & (nbytes > 0) & (ops["latency_s"] > 0)
    ai = ops.loc[sel, "work"] / nbytes[sel]
    perf = ops.loc[sel, "work"] / ops.loc[sel, "latency_s"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for unit in dict.fromkeys(ops.loc[sel, "unit"]):
        m = ops.loc[sel, "unit"] == unit
        ax.scatter(ai[m], perf[m], s=14, label=f"ops on {unit}", alpha=0.8)
    lo = max(min(ai.min() if len(ai) else 0.1, 0.1), 1e-3) / 2
    hi = max(ai.max() if len(ai) else 100, 100) * 2
    xs = np.logspace(np.log10(lo), np.log10(hi), 64)
    roofs = []
    for name, unit in t.compute.items():
        for rate, what in _unit_peaks(unit, t):
            roofs.append(rate)
            ax.axhline(rate, ls="--", lw=1, color="gray")
            ax.text(hi, rate, f"{name} {what} peak ", fontsize=6, va="bottom", ha="right")
    for name, m in t.memories.items():
        ax.plot(xs, xs * m.read_bw_Bps, lw=0.8, ls=":", label=f"{name} read bw")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    if len(perf):
        ax.set_ylim(perf.min() / 10, max([perf.max()] + roofs) * 3)
    ax.set_xlabel("arithmetic intensity (work items per byte moved; MAC = 1)")
    ax.set_ylabel("achieved work items / s")
    ax.legend(fontsize=6, loc="lower right")
    ax.set_title(f"roofline: {sim.name} on {t.name}", fontsize=9, y=TITLE_Y)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    _light_log_axes(ax)
    _save(fig, path)
    plt.close(fig)
    return path


def _empty(path: Path, text: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.axis("off")
    _save(fig, path, dpi=72)
    plt.close(fig)
    return path


PLOTS = {"layers.png": layer_breakdown, "memory.png": memory_timeline, "roofline.png": roofline}


def write_plots(sim, out_dir: Path) -> dict[str, Path]:
    """Write the three PNGs. The cyclic GC is paused meanwhile: matplotlib allocates thousands of
    short-lived objects per figure, and in a process holding a model every collection it triggers
    walks that whole heap (restored afterwards; nothing here leaves cycles behind that matter)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return {name: fn(sim, Path(out_dir) / name) for name, fn in PLOTS.items()}
    finally:
        if was_enabled:
            gc.enable()
