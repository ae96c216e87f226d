"""Write the report folder: report.md, self-contained report.html, ops.csv, summary.json, PNGs."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from hwsim.report.plots import write_plots
from hwsim.report.summary import summary_dict
from hwsim.report.table import render_table


def _markdown(sim, table: str, plots: dict[str, Path]) -> str:
    lines = [f"# hwsim report: {sim.name} on {sim.target.name}", "",
             f"Result: **{'PASS' if sim.passed else 'FAIL'}**", "", "```", table, "```", ""]
    for name in plots:
        lines += [f"![{name}]({name})", ""]
    lines += _artifact_markdown(sim)
    lines += ["## Conventions", ""] + [f"- **{k}**: {v}" for k, v in sim.conventions.items()]
    lines += ["", "## Target sources", ""] + [f"- {s}" for s in sim.target.sources]
    lines += ["", "Per-op figures: `ops.csv`; everything: `summary.json`.", ""]
    return "\n".join(lines)


def _artifacts(sim) -> dict[str, Path]:
    """Extra files a workload runner wrote (accuracy tables, ENBG plots, ...)."""
    return {k: Path(v) for k, v in ((sim.source or {}).get("artifacts") or {}).items()}


def _artifact_markdown(sim) -> list[str]:
    arts = _artifacts(sim)
    if not arts:
        return []
    lines = ["## Workload outputs", ""]
    for name, path in arts.items():
        if path.suffix == ".md" and path.is_file():
            lines += [f"### {name}", "", path.read_text().rstrip(), ""]
        elif path.suffix == ".png":
            lines += [f"### {name}", "", f"![{name}]({path.name})", ""]
        else:
            lines += [f"- {name}: `{path.name}`"]
    return lines + [""]


def _html(sim, table: str, plots: dict[str, Path]) -> str:
    imgs = []
    for name, path in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        imgs.append(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"/>')
    for name, path in _artifacts(sim).items():
        if path.suffix == ".png" and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            imgs.append(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{data}"/>')
        elif path.suffix == ".md" and path.is_file():
            imgs.append(f"<h2>{html.escape(name)}</h2><pre>{html.escape(path.read_text())}</pre>")
    conv = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in sim.conventions.items())
    src = "".join(f"<li>{html.escape(s)}</li>" for s in sim.target.sources)
    status = "PASS" if sim.passed else "FAIL"
    color = "#2a7" if sim.passed else "#c33"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>hwsim: {html.escape(sim.name)} on {html.escape(sim.target.name)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}img{max-width:100%}</style>"
        f"</head><body><h1>{html.escape(sim.name)} on {html.escape(sim.target.name)}</h1>"
        f"<p>Result: <b style='color:{color}'>{status}</b></p><pre>{html.escape(table)}</pre>"
        + "".join(imgs) + f"<h2>Conventions</h2><ul>{conv}</ul><h2>Target sources</h2><ul>{src}</ul>"
        "</body></html>")


def write_report(sim, out_dir: Path, *, table: str | None = None) -> dict[str, Path]:
    """Write every report file into `out_dir` (created); returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = table if table is not None else render_table(sim)
    files: dict[str, Path] = {}
    sim.cost.ops.to_csv(out / "ops.csv", index=False)
    files["ops.csv"] = out / "ops.csv"
    (out / "summary.json").write_text(json.dumps(summary_dict(sim), indent=1))
    files["summary.json"] = out / "summary.json"
    plots = write_plots(sim, out)
    files.update(plots)
    (out / "report.md").write_text(_markdown(sim, table, plots))
    files["report.md"] = out / "report.md"
    (out / "report.html").write_text(_html(sim, table, plots))
    files["report.html"] = out / "report.html"
    return files
