"""Views of a finished sweep: table, Pareto fronts, bit-width diffs, a report folder.

Why: a sweep answers "what do I gain per KiB / ms / mJ?" only when the trade-off is visible:
Pareto fronts per target, and which layers change width between neighbouring budgets.
"""
from __future__ import annotations

import base64
import io
import json
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
    """Points not dominated in (lower cost, higher value)."""
    ok = frame[frame["status"] == "ok"].sort_values([cost, value], ascending=[True, False])
    best = float("-inf")
    keep = []
    for idx, row in ok.iterrows():
        if row[value] > best:
            keep.append(idx)
            best = row[value]
    return ok.loc[keep]


def bit_diffs(frame: pd.DataFrame, along: str) -> pd.DataFrame:
    """Which layers change width between neighbouring values of budget `along` (others fixed)."""
    ok = frame[frame["status"] == "ok"]
    others = [c for c in ok.columns if c.startswith("budget_") and c != along]
    rows = []
    for key, group in ok.groupby(["target", "model"] + others, dropna=False):
        group = group.sort_values(along)
        prev = None
        for _, row in group.iterrows():
            if prev is not None and row["bits"] != prev["bits"]:
                changes = [f"{n}: {a}→{b}" for n, a, b in zip(row["layers"], prev["bits"], row["bits"])
                           if a != b]
                rows.append({"target": row["target"], "model": row["model"],
                             f"{along}_from": prev[along], f"{along}_to": row[along],
                             "changed_layers": len(changes), "changes": "; ".join(changes)})
            prev = row
    return pd.DataFrame(rows)


def pareto_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    ok = frame[frame["status"] == "ok"]
    for col in [c for c in ok.columns if c.startswith("total_")]:
        resource = col[len("total_"):]
        unit, scale = _UNITS.get(resource, ("", 1.0))
        fig, ax = plt.subplots(figsize=(6, 4))
        for target, group in ok.groupby("target"):
            ax.scatter(group[col] / scale, group["objective"], s=8, alpha=0.25)
            front = pareto_front(group, col)
            ax.step(front[col] / scale, front["objective"], where="post", label=str(target))
        ax.set_xlabel(f"{resource} ({unit})" if unit else resource)
        ax.set_ylabel("objective (Σ sensitivity × Ω)")
        ax.set_title(f"Pareto front: objective vs {resource}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        path = Path(out_dir) / f"pareto_{resource}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
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
        lines += [f"### objective vs {col[len('total_'):]}", "", front[show].head(30).to_markdown(index=False)
                  if _has_tabulate() else front[show].head(30).to_string(index=False), ""]
    if not diffs.empty:
        lines += ["## Bit-width changes between neighbouring budgets", "",
                  diffs.head(40).to_string(index=False), ""]
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


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
