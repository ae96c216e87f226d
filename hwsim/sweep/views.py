"""Views of a finished sweep: table, Pareto fronts, bit-width diffs, a report folder.

Why: a sweep answers "what do I gain per KiB / ms / mJ?" only when the trade-off is visible:
Pareto fronts per target, and which layers change width between neighbouring budgets.
"""
from __future__ import annotations

import base64
import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

_UNITS = {"weights": ("KiB", 1024.0), "activations": ("KiB", 1024.0), "latency": ("ms", 1e-3),
          "energy": ("mJ", 1e-3), "compression": ("bits", 1.0)}


def load_results(out_dir: Path) -> pd.DataFrame:
    frame = pd.read_parquet(Path(out_dir) / "results.parquet")
    for col in ("bits", "layers", "bitset", "binding"):
        if col in frame.columns:
            frame[col] = frame[col].map(lambda v: json.loads(v) if isinstance(v, str) and v else v)
    return frame


def pareto_front(frame: pd.DataFrame, cost: str, value: str = "objective") -> pd.DataFrame:
    """Points not dominated in (lower cost, higher value).

    After sorting by (cost asc, value desc) a row is kept iff its value beats every earlier row;
    computed with a running maximum (NaN never wins and never raises the bar).
    """
    import numpy as np

    ok = frame[frame["status"] == "ok"].sort_values([cost, value], ascending=[True, False])
    if ok.empty:
        return ok
    vals = ok[value].to_numpy(dtype=float)
    best_before = np.maximum.accumulate(np.where(np.isnan(vals), -np.inf, vals))
    best_before = np.concatenate(([-np.inf], best_before[:-1]))
    return ok[vals > best_before]


def bit_diffs(frame: pd.DataFrame, along: str) -> pd.DataFrame:
    """Which layers change width between neighbouring values of budget `along` (others fixed)."""
    ok = frame[frame["status"] == "ok"]
    others = [c for c in ok.columns if c.startswith("budget_") and c != along]
    rows = []
    for key, group in ok.groupby(["target", "model"] + others, dropna=False):
        group = group.sort_values(along)
        # plain lists: iterrows() builds a Series per row and dominated the report time
        targets, models, budgets = group["target"].tolist(), group["model"].tolist(), group[along].tolist()
        bits, layers = group["bits"].tolist(), group["layers"].tolist()
        # the fixed budgets of the other axes: without them rows of different groups look alike
        fixed = {c: group[c].iloc[0] for c in others}
        for i in range(1, len(bits)):
            if bits[i] != bits[i - 1]:
                changes = [f"{n}: {a}→{b}" for n, a, b in zip(layers[i], bits[i - 1], bits[i]) if a != b]
                rows.append({"target": targets[i], "model": models[i], **fixed,
                             f"{along}_from": budgets[i - 1], f"{along}_to": budgets[i],
                             "changed_layers": len(changes), "changes": "; ".join(changes)})
    return pd.DataFrame(rows)


def format_budget(resource: str, value) -> str:
    """A budget or total in user units, not a raw SI float: sizes as KiB/MiB/GiB (the largest
    unit >= 1), latency in ms and energy in mJ (the units of the Pareto plots, so a table row
    and a plot point read the same)."""
    from hwsim.units import format_quantity

    if value is None or value != value:          # None / NaN: an infeasible point has no total
        return ""
    if resource in ("weights", "activations"):
        return format_quantity(float(value), "size")
    if resource in _UNITS and resource != "compression":
        unit, scale = _UNITS[resource]
        return f"{float(value) / scale:.6g} {unit}"
    if resource == "compression":
        return f"{float(value):g}x"
    return f"{float(value):g}" if isinstance(value, (int, float)) else str(value)


def _resource_of(column: str) -> str | None:
    """`budget_weights_from` / `total_latency` -> the resource they are measured in."""
    for prefix in ("budget_", "total_"):
        if column.startswith(prefix):
            rest = column[len(prefix):]
            for suffix in ("_from", "_to"):
                if rest.endswith(suffix):
                    rest = rest[: -len(suffix)]
            return rest
    return None


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of `frame` with every budget/total column formatted in user units (for report.md)."""
    out = frame.copy()
    for col in out.columns:
        resource = _resource_of(col)
        if resource is not None:
            out[col] = [format_budget(resource, v) for v in out[col].tolist()]
    return out


def pareto_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per budgeted resource: every ok point (faint) and each target's Pareto front (step).

    Drawn on a pyplot-free Agg figure with a fixed layout: pyplot's import and `tight_layout`
    (which renders every label once just to measure it) cost more than the drawing itself.
    """
    from matplotlib.figure import Figure

    paths = []
    ok = frame[frame["status"] == "ok"]
    by_target = list(ok.groupby("target"))
    for col in [c for c in ok.columns if c.startswith("total_")]:
        resource = col[len("total_"):]
        unit, scale = _UNITS.get(resource, ("", 1.0))
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        for target, group in by_target:
            ax.scatter(group[col].to_numpy() / scale, group["objective"].to_numpy(), s=8, alpha=0.25)
            front = pareto_front(group, col)
            ax.step(front[col].to_numpy() / scale, front["objective"].to_numpy(), where="post",
                    label=str(target))
        ax.set_xlabel(f"{resource} ({unit})" if unit else resource)
        ax.set_ylabel("objective (Σ sensitivity × Ω)")
        ax.set_title(f"Pareto front: objective vs {resource}", y=1.0)  # fixed y: no title auto-placement pass
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
        path = Path(out_dir) / f"pareto_{resource}.png"
        fig.savefig(path, dpi=110, pil_kwargs={"compress_level": 1})
        paths.append(path)
    return paths


def write_report(out_dir: Path, spec_name: str, wall_s: float | None = None) -> Path:
    """report.md + self-contained report.html + results.csv + Pareto PNGs + bit diffs CSV."""
    out_dir = Path(out_dir)
    frame = load_results(out_dir)
    frame.drop(columns=[c for c in ("layers",) if c in frame.columns]).to_csv(
        out_dir / "results.csv", index=False)
    plots = pareto_plots(frame, out_dir)
    budget_cols = [c for c in frame.columns if c.startswith("budget_")]
    diffs = bit_diffs(frame, budget_cols[0]) if budget_cols and "bits" in frame else pd.DataFrame()
    diffs.to_csv(out_dir / "bit_diffs.csv", index=False)
    counts = frame["status"].value_counts().to_dict()
    lines = [f"# Sweep `{spec_name}`", "",
             f"{len(frame)} points: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
             *( [f"wall time {wall_s:.2f} s"] if wall_s is not None else []), ""]
    show = [c for c in ["target", "model", *budget_cols, "status", "objective",
                        *[c for c in frame.columns if c.startswith("total_")]] if c in frame.columns]
    lines += ["## Pareto-optimal points", ""]
    for col in [c for c in frame.columns if c.startswith("total_")]:
        front = pareto_front(frame, col)
        table = readable(front[show].head(30))
        lines += [f"### objective vs {col[len('total_'):]}", "", table.to_markdown(index=False)
                  if _has_tabulate() else table.to_string(index=False), ""]
    if not diffs.empty:
        lines += ["## Bit-width changes between neighbouring budgets", "",
                  readable(diffs.head(40)).to_string(index=False), ""]
    errors = frame[frame["status"] == "error"]
    if not errors.empty:
        lines += ["## Failed points", "", errors[["point_index", "error"]].head(20).to_string(index=False), ""]
    md = "\n".join(lines)
    (out_dir / "report.md").write_text(md)
    imgs = "".join(f'<h3>{p.stem}</h3><img src="data:image/png;base64,'
                   f'{base64.b64encode(p.read_bytes()).decode()}"/>' for p in plots)
    html = (f"<html><head><meta charset='utf-8'><title>sweep {spec_name}</title></head><body>"
            f"<pre>{_escape(md)}</pre>{imgs}</body></html>")
    (out_dir / "report.html").write_text(html)
    return out_dir / "report.md"


@lru_cache(maxsize=1)
def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
