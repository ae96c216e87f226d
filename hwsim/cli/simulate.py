"""`hwsim simulate`: does it fit, what does it cost, does it meet the budgets? (exit 0 / 1 / 2)

Why: one command answers the first two design questions for a TFLite model or a workload on a
named device and gates CI: exit 0 when every budget (and every device capacity) holds, 1 when one
fails, 2 on bad input. Heavy imports happen inside the command so `hwsim --help` stays fast.
"""
from __future__ import annotations

import sys
import time
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from hwsim.cli._choices import TableOrJson

DEFAULT_TARGET = "stm32l4r5"
#: The embedded default job (no --model / --workload): integer-only ZOQO training of an MLP on
#: scikit-learn's bundled digits, on the workload's own target (stm32h743).
DEFAULT_WORKLOAD = "workloads/zoqo-train-digits.yaml"


class Engine(str, Enum):
    analytic = "analytic"
    des = "des"


def _load_workload(path: Path) -> dict:
    import yaml

    from hwsim.errors import WorkloadError

    if path.is_dir():
        raise WorkloadError(f"--workload {path}: is a directory, expected a file (a workload YAML)")
    if not path.is_file():
        raise WorkloadError(f"workload file {str(path)!r} does not exist")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise WorkloadError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(spec, dict) or "algorithm" not in spec:
        raise WorkloadError(f"{path}: a workload is a mapping with an `algorithm:` field "
                            "(e.g. inference, zoqo-train, bmpq-train)")
    return spec


def _model_trace(model: str, target):
    from hwsim.emulator import Emulator
    from hwsim.workloads.inference import emulator_runtime, resolve_model

    path = resolve_model(model)
    trace = Emulator.from_tflite(path, runtime=emulator_runtime(target)).trace_only()
    return path, trace


def _out_dir(out: Optional[Path], name: str, target: str) -> Path:
    if out is not None:
        return out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("reports") / f"{name}-{target}-{stamp}"
    if path.exists():   # two runs in the same second: never mix their reports
        import uuid

        path = path.with_name(f"{path.name}-{uuid.uuid4().hex[:6]}")
    return path


def simulate_cmd(
    target: Optional[str] = typer.Option(None, "--target", "-t",
                                         help=f"Device profile name or YAML path (default: the workload's, else {DEFAULT_TARGET})."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="A .tflite file or a builtin model name (costed shapes-only, one inference)."),
    workload: Optional[Path] = typer.Option(None, "--workload", "-w",
                                            help="A workload YAML (algorithm: inference, zoqo-train, bmpq-train, ...)."),
    budget: List[str] = typer.Option([], "--budget", "-b",
                                     help="KIND=VALUE, repeatable: a memory level (sram=256KiB, flash=1MiB), "
                                          "latency=20ms or energy=1mJ. Device capacities are always checked."),
    engine: Engine = typer.Option(Engine.analytic, "--engine", "-e",
                                  help="analytic (roofline per op) or des (simpy: DMA/compute overlap, contention)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o",
                                       help="Report folder (default reports/<workload>-<target>-<timestamp>/)."),
    fmt: TableOrJson = typer.Option(TableOrJson.table, "--format", "-f", help="table (terminal) or json (one object on stdout)."),
    no_report: bool = typer.Option(False, "--no-report", help="Write no report folder (print only)."),
    quick: bool = typer.Option(False, "--quick", help="Ask the workload runner for a short run (e.g. fewer steps)."),
) -> None:
    """Simulate a model or workload on a target: latency, energy, memory peaks, PASS/FAIL budgets.

    Without arguments: the embedded ZOQO workload (workloads/zoqo-train-digits.yaml) on stm32h743. Exit code 0 when every budget and device capacity holds, 1 when any fails, 2 on bad input.
    """
    from hwsim.budgets import budgets_from_spec, parse_budgets
    from hwsim.cost.simulation import simulate_trace
    from hwsim.errors import HwsimError
    from hwsim.report import render_table, to_json, write_report
    from hwsim.target import load_target

    if model and workload:
        raise HwsimError("give either --model or --workload, not both")
    if not model and not workload:
        from hwsim import REPO_ROOT

        workload = REPO_ROOT / DEFAULT_WORKLOAD
    from hwsim.cli._paths import check_target_arg, output_dir

    if out is not None:
        output_dir(out, "--out")
        if no_report:
            print(f"note: --out {out} is ignored with --no-report (no report folder is written"
                  f"{'; a workload may still put its own artifacts there' if workload else ''})",
                  file=sys.stderr)
    check_target_arg(target)
    spec = _load_workload(workload) if workload else None
    target_name = target or (spec or {}).get("target") or DEFAULT_TARGET
    tgt = load_target(str(target_name))
    budgets = parse_budgets(budget, tgt)
    from hwsim.units import format_quantity

    for b in budgets:
        mem = tgt.memories.get(b.kind)
        if mem is not None and b.limit > float(mem.capacity_bytes):
            print(f"note: budget {b.text} is above {tgt.name}'s {b.kind} capacity "
                  f"({format_quantity(mem.capacity_bytes, 'size')}); the device capacity is the tighter limit and is "
                  f"checked too", file=sys.stderr)
    repeat: dict = {}
    metrics: dict = {}
    conventions: dict = {}
    source: dict = {"runtime": tgt.numerics.runtime}
    if spec is not None:
        from hwsim.workloads import get_runner

        out_dir = _out_dir(out, str(spec.get("name") or workload.stem), tgt.name)
        options = {"out_dir": out_dir, "quick": quick, "engine": engine.value, "spec_path": str(workload)}
        run = get_runner(str(spec["algorithm"]))(spec, tgt, options)
        trace, name = run.trace, run.name
        repeat, metrics, conventions = dict(run.repeat), dict(run.metrics), dict(run.conventions)
        known = set(tgt.memories) | {"latency", "energy"}
        budgets += budgets_from_spec({k: v for k, v in (spec.get("budgets") or {}).items() if k in known},
                                     tgt, where=str(workload))
        source.update(workload=str(workload), algorithm=spec["algorithm"],
                      artifacts={k: str(v) for k, v in run.artifacts.items()})
    else:
        path, trace = _model_trace(model, tgt)
        from hwsim.models.registry import canonical

        name = (canonical(model) if not Path(model).suffix else None) or Path(path).stem
        out_dir = _out_dir(out, name, tgt.name)
        source.update(model=str(path))
    sim = simulate_trace(trace, tgt, name=name, budgets=budgets, engine=engine.value, repeat=repeat,
                         metrics=metrics, source=source, conventions=conventions)
    table = render_table(sim) if fmt == TableOrJson.table or not no_report else None
    if fmt == TableOrJson.json:
        typer.echo(to_json(sim))
    else:
        typer.echo(table)
    if not no_report:   # results are printed first, so a failing write never loses them
        try:
            write_report(sim, out_dir, table=table)
        except OSError as err:
            from hwsim.cli._paths import os_error

            raise os_error(err, "--out", out_dir) from None
        print(f"report written to {out_dir}/", file=sys.stderr)
    if not sim.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Register `hwsim simulate` on the main app."""
    app.command("simulate")(simulate_cmd)
